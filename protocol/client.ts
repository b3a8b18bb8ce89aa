import { ReplayClient as TrustingClient } from './client-core.js';
import { groupsKeyframes, ServerMessage, ServerMessageV2, type AnyServerMessage } from './messages.js';

export {
  applyChange,
  ReplayRequestError,
  type ConnectionEvent,
  type ReplayClientOptions,
  type WebSocketFactory,
  type WebSocketLike,
} from './client-core.js';

/**
 * The replay client (client-core.ts) with every server message checked against its schema, unless
 * `validate: false`: a message that does not fit is dropped.
 */
export class ReplayClient extends TrustingClient {
  protected override check(value: unknown): AnyServerMessage | undefined {
    if (this.options.validate === false) return value as AnyServerMessage;
    const checked = (groupsKeyframes(this.subprotocol) ? ServerMessageV2 : ServerMessage).safeParse(value);
    return checked.success ? checked.data : undefined;
  }
}
