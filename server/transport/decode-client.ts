import { parse, type Decoded } from '@msr/protocol/codec';
import { ErrorCode } from '@msr/protocol/codes';
import {
  ClientMessage,
  CLIENT_MESSAGE_TYPES,
  MAX_RID_LENGTH,
  type Subprotocol,
} from '@msr/protocol/messages';
import { MAX_CLIENT_MESSAGE_BYTES } from '@msr/protocol/wire';

// The server's side of the codec: a client message checked against its schema.

/** Raw socket data to a validated client message, or the error to answer with (rid kept when readable). */
export function decodeClientMessage(
  data: ArrayBuffer | Uint8Array | string,
  subprotocol: Subprotocol,
): Decoded<ClientMessage> {
  const parsed = parse(data, subprotocol, MAX_CLIENT_MESSAGE_BYTES);
  if (!parsed.ok) return parsed;
  const value = parsed.message;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: ErrorCode.BAD_MESSAGE, message: 'a message must be an object with a type' };
  }
  const record = value as Record<string, unknown>;
  // Only a rid the protocol allows is echoed: an error reply never carries much of what it refuses.
  const rid =
    (typeof record.rid === 'string' && record.rid.length <= MAX_RID_LENGTH) || typeof record.rid === 'number'
      ? record.rid
      : undefined;
  const withRid = <T extends object>(error: T) => (rid === undefined ? error : { ...error, rid });
  if (typeof record.type !== 'string') {
    return withRid({
      ok: false as const,
      code: ErrorCode.BAD_MESSAGE,
      message: 'missing field: type (string)',
    });
  }
  if (!(CLIENT_MESSAGE_TYPES as readonly string[]).includes(record.type)) {
    return withRid({
      ok: false as const,
      code: ErrorCode.UNKNOWN_TYPE,
      message: `unknown message type: ${JSON.stringify(record.type.slice(0, 64))}${record.type.length > 64 ? ` (${record.type.length} characters)` : ''}`,
    });
  }
  const result = ClientMessage.safeParse(value);
  if (!result.success) {
    const detail = result.error.issues
      .map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`)
      .join('; ');
    return withRid({ ok: false as const, code: ErrorCode.BAD_MESSAGE, message: `${record.type}: ${detail}` });
  }
  return { ok: true, message: result.data };
}
