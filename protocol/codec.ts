import { Packr } from 'msgpackr';
import { ErrorCode } from './codes.js';
import type { KeyframeMessage, ServerMessage } from './messages.js';
import { SUBPROTOCOL_JSON, type Subprotocol } from './wire.js';

/** Largest client message accepted (bytes); controls are tiny, an `open` with filters is the largest. */
export const MAX_CLIENT_MESSAGE_BYTES = 256 * 1024;

// Plain maps and arrays on the wire, no msgpackr record extension, so any msgpack library reads them.
const packr = new Packr({ useRecords: false, mapsAsObjects: true });
// TextEncoder/TextDecoder rather than Buffer: this module also runs in the browser (viewer).
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export type Decoded<T> =
  { ok: true; message: T } | { ok: false; code: ErrorCode; message: string; rid?: string | number };

/**
 * A JSON object held as the text the database sent (jsonb::text). A keyframe's states go into JSON
 * messages as that text, never parsed and written out again (for 10,000 entities that pair cost
 * about 25 ms of the server's CPU per keyframe); msgpack parses it, once however many sockets share
 * the session. Numbers keep the exact digits PostgreSQL stored.
 */
export class JsonText {
  private parsed: unknown;
  constructor(readonly text: string) {}

  value(): unknown {
    if (this.parsed === undefined) this.parsed = JSON.parse(this.text) as unknown;
    return this.parsed;
  }

  toJSON(): unknown {
    return this.value();
  }
}

/** An entity of a keyframe as the server sends it: the wire shape, its state still text. */
export interface KeyframeTextEntity {
  readonly table: string;
  readonly id: string;
  readonly state: JsonText;
}

/** A keyframe part whose states are JSON text; on the wire it is a KeyframeMessage. */
export type KeyframeText = Omit<KeyframeMessage, 'entities'> & { entities: readonly KeyframeTextEntity[] };

/** What the server sends: a protocol message, or a keyframe part still holding JSON text. */
export type OutgoingMessage = ServerMessage | KeyframeText;

const holdsText = (message: object): message is KeyframeText => {
  const entities = (message as { entities?: unknown }).entities;
  return (
    Array.isArray(entities) &&
    entities.length > 0 &&
    (entities[0] as KeyframeTextEntity).state instanceof JsonText
  );
};

/** One entity as JSON, its state spliced in as the database's text. */
export const entityJson = (entity: KeyframeTextEntity): string =>
  `{"table":${JSON.stringify(entity.table)},"id":${JSON.stringify(entity.id)},"state":${entity.state.text}}`;

/** Encodes any protocol message for the socket's subprotocol: text for JSON, binary for msgpack. */
export function encode(message: object, subprotocol: Subprotocol): string | Uint8Array {
  if (!holdsText(message))
    return subprotocol === SUBPROTOCOL_JSON ? JSON.stringify(message) : packr.pack(message);
  const { entities, ...header } = message;
  if (subprotocol !== SUBPROTOCOL_JSON) {
    return packr.pack({
      ...header,
      entities: entities.map((e) => ({ table: e.table, id: e.id, state: e.state.value() })),
    });
  }
  const head = JSON.stringify(header);
  return `${head.slice(0, -1)},"entities":[${entities.map(entityJson).join(',')}]}`;
}

/**
 * Parses raw socket data into a value, before validation. `maxBytes` guards the server against
 * large client messages; server messages (a keyframe part, a frame at full speed) may be far larger.
 */
export function parse(
  data: ArrayBuffer | Uint8Array | string,
  subprotocol: Subprotocol,
  maxBytes = Infinity,
): Decoded<unknown> {
  const size =
    maxBytes === Infinity ? 0 : typeof data === 'string' ? utf8.encode(data).byteLength : data.byteLength;
  if (size > maxBytes) {
    return {
      ok: false,
      code: ErrorCode.MESSAGE_TOO_LARGE,
      message: `message of ${size} bytes is over ${MAX_CLIENT_MESSAGE_BYTES}`,
    };
  }
  try {
    const bytes =
      typeof data === 'string' ? undefined : data instanceof Uint8Array ? data : new Uint8Array(data);
    if (subprotocol === SUBPROTOCOL_JSON) {
      const text = bytes === undefined ? (data as string) : utf8Decoder.decode(bytes);
      return { ok: true, message: JSON.parse(text) as unknown };
    }
    return { ok: true, message: packr.unpack(bytes ?? utf8.encode(data as string)) as unknown };
  } catch (err) {
    return {
      ok: false,
      code: ErrorCode.BAD_MESSAGE,
      message: `not valid ${subprotocol === SUBPROTOCOL_JSON ? 'JSON' : 'msgpack'}: ${(err as Error).message}`,
    };
  }
}
