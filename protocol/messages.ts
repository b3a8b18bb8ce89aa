import { z } from 'zod';

/**
 * Wire protocol v1 (and v2, which differs in the keyframe part only): one zod schema per message; the TypeScript types are inferred from them.
 * Times are epoch milliseconds. Client messages may carry `rid`, echoed in the one `ok` or
 * `error` that answers them.
 */

export {
  MAX_RID_LENGTH,
  MAX_SPEED,
  MIN_SPEED,
  PROTOCOL_VERSION,
  SUBPROTOCOL_JSON,
  SUBPROTOCOL_MSGPACK,
  SUBPROTOCOL_V2_JSON,
  SUBPROTOCOL_V2_MSGPACK,
  SUBPROTOCOLS,
  groupsKeyframes,
  isMsgpack,
  type Subprotocol,
} from './wire.js';
import { MAX_RID_LENGTH, MAX_SPEED, MIN_SPEED } from './wire.js';

const time = z.number().finite();
const rid = z.union([z.string().max(MAX_RID_LENGTH), z.number().finite()]).optional();

/** A playback speed: a factor with MIN_SPEED <= |speed| <= MAX_SPEED (negative plays backwards), or as fast as possible. */
export const Speed = z.union([
  z
    .number()
    .finite()
    .refine((s) => Math.abs(s) >= MIN_SPEED && Math.abs(s) <= MAX_SPEED, {
      message: `speed must be between ${MIN_SPEED} and ${MAX_SPEED} in either direction`,
    }),
  z.literal('max'),
  z.literal('-max'),
]);
export type Speed = z.infer<typeof Speed>;

/** A `schema.table` name, as sessions, REST filters and entity paths take it. */
export const TABLE_NAME = /^[^.\s]+\.[^.\s]+$/;
/** `schema.table` names. */
const tables = z.array(z.string().regex(TABLE_NAME, 'expected schema.table')).max(1000);

// Client to server

export const OpenMessage = z.strictObject({
  type: z.literal('open'),
  rid,
  from: time,
  to: time,
  at: time.optional(),
  speed: Speed.optional(),
  tables: tables.optional(),
  entities: z.array(z.string().max(1000)).max(10000).optional(),
  /** Subjects (token `sub`) besides the owner who may attach to and control the session. */
  sharedWith: z.array(z.string().min(1).max(200)).max(100).optional(),
});
export const AttachMessage = z.strictObject({
  type: z.literal('attach'),
  rid,
  session: z.string().uuid(),
  resume: z.string().max(2000).optional(),
});
/** `until`: pause exactly there (epoch ms), the last frame ending at it. */
export const PlayMessage = z.strictObject({ type: z.literal('play'), rid, until: time.optional() });
export const PauseMessage = z.strictObject({ type: z.literal('pause'), rid });
export const SeekMessage = z.strictObject({ type: z.literal('seek'), rid, t: time });
export const SpeedMessage = z.strictObject({ type: z.literal('speed'), rid, speed: Speed });
export const CloseMessage = z.strictObject({ type: z.literal('close'), rid });

export const ClientMessage = z.discriminatedUnion('type', [
  OpenMessage,
  AttachMessage,
  PlayMessage,
  PauseMessage,
  SeekMessage,
  SpeedMessage,
  CloseMessage,
]);
export type ClientMessage = z.infer<typeof ClientMessage>;
export type OpenMessage = z.infer<typeof OpenMessage>;
/** Body of POST /api/v1/sessions: what `open` takes. */
export const SessionRequest = OpenMessage.omit({ type: true, rid: true });
export type SessionRequest = z.infer<typeof SessionRequest>;

/**
 * Body of POST /api/v1/snapshots: ask the Debezium connector whose topic.prefix is `source` to
 * snapshot `collections` (schema.table names) again.
 */
export const SnapshotRequest = z.object({
  source: z.string().regex(/^[A-Za-z0-9_.-]{1,200}$/, { error: 'expected the connector topic.prefix' }),
  collections: z
    .array(z.string().regex(/^[^.\s"]+\.[^.\s"]+$/, { error: 'expected schema.table' }))
    .min(1)
    .max(1000),
  type: z.enum(['blocking', 'incremental']).default('blocking'),
});
export type SnapshotRequest = z.infer<typeof SnapshotRequest>;

export const CLIENT_MESSAGE_TYPES = ClientMessage.options.map((o) => o.shape.type.value);

// Server to client

// Row states and v2's id maps are checked and passed on as they came, not rebuilt: z.record
// rebuilds its object and drops a "__proto__" key, which is data here (a column or an entity id
// named so).
const isJsonObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const entityState = z.custom<Record<string, unknown>>(isJsonObject, { error: 'expected a JSON object' });
const statesByTable = z.custom<Record<string, Record<string, Record<string, unknown>>>>(
  (value) =>
    isJsonObject(value) &&
    Object.values(value).every((ids) => isJsonObject(ids) && Object.values(ids).every(isJsonObject)),
  { error: 'expected {table: {id: state}}' },
);

export const OpenedMessage = z.object({
  type: z.literal('opened'),
  rid,
  session: z.string(),
  from: time,
  to: time,
  earliest: time,
  latest: time,
});
export const OkMessage = z.object({ type: z.literal('ok'), rid });
export const ErrorMessage = z.object({
  type: z.literal('error'),
  rid,
  code: z.string(),
  message: z.string(),
});
export const KeyframeMessage = z.object({
  type: z.literal('keyframe'),
  epoch: z.number().int(),
  t: time,
  part: z.number().int().nonnegative(),
  last: z.boolean(),
  entities: z.array(z.object({ table: z.string(), id: z.string(), state: entityState })),
});
/** A keyframe part in protocol v2 (msr.v2.*): each table named once, its ids mapped to states. */
export const GroupedKeyframeMessage = KeyframeMessage.omit({ entities: true }).extend({
  tables: statesByTable,
});
export const Change = z.object({
  table: z.string(),
  id: z.string(),
  op: z.enum(['c', 'u', 'd', 'r', 't']),
  ts: time,
  state: entityState.nullable().optional(),
});
export type Change = z.infer<typeof Change>;
export const FrameMessage = z.object({
  type: z.literal('frame'),
  epoch: z.number().int(),
  seq: z.number().int().nonnegative(),
  t: time,
  coalesced: z.boolean().optional(),
  changes: z.array(Change),
});
export const ClockMessage = z.object({
  type: z.literal('clock'),
  epoch: z.number().int(),
  t: time,
  speed: Speed.or(z.literal(0)),
  achievedSpeed: z.number().optional(),
  playing: z.boolean(),
});
export const EndMessage = z.object({ type: z.literal('end'), epoch: z.number().int(), t: time });

/** The server's messages that both versions share: they differ in the keyframe part alone. */
const everyVersion = [
  OpenedMessage,
  OkMessage,
  ErrorMessage,
  FrameMessage,
  ClockMessage,
  EndMessage,
] as const;

export const ServerMessage = z.discriminatedUnion('type', [...everyVersion, KeyframeMessage]);
export type ServerMessage = z.infer<typeof ServerMessage>;
/** What a server speaking protocol v2 sends: v1's messages with keyframe parts grouped by table. */
export const ServerMessageV2 = z.discriminatedUnion('type', [...everyVersion, GroupedKeyframeMessage]);
export type ServerMessageV2 = z.infer<typeof ServerMessageV2>;
export type GroupedKeyframeMessage = z.infer<typeof GroupedKeyframeMessage>;
/** A server message in either version of the protocol. */
export type AnyServerMessage = ServerMessage | ServerMessageV2;
export type KeyframeMessage = z.infer<typeof KeyframeMessage>;
export type FrameMessage = z.infer<typeof FrameMessage>;
export type ClockMessage = z.infer<typeof ClockMessage>;
export type ErrorMessage = z.infer<typeof ErrorMessage>;
