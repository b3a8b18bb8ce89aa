import { encode } from '@msr/protocol/codec';
import type { Change, FrameMessage, KeyframeMessage, ServerMessage } from '@msr/protocol/messages';
import { groupsKeyframes, isMsgpack, type Subprotocol } from '@msr/protocol/wire';
import { mayBeRounded, parseExactly } from '../exact-json.js';

// The server's side of the wire: messages as the replay core produces them, states still the
// database's text, and their encoding for a socket. Clients only ever see protocol messages.

/**
 * A JSON object held as the text the database sent (jsonb::text). States go into JSON messages as
 * that text, never parsed and written out again (for a 10,000-entity keyframe that pair cost about
 * 25 ms of the server's CPU), so numbers keep the exact digits PostgreSQL stored. msgpack parses
 * it, once however many sockets share it: an integer past 2^53 becomes a 64-bit integer there
 * (msgpack's int64/uint64), not a rounded double.
 */
export class JsonText {
  private parsed: unknown;
  constructor(readonly text: string) {}

  value(): unknown {
    if (this.parsed === undefined) {
      const parsed = JSON.parse(this.text) as unknown;
      this.parsed = mayBeRounded(parsed) ? parseExactly(this.text, wireInteger) : parsed;
    }
    return this.parsed;
  }

  toJSON(): unknown {
    return this.value();
  }
}

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/** What msgpack can carry exactly of a number a double would round: an integer in 64 bits. */
function wireInteger(digits: string): unknown {
  if (!/^-?\d+$/.test(digits)) return Number(digits);
  const n = BigInt(digits);
  return n >= INT64_MIN && n <= UINT64_MAX ? n : Number(digits);
}

/** A change's state from the database's text; a change without an image (none expected) is {}. */
export const stateOf = (text: string | null): JsonText => new JsonText(text ?? '{}');

/** A change as the server sends it: its state still the database's text. */
export type ChangeText = Readonly<Omit<Change, 'state'>> & { readonly state?: JsonText };

/** A frame whose states are JSON text; on the wire it is a FrameMessage. */
export type FrameText = Omit<FrameMessage, 'changes'> & { readonly changes: readonly ChangeText[] };

/** An entity of a keyframe as the server sends it: the wire shape, its state still text. */
export interface KeyframeTextEntity {
  readonly table: string;
  readonly id: string;
  readonly state: JsonText;
}

/** A keyframe part whose states are JSON text; on the wire it is a KeyframeMessage. */
export type KeyframeText = Omit<KeyframeMessage, 'entities'> & { entities: readonly KeyframeTextEntity[] };

/** What the server sends: a protocol message; keyframes and frames hold their states as JSON text. */
export type OutgoingMessage =
  Exclude<ServerMessage, KeyframeMessage | FrameMessage> | KeyframeText | FrameText;

const isKeyframe = (message: OutgoingMessage): message is KeyframeText => message.type === 'keyframe';
const isFrame = (message: OutgoingMessage): message is FrameText => message.type === 'frame';

/**
 * `value` as JSON with `members` (JSON text: `"key":value,...`) added after its own: how states
 * kept as the database's text go into a message without being parsed.
 */
export function jsonWithMembers(value: object, members: string): string {
  const head = JSON.stringify(value);
  return head === '{}' ? `{${members}}` : `${head.slice(0, -1)},${members}}`;
}

// A change is usually sent to many sockets (sessions fed by one live tail or the window cache
// share the same change objects), so its JSON is made once.
const changeTexts = new WeakMap<ChangeText, string>();

/** One change as JSON, its state spliced in as the database's text. */
function changeJson(change: ChangeText): string {
  let text = changeTexts.get(change);
  if (text === undefined) {
    const { state, ...head } = change;
    text = state ? jsonWithMembers(head, `"state":${state.text}`) : JSON.stringify(head);
    changeTexts.set(change, text);
  }
  return text;
}

/** One entity as JSON, its state spliced in as the database's text. */
export const entityJson = (entity: KeyframeTextEntity): string =>
  `{"table":${JSON.stringify(entity.table)},"id":${JSON.stringify(entity.id)},"state":${entity.state.text}}`;

/** A part's entities by table, in the order each table first appears. */
function byTable(entities: readonly KeyframeTextEntity[]): Map<string, KeyframeTextEntity[]> {
  const tables = new Map<string, KeyframeTextEntity[]>();
  for (const entity of entities) {
    const group = tables.get(entity.table);
    if (group) group.push(entity);
    else tables.set(entity.table, [entity]);
  }
  return tables;
}

/** v2's `tables` as JSON: `{table: {id: state}}`, states spliced in as the database's text. */
function groupedJson(entities: readonly KeyframeTextEntity[]): string {
  const tables: string[] = [];
  for (const [table, group] of byTable(entities)) {
    const states = group.map((e) => `${JSON.stringify(e.id)}:${e.state.text}`);
    tables.push(`${JSON.stringify(table)}:{${states.join(',')}}`);
  }
  return `{${tables.join(',')}}`;
}

/** v2's `tables` as an object, states parsed (for msgpack). */
function groupedValue(entities: readonly KeyframeTextEntity[]): Record<string, Record<string, unknown>> {
  const tables: Record<string, Record<string, unknown>> = {};
  for (const [table, group] of byTable(entities)) {
    // No prototype, so that an entity whose id is "__proto__" is a key like any other.
    const states: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const e of group) states[e.id] = e.state.value();
    tables[table] = states;
  }
  return tables;
}

/**
 * Encodes what the server sends for the socket's subprotocol. A keyframe part or a frame is
 * written around its states' text for JSON and sent with its states parsed for msgpack; for v2 a
 * keyframe part's entities are grouped by table.
 */
export function encodeOutgoing(message: OutgoingMessage, subprotocol: Subprotocol): string | Uint8Array {
  if (isFrame(message)) return encodeFrame(message, subprotocol);
  if (!isKeyframe(message)) return encode(message, subprotocol);
  const { entities, ...header } = message;
  const grouped = groupsKeyframes(subprotocol);
  if (isMsgpack(subprotocol)) {
    const body = grouped
      ? { tables: groupedValue(entities) }
      : { entities: entities.map((e) => ({ table: e.table, id: e.id, state: e.state.value() })) };
    return encode({ ...header, ...body }, subprotocol);
  }
  const body = grouped
    ? `"tables":${groupedJson(entities)}`
    : `"entities":[${entities.map(entityJson).join(',')}]`;
  return jsonWithMembers(header, body);
}

const changeValues = new WeakMap<ChangeText, object>();

/** One change with its state parsed (for msgpack), made once like its JSON. */
function changeValue(change: ChangeText): object {
  let value = changeValues.get(change);
  if (value === undefined) {
    value = change.state ? { ...change, state: change.state.value() } : change;
    changeValues.set(change, value);
  }
  return value;
}

function encodeFrame({ changes, ...header }: FrameText, subprotocol: Subprotocol): string | Uint8Array {
  if (isMsgpack(subprotocol)) return encode({ ...header, changes: changes.map(changeValue) }, subprotocol);
  return jsonWithMembers(header, `"changes":[${changes.map(changeJson).join(',')}]`);
}
