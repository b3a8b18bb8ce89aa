import type { Pool } from 'pg';
import type { Config } from '../config.js';
import { readAvailability } from '../replay/availability.js';
import { sqlAt } from '../replay/micros.js';
import { badRequest, countParam, tablesParam, timeParam } from './query-params.js';
import { RequestLimit } from './request-limit.js';
import { json, type Route } from './route.js';
import { tableFilter } from '../db/sql-fragments.js';

/** The most buckets one answer holds: a timeline is at most a few thousand pixels wide. */
export const MAX_ACTIVITY_BUCKETS = 2000;

// One scan of the range; each row finds its bucket by binary search in the starts (width_bucket),
// about twice as fast as arithmetic on extract(epoch ...), which is numeric. Starts are whole
// microseconds, so the answer's bucket times are exactly the edges used.
const ACTIVITY_SQL = `
select width_bucket(event_timestamp, array(select ${sqlAt('b')} from unnest($3::bigint[]) b)) - 1 as bucket,
       count(*)::int as events
  from msr.cdc_event
 where event_timestamp >= ${sqlAt('$1')} and event_timestamp < ${sqlAt('$2')}
   and ${tableFilter('$4')}
 group by 1`;

/**
 * GET /api/v1/activity?from=&to=&buckets=&tables=: stored events per equal time bucket of
 * [from, to) (epoch ms; by default the whole available range), for a timeline's histogram.
 */
export function activityRoutes(pool: Pool, config: Config): Route[] {
  const limit = new RequestLimit(config.maxStateRequests, 'activity');
  return [
    {
      method: 'get',
      path: '/api/v1/activity',
      handler: async ({ query }) => {
        const buckets = countParam(query, 'buckets', 100, 1, MAX_ACTIVITY_BUCKETS);
        if ('error' in buckets) return buckets.error;
        const tables = tablesParam(query);
        if ('error' in tables) return tables.error;
        const fromParam = timeParam(query, 'from');
        if ('error' in fromParam) return fromParam.error;
        const toParam = timeParam(query, 'to');
        if ('error' in toParam) return toParam.error;
        const admitted = limit.enter();
        if ('error' in admitted) return admitted.error;
        try {
          const now = Date.now();
          // The available range is read only when the caller left its start out.
          const from = fromParam.value ?? (await readAvailability(pool, config)).earliest ?? now;
          const to = toParam.value ?? now;
          if (!(to > from)) return badRequest('to must be after from');
          const fromUs = Math.round(from * 1000);
          const toUs = Math.round(to * 1000);
          const widthUs = (toUs - fromUs) / buckets.value;
          if (widthUs < 1) return badRequest('buckets: more than microseconds in the range');
          const starts = Array.from({ length: buckets.value }, (_, i) => fromUs + Math.round(i * widthUs));
          const { rows } = await pool.query<{ bucket: number; events: number }>(ACTIVITY_SQL, [
            fromUs,
            toUs,
            starts,
            tables.value ?? null,
          ]);
          const counts = new Array<number>(buckets.value).fill(0);
          for (const r of rows) counts[r.bucket]! += r.events;
          return json(200, {
            from,
            to,
            bucketMs: widthUs / 1000,
            tables: tables.value ?? null,
            total: counts.reduce((a, b) => a + b, 0),
            buckets: counts.map((events, i) => ({ t: starts[i]! / 1000, events })),
          });
        } finally {
          admitted.release();
        }
      },
    },
  ];
}
