import { Packr, Unpackr } from 'msgpackr';
import { ErrorCode } from './codes.js';
import { isMsgpack, type Subprotocol } from './wire.js';

// Plain maps and arrays on the wire, no msgpackr record extension, so any msgpack library reads them.
// An integer past 2^53 arrives as msgpack's int64/uint64, exact on the wire; read here as a
// number, as JSON.parse reads the same state from a JSON socket (a BigInt would surprise code that
// handles states as JSON values).
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
// msgpackr renames a "__proto__" key to "__proto_" when it builds objects, to keep it from setting
// a prototype. Here such a key is data (a column or an entity id named so), so a message that holds
// those bytes at all is read as Maps instead and turned into objects that own the key.
const exactUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: false, int64AsType: 'number' });
const PROTO_KEY = new TextEncoder().encode('__proto__');
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
    const packed = bytes ?? utf8.encode(data as string);
    const message: unknown = holds(packed, PROTO_KEY)
      ? plainObjects(exactUnpackr.unpack(packed))
      : packr.unpack(packed);
    return { ok: true, message };
  } catch (err) {
    return {
      ok: false,
      code: ErrorCode.BAD_MESSAGE,
      message: `not valid ${isMsgpack(subprotocol) ? 'msgpack' : 'JSON'}: ${(err as Error).message}`,
    };
  }
}

/** Whether `bytes` holds `part` anywhere (a plain scan: this module also runs in the browser). */
function holds(bytes: Uint8Array, part: Uint8Array): boolean {
  const first = part[0]!;
  for (
    let at = bytes.indexOf(first);
    at >= 0 && at + part.length <= bytes.length;
    at = bytes.indexOf(first, at + 1)
  ) {
    let i = 1;
    while (i < part.length && bytes[at + i] === part[i]) i++;
    if (i === part.length) return true;
  }
  return false;
}

/** Maps made objects again, as mapsAsObjects would, but with every key an own property. */
function plainObjects(value: unknown): unknown {
  if (value instanceof Map) {
    return Object.fromEntries([...value].map(([key, v]) => [String(key), plainObjects(v)]));
  }
  return Array.isArray(value) ? value.map(plainObjects) : value;
}
