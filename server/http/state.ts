import type { Pool } from 'pg';
import { entityJson } from '../replay/outgoing.js';
import { ErrorCode } from '@msr/protocol/codes';
import type { Config } from '../config.js';
import { readAvailability } from '../replay/availability.js';
import { msToUs } from '../replay/micros.js';
import { readKeyframe, type KeyframeEntity } from '../replay/keyframe.js';
import type { ReaderChoice } from '../replay/player.js';
import { tablesParam } from './query-params.js';
import { RequestLimit } from './request-limit.js';
import { json, type Route } from './route.js';

/**
 * `{"t":..., "entities":[...]}` written chunk by chunk as the cursor reads them: a keyframe of
 * 200,000 entities never sits whole in memory. `done` runs however it ends (read, failed, abandoned).
 */
async function* stateDocument(
  t: number,
  first: IteratorResult<KeyframeEntity[]>,
  rest: AsyncGenerator<KeyframeEntity[]>,
  done: () => void,
): AsyncGenerator<string> {
  try {
    yield `{"t":${t},"entities":[`;
    let separator = '';
    for (let next = first; !next.done; next = await rest.next()) {
      if (next.value.length === 0) continue;
      yield separator + next.value.map(entityJson).join(',');
      separator = ',';
    }
    yield ']}';
  } finally {
    await rest.return(undefined);
    done();
  }
}

/** GET /api/v1/state?t=<epoch ms>&tables=<schema.table,...>: the keyframe at t as JSON, streamed. */
export function stateRoutes(pool: Pool, config: Config, readers?: ReaderChoice): Route[] {
  const limit = new RequestLimit(config.maxStateRequests, 'state');
  return [
    {
      method: 'get',
      path: '/api/v1/state',
      handler: async ({ query }) => {
        const rawT = query.get('t');
        const t = rawT === null || rawT === '' ? NaN : Number(rawT);
        if (!Number.isFinite(t)) {
          return json(400, {
            code: ErrorCode.BAD_MESSAGE,
            message: 't is required: a time in epoch milliseconds',
          });
        }
        const tables = tablesParam(query);
        if ('error' in tables) return tables.error;
        const admitted = limit.enter();
        if ('error' in admitted) return admitted.error;
        let streaming = false;
        try {
          const availability = await readAvailability(pool, config);
          if (availability.earliest === null || t < availability.earliest || t > Date.now()) {
            return json(400, {
              code: ErrorCode.OUT_OF_RANGE,
              message: `t must lie between the earliest available time (${availability.earliest}) and now`,
            });
          }
          // The first chunk is read before answering, so a failing query is still a clean error.
          // On a replica that holds t as the primary would (its replay position a live delay past t).
          const reader = readers?.pick(undefined, t + config.liveDelayMs);
          const chunks = readKeyframe(reader?.pool ?? pool, msToUs(t), { tables: tables.value });
          let first: IteratorResult<KeyframeEntity[]>;
          try {
            first = await chunks.next();
          } catch (err) {
            if (reader) readers?.failed(reader, err);
            throw err;
          }
          streaming = true;
          return {
            status: 200,
            headers: { 'content-type': 'application/json' },
            body: undefined,
            stream: stateDocument(t, first, chunks, admitted.release),
          };
        } finally {
          if (!streaming) admitted.release();
        }
      },
    },
  ];
}
