/**
 * The protocol's constants, apart from its schemas (messages.ts), so that the browser's client
 * (client-core.ts) carries no schema library.
 */

export const PROTOCOL_VERSION = 1;
export const SUBPROTOCOL_JSON = 'msr.v1.json';
export const SUBPROTOCOL_MSGPACK = 'msr.v1.msgpack';
/**
 * Version 2 differs from version 1 in one message: a keyframe part names each table once and maps
 * its ids to states (`tables: {table: {id: state}}`) instead of listing `{table, id, state}` per
 * entity, about a fifth fewer bytes to send and parse for large keyframes. Everything else is v1.
 */
export const SUBPROTOCOL_V2_JSON = 'msr.v2.json';
export const SUBPROTOCOL_V2_MSGPACK = 'msr.v2.msgpack';
export const SUBPROTOCOLS = [
  SUBPROTOCOL_JSON,
  SUBPROTOCOL_MSGPACK,
  SUBPROTOCOL_V2_JSON,
  SUBPROTOCOL_V2_MSGPACK,
] as const;
export type Subprotocol = (typeof SUBPROTOCOLS)[number];

/** Whether the subprotocol's frames are msgpack (binary) rather than JSON (text). */
export const isMsgpack = (subprotocol: Subprotocol): boolean => subprotocol.endsWith('.msgpack');
/** Whether the subprotocol sends keyframe parts grouped by table (v2). */
export const groupsKeyframes = (subprotocol: Subprotocol): boolean => subprotocol.startsWith('msr.v2.');

export const MIN_SPEED = 0.1;
export const MAX_SPEED = 1000;

/** Largest client message the server accepts (bytes); controls are tiny, an `open` with filters is the largest. */
export const MAX_CLIENT_MESSAGE_BYTES = 256 * 1024;

/** The longest string rid a client may send (and the server echoes). */
export const MAX_RID_LENGTH = 64;
