// @msr/protocol: the client of MSR's replay protocol v1 and its wire contract (PROTOCOL.md).
// This entry checks every server message against its schema; `@msr/protocol/core` is the same
// client without the schema library, for pages that trust their server.

export {
  applyChange,
  ReplayClient,
  ReplayRequestError,
  type ConnectionEvent,
  type ReplayClientOptions,
  type WebSocketFactory,
  type WebSocketLike,
} from './client.js';
export { CloseCode, ErrorCode, RESUME_PREFIX } from './codes.js';
export { deleteTable, entityKey, splitEntityKey } from './entity-key.js';
export * from './messages.js';
