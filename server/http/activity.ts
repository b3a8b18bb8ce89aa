import type { Pool } from 'pg';
import { ErrorCode } from '../../protocol/codes.js';
import type { Config } from '../config.js';
import { readAvailability } from '../replay/availability.js';
import { countParam, tablesParam, timeParam } from './query-params.js';
import { RequestLimit } from './request-limit.js';
import { json, type Route } from './route.js';

/** The most buckets one answer holds: a timeline is at most a few thousand pixels wide. */
export const MAX_ACTIVITY_BUCKETS = 2000;

// One scan of the range; each row finds its bucket by binary search in the starts (width_bucket),
// about twice as fast as arithmetic on extract(epoch ...), which is numeric. Starts are whole
// microseconds, so the answer's bucket times are exactly the edges used.
const ACTIVITY_SQL = `
select width_bucket(event_timestamp, array(select timestamptz 'epoch' + b * interval '1 microsecond'
                                              from unnest($3::bigint[]) b)) - 1 as bucket,
       count(*)::int as events
  from msr.cdc_event
 where event_timestamp >= timestamptz 'epoch' + $1::bigint * interval '1 microsecond'
   and event_timestamp < timestamptz 'epoch' + $2::bigint * interval '1 microsecond'
   and ($4::text[] is null or table_schema || '.' || table_name = any ($4::text[]))
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
        const admitted = limit.enter();
        if ('error' in admitted) return admitted.error;
        try {
          const availability = await readAvailability(pool, config);
          const now = Date.now();
          const from = timeParam(query, 'from', availability.earliest ?? now);
          if ('error' in from) return from.error;
          const to = timeParam(query, 'to', now);
          if ('error' in to) return to.error;
          if (!(to.value > from.value)) {
            return json(400, { code: ErrorCode.BAD_MESSAGE, message: 'to must be after from' });
          }
          const fromUs = Math.round(from.value * 1000);
          const toUs = Math.round(to.value * 1000);
          const widthUs = (toUs - fromUs) / buckets.value;
          if (widthUs < 1) {
            return json(400, {
              code: ErrorCode.BAD_MESSAGE,
              message: 'buckets: more than microseconds in the range',
            });
          }
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
            from: from.value,
            to: to.value,
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
