// Debezium change events as its JSON converter writes them with schemas (Debezium's default setup):
// updates of `entities` vehicles over the last hour, each with its before image. Shared by the
// ingest benchmarks so that their figures describe the same records.

const f = (field: string, type: string, name?: string, parameters?: Record<string, string>) => ({
  field,
  type,
  optional: field !== 'id',
  ...(name ? { name } : {}),
  ...(parameters ? { parameters } : {}),
});
const rowSchema = (field: string) => ({
  type: 'struct',
  optional: true,
  field,
  name: 'bench.city.vehicle.Value',
  fields: [
    f('id', 'int32'),
    f('lon', 'double'),
    f('lat', 'double'),
    f('speed', 'bytes', 'org.apache.kafka.connect.data.Decimal', { scale: '2' }),
    f('status', 'string'),
    f('updated_at', 'string', 'io.debezium.time.ZonedTimestamp'),
  ],
});
const schema = {
  type: 'struct',
  name: 'bench.city.vehicle.Envelope',
  fields: [rowSchema('before'), rowSchema('after'), { field: 'source', type: 'struct' }, f('op', 'string')],
};
const keySchema = { type: 'struct', name: 'bench.city.vehicle.Key', fields: [f('id', 'int32')] };

function decimalBytes(cents: number): string {
  const b = Buffer.alloc(4);
  b.writeInt32BE(cents);
  return b.toString('base64');
}

/** `events` updates of `entities` vehicles over the last hour, each with its before image. */
export function debeziumRecords(events: number, entities: number): { key: string; value: string }[] {
  const start = Date.now() - 3_600_000;
  const last = new Map<number, Record<string, unknown>>();
  const out: { key: string; value: string }[] = [];
  for (let i = 0; i < events; i++) {
    const id = 1 + (i % entities);
    const tsMs = start + Math.floor((i / events) * 3_500_000);
    const after = {
      id,
      lon: 13.4 + ((i * 7) % 1000) / 10_000,
      lat: 52.5 + ((i * 13) % 1000) / 10_000,
      speed: decimalBytes((i * 37) % 12_000),
      status: i % 11 === 0 ? 'stopped' : 'moving',
      updated_at: new Date(tsMs).toISOString(),
    };
    const before = last.get(id) ?? null;
    last.set(id, after);
    const source = {
      version: '3.0.8.Final',
      connector: 'postgresql',
      name: 'bench',
      ts_ms: tsMs,
      ts_us: tsMs * 1000 + (i % 1000),
      snapshot: 'false',
      db: 'city',
      schema: 'city',
      table: 'vehicle',
      txId: 10_000 + i,
      lsn: 1_000_000 + i * 64,
    };
    out.push({
      key: JSON.stringify({ schema: keySchema, payload: { id } }),
      value: JSON.stringify({
        schema,
        payload: { before, after, source, op: before ? 'u' : 'c', ts_ms: tsMs },
      }),
    });
  }
  return out;
}
