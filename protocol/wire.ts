/**
 * The protocol's constants, apart from its schemas (messages.ts), so that the browser's client
 * (client-core.ts) carries no schema library.
 */

export const PROTOCOL_VERSION = 1;
export const SUBPROTOCOL_JSON = 'msr.v1.json';
export const SUBPROTOCOL_MSGPACK = 'msr.v1.msgpack';
export const SUBPROTOCOLS = [SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK] as const;
export type Subprotocol = (typeof SUBPROTOCOLS)[number];

export const MIN_SPEED = 0.1;
export const MAX_SPEED = 1000;

/** Largest client message the server accepts (bytes); controls are tiny, an `open` with filters is the largest. */
export const MAX_CLIENT_MESSAGE_BYTES = 256 * 1024;

/** The longest string rid a client may send (and the server echoes). */
export const MAX_RID_LENGTH = 64;
