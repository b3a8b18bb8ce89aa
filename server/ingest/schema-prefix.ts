/**
 * Kafka Connect's JSON converter with schemas writes every record of a topic as
 * `{"schema":S,"payload":P}` with the same S, often several times longer than P. Parsing S again
 * for each record was most of the cost of decoding. This remembers, per topic, the exact bytes
 * `{"schema":S,"payload":` and its parsed S; a record that starts with those bytes and ends with
 * `}` is then P alone, which JSON.parse reads as it would inside the whole: the full text is
 * exactly that object with those two keys. Anything else (another schema, another layout, not
 * JSON at all) is parsed whole, as before, and may teach a new prefix.
 */
export interface Wrapped {
  readonly schema: unknown;
  readonly payload: unknown;
}

interface Learned {
  readonly prefix: Buffer;
  readonly schema: unknown;
}

const OPEN = Buffer.from('{"schema":');
const PAYLOAD_KEY = Buffer.from(',"payload":');
const CLOSE = '}'.charCodeAt(0);

export class SchemaPrefixes {
  private readonly learned = new Map<string, Learned>();

  constructor(private readonly maxEntries = 4096) {}

  /** Streams whose prefix is known. */
  get size(): number {
    return this.learned.size;
  }

  /** The parsed JSON of `bytes` (a record of `stream`, e.g. a topic's values); throws as JSON.parse. */
  parse(stream: string, bytes: Buffer): unknown {
    const known = this.learned.get(stream);
    if (known && startsWith(bytes, known.prefix) && bytes[bytes.length - 1] === CLOSE) {
      try {
        const payload: unknown = JSON.parse(bytes.toString('utf8', known.prefix.length, bytes.length - 1));
        return { schema: known.schema, payload } satisfies Wrapped;
      } catch {
        // Not P alone after all (another key after it): read the whole record below.
      }
    }
    const json: unknown = JSON.parse(bytes.toString('utf8'));
    if (isWrapped(json) && json.schema !== null && startsWith(bytes, OPEN)) this.learn(stream, bytes, json);
    return json;
  }

  private learn(stream: string, bytes: Buffer, json: Wrapped): void {
    const schemaText = JSON.stringify(json.schema);
    for (let at = bytes.indexOf(PAYLOAD_KEY); at >= 0; at = bytes.indexOf(PAYLOAD_KEY, at + 1)) {
      let schema: unknown;
      try {
        schema = JSON.parse(bytes.toString('utf8', OPEN.length, at));
      } catch {
        continue; // inside S: its brackets are not closed yet
      }
      if (JSON.stringify(schema) !== schemaText) continue;
      if (this.learned.size >= this.maxEntries && !this.learned.has(stream)) this.learned.clear();
      this.learned.set(stream, { prefix: Buffer.from(bytes.subarray(0, at + PAYLOAD_KEY.length)), schema });
      return;
    }
  }
}

export function isWrapped(json: unknown): json is Wrapped {
  return (
    typeof json === 'object' &&
    json !== null &&
    'payload' in json &&
    'schema' in json &&
    Object.keys(json).length === 2
  );
}

function startsWith(bytes: Buffer, prefix: Buffer): boolean {
  return bytes.length > prefix.length && bytes.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}
