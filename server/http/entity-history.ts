import type { Pool } from 'pg';
import { TABLE_NAME } from '@msr/protocol/messages';
import type { Config } from '../config.js';
import { readAvailability } from '../replay/availability.js';
import { jsonWithMembers } from '../replay/outgoing.js';
import { sqlAt, sqlMicros } from '../replay/micros.js';
import { badRequest, countParam, timeParam } from './query-params.js';
import { RequestLimit } from './request-limit.js';
import type { Route } from './route.js';

export const MAX_HISTORY_PAGE = 1000;

/** Where a page ends in replay order: event time (µs), LSN, Kafka offset (-1 when none), event id. */
type Position = readonly [string, string, string, string];

const ORDER = 'e.event_timestamp, coalesce(e.lsn, -1), coalesce(e.kafka_offset, -1), e.id';

// An entity is a table and an id, whatever source stored it (as in keyframes). The sources are
// found by a loose scan of cdc_event_entity_time (one probe per source), so the entity's rows come
// from that index too; the table's truncates, which clear the entity, come from
// cdc_event_truncates.
const HISTORY_SQL = `
with recursive sources (source) as (
  (select source from msr.cdc_event order by source limit 1)
  union all
  select (select e.source from msr.cdc_event e where e.source > s.source order by e.source limit 1)
    from sources s where s.source is not null
),
-- LATERAL with OFFSET 0 (which keeps the planner from flattening it into a join): one index
-- range per source. As a join, the planner guessed a hundred sources and hashed a parallel scan
-- of the whole table instead (100 ms on a million rows).
events as (
  select e.* from sources s cross join lateral (
    select * from msr.cdc_event e
     where e.source = s.source and e.table_schema = $1 and e.table_name = $2 and e.entity_id = $3
       and e.event_timestamp >= ${sqlAt('$4')} and e.event_timestamp <= ${sqlAt('$5')}
    offset 0) e
  union all
  select e.* from sources s cross join lateral (
    select * from msr.cdc_event e
     where e.source = s.source and e.table_schema = $1 and e.table_name = $2 and e.op = 't'
       and e.event_timestamp >= ${sqlAt('$4')} and e.event_timestamp <= ${sqlAt('$5')}
    offset 0) e
)
select e.source, ${sqlMicros('e.event_timestamp')} as ts_us, e.op, e.before::text as before, e.after::text as after,
       coalesce(e.lsn, -1)::text as lsn, coalesce(e.kafka_offset, -1)::text as kafka_offset, e.id::text as event_id
  from events e
 where $6::bigint is null
    or (e.event_timestamp, coalesce(e.lsn, -1), coalesce(e.kafka_offset, -1), e.id)
       > (${sqlAt('$6')}, $7::bigint, $8::bigint, $9::bigint)
 order by ${ORDER}
 limit $10`;

interface Row {
  source: string;
  ts_us: string;
  op: string;
  before: string | null;
  after: string | null;
  lsn: string;
  kafka_offset: string;
  event_id: string;
}

function decodeCursor(raw: string | null): Position | null | undefined {
  if (raw === null || raw === '') return null;
  const parts = Buffer.from(raw, 'base64url').toString('utf8').split(' ');
  return parts.length === 4 && parts.every((p) => /^-?\d{1,19}$/.test(p))
    ? (parts as unknown as Position)
    : undefined;
}

const encodeCursor = (r: Row) =>
  Buffer.from([r.ts_us, r.lsn, r.kafka_offset, r.event_id].join(' ')).toString('base64url');

/**
 * One stored change as the history answers it, its images spliced in as the database's text (as
 * keyframes send states): parsed and written again, numbers past 2^53 would lose digits.
 */
function changeJson(r: Row): string {
  return jsonWithMembers(
    { ts: Number(r.ts_us) / 1000, op: r.op, source: r.source, eventId: r.event_id },
    `"state":${r.after ?? 'null'},"before":${r.before ?? 'null'}`,
  );
}

/**
 * GET /api/v1/entities/{schema.table}/{id}/history?from=&to=&limit=&after=: one entity's changes
 * in [from, to] (epoch ms; by default the available range) in replay order, `limit` at a time;
 * `next` is the `after` of the following page, null on the last. Truncates of its table are in
 * it: they clear the entity.
 */
export function entityHistoryRoutes(pool: Pool, config: Config): Route[] {
  const limit = new RequestLimit(config.maxStateRequests, 'entity history');
  return [
    {
      method: 'get',
      path: '/api/v1/entities/:table/:id/history',
      handler: async ({ params, query }) => {
        let table: string;
        let id: string;
        try {
          table = decodeURIComponent(params[0] ?? '');
          id = decodeURIComponent(params[1] ?? '');
        } catch {
          return badRequest('the table and id in the path must be URL-encoded');
        }
        const dot = table.indexOf('.');
        if (!TABLE_NAME.test(table)) return badRequest('table: expected schema.table');
        if (id === '') return badRequest('id: expected an entity id');
        const pageSize = countParam(query, 'limit', 100, 1, MAX_HISTORY_PAGE);
        if ('error' in pageSize) return pageSize.error;
        const after = decodeCursor(query.get('after'));
        if (after === undefined) return badRequest('after: expected the next value of a previous page');
        const fromParam = timeParam(query, 'from');
        if ('error' in fromParam) return fromParam.error;
        const toParam = timeParam(query, 'to');
        if ('error' in toParam) return toParam.error;
        const admitted = limit.enter();
        if ('error' in admitted) return admitted.error;
        try {
          // The available range is read only when the caller left its start out.
          const from = fromParam.value ?? (await readAvailability(pool, config)).earliest ?? 0;
          const to = toParam.value ?? Date.now();
          if (to < from) return badRequest('to must not be before from');
          const { rows } = await pool.query<Row>(HISTORY_SQL, [
            table.slice(0, dot),
            table.slice(dot + 1),
            id,
            Math.round(from * 1000),
            Math.round(to * 1000),
            ...(after ?? [null, null, null, null]),
            pageSize.value + 1,
          ]);
          const page = rows.slice(0, pageSize.value);
          const next = rows.length > pageSize.value ? encodeCursor(page.at(-1)!) : null;
          return {
            status: 200,
            headers: { 'content-type': 'application/json' },
            body: jsonWithMembers(
              { table, id, from, to },
              `"changes":[${page.map(changeJson).join(',')}],"next":${JSON.stringify(next)}`,
            ),
          };
        } finally {
          admitted.release();
        }
      },
    },
  ];
}
