import { Packr } from 'msgpackr';
import { ErrorCode } from './codes.js';
import { isMsgpack, type Subprotocol } from './wire.js';

// Plain maps and arrays on the wire, no msgpackr record extension, so any msgpack library reads them.
const packr = new Packr({ useRecords: false, mapsAsObjects: true });
// TextEncoder/TextDecoder rather than Buffer: this module also runs in the browser (viewer).
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export type Decoded<T> =
  { ok: true; message: T } | { ok: false; code: ErrorCode; message: string; rid?: string | number };

/** Encodes a protocol message for the socket's subprotocol: text for JSON, binary for msgpack. */
export function encode(message: object, subprotocol: Subprotocol): string | Uint8Array {
  return isMsgpack(subprotocol) ? packr.pack(message) : JSON.stringify(message);
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
      message: `message of ${size} bytes is over ${maxBytes}`,
    };
  }
  try {
    const bytes =
      typeof data === 'string' ? undefined : data instanceof Uint8Array ? data : new Uint8Array(data);
    if (!isMsgpack(subprotocol)) {
      const text = bytes === undefined ? (data as string) : utf8Decoder.decode(bytes);
      return { ok: true, message: JSON.parse(text) as unknown };
    }
    return { ok: true, message: packr.unpack(bytes ?? utf8.encode(data as string)) as unknown };
  } catch (err) {
    return {
      ok: false,
      code: ErrorCode.BAD_MESSAGE,
      message: `not valid ${isMsgpack(subprotocol) ? 'msgpack' : 'JSON'}: ${(err as Error).message}`,
    };
  }
}
