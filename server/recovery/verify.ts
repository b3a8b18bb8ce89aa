import type { Pool } from 'pg';

/** One named check of the post-recovery validation. */
export interface VerifyCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly checks: readonly VerifyCheck[];
  readonly events: number;
  readonly earliest: string | null;
  readonly latest: string | null;
}

const RELATIONS = [
  'cdc_event',
  'configuration',
  'session',
  'snapshot_pointer',
  'entity_last_states',
  'earliest_snapshot_a',
  'earliest_snapshot_b',
];
const SETTINGS = ['MAX_PLAYBACK_RANGE', 'MAX_ACTIVE_SESSIONS', 'DATA_RETENTION_CRON_EXPRESSION'];

/**
 * The playbook's post-recovery validation, each step a named check: the seven relations, the
 * configuration entries, the hypertable, the continuous aggregate and its links (TimescaleDB),
 * event counts and range, and a snapshot pointer that points at a populated table.
 */
export async function verify(pool: Pool): Promise<VerifyReport> {
  const checks: VerifyCheck[] = [];
  const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });

  const { rows: relations } = await pool.query<{ name: string }>(
    `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'msr' and c.relname = any($1)`,
    [RELATIONS],
  );
  const present = new Set(relations.map((r) => r.name));
  const missing = RELATIONS.filter((r) => !present.has(r));
  add(
    'relations',
    missing.length === 0,
    missing.length === 0 ? 'all seven present' : `missing: ${missing.join(', ')}`,
  );
  if (missing.length > 0) return { ok: false, checks, events: 0, earliest: null, latest: null };

  const { rows: settings } = await pool.query<{ key: string }>(
    `select key from msr.configuration where key = any($1) and value <> ''`,
    [SETTINGS],
  );
  const unset = SETTINGS.filter((k) => !settings.some((s) => s.key === k));
  add(
    'configuration',
    unset.length === 0,
    unset.length === 0 ? SETTINGS.join(', ') : `unset: ${unset.join(', ')}`,
  );

  checks.push(...(await schemaChecks(pool)));

  const { rows: counts } = await pool.query<{ events: number; earliest: Date | null; latest: Date | null }>(
    `select count(*)::int as events, min(event_timestamp) as earliest, max(event_timestamp) as latest from msr.cdc_event`,
  );
  const { events, earliest, latest } = counts[0]!;
  add(
    'events',
    true,
    `${events} events from ${earliest?.toISOString() ?? '-'} to ${latest?.toISOString() ?? '-'}`,
  );

  checks.push(await snapshotPointerCheck(pool));
  return {
    ok: checks.every((c) => c.ok),
    checks,
    events,
    earliest: earliest?.toISOString() ?? null,
    latest: latest?.toISOString() ?? null,
  };
}

/** The schema's dialect and version; on TimescaleDB the hypertable and the continuous aggregate. */
async function schemaChecks(pool: Pool): Promise<VerifyCheck[]> {
  const { rows: dialectRows } = await pool.query<{ dialect: string; version: number }>(
    `select dialect, version from msr.schema_migration order by version desc limit 1`,
  );
  const dialect = dialectRows[0]?.dialect ?? 'unknown';
  const checks: VerifyCheck[] = [
    {
      name: 'schema',
      ok: dialectRows.length > 0,
      detail: `${dialect}, migration ${dialectRows[0]?.version ?? 'none'}`,
    },
  ];
  if (dialect !== 'timescaledb') return checks;
  // Without its triggers the aggregate's links (sql/022) would miss a refresh's rewrites and
  // keyframes would read them as exact.
  const { rows } = await pool.query<{ hypertable: boolean; cagg: boolean; triggers: number }>(`
    select exists (select 1 from timescaledb_information.hypertables
                    where hypertable_schema = 'msr' and hypertable_name = 'cdc_event') as hypertable,
           exists (select 1 from timescaledb_information.continuous_aggregates
                    where view_schema = 'msr' and view_name = 'entity_last_states') as cagg,
           (select count(*)::int from pg_trigger t
              join timescaledb_information.continuous_aggregates c
                on t.tgrelid = format('%I.%I', c.materialization_hypertable_schema,
                                      c.materialization_hypertable_name)::regclass
             where c.view_schema = 'msr' and c.view_name = 'entity_last_states'
               and t.tgfoid = 'msr.mark_entity_state_links_stale'::regproc) as triggers`);
  checks.push({ name: 'hypertable', ok: rows[0]!.hypertable, detail: 'msr.cdc_event is a hypertable' });
  checks.push({
    name: 'continuous aggregate',
    ok: rows[0]!.cagg,
    detail: 'msr.entity_last_states is a continuous aggregate',
  });
  checks.push({
    name: 'aggregate links',
    ok: rows[0]!.triggers === 3,
    detail: `${rows[0]!.triggers} of 3 triggers keep msr.entity_state_links in step with the aggregate`,
  });
  return checks;
}

/** A snapshot pointer that points at a populated table. */
async function snapshotPointerCheck(pool: Pool): Promise<VerifyCheck> {
  const { rows: pointer } = await pool.query<{
    active: string;
    cutoff: string;
    last_refresh: Date | null;
    rows: number;
  }>(`
    select p.active, p.cutoff_time::text as cutoff, p.last_refresh,
           case p.active when 'a' then (select count(*)::int from msr.earliest_snapshot_a)
                         else (select count(*)::int from msr.earliest_snapshot_b) end as rows
      from msr.snapshot_pointer p where p.id = 1`);
  const p = pointer[0];
  return {
    name: 'snapshot pointer',
    ok: p !== undefined && (p.active === 'a' || p.active === 'b'),
    detail: p
      ? `active ${p.active}, cutoff ${p.cutoff}, ${p.rows} entities, last refresh ${p.last_refresh?.toISOString() ?? 'never'}`
      : 'no pointer row',
  };
}
