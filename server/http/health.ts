import type { Pool } from 'pg';
import { schemaIsCurrent } from '../db/migrate.js';
import type { DemoWorld } from '../demo/world.js';
import type { Ingest } from '../ingest/consumer.js';
import { json, type Route } from './route.js';

const CHECK_TIMEOUT_MS = 3_000;

export interface ReadinessCheck {
  readonly ok: boolean;
  readonly error?: string;
  readonly topics?: readonly string[];
}

/** /healthz: the process answers. /readyz: each dependency by name, 503 when any fails. */
export function healthRoutes(pool: Pool, schemaVersion: number, demo?: DemoWorld, ingest?: Ingest): Route[] {
  return [
    { method: 'get', path: '/healthz', access: 'public', handler: () => json(200, { status: 'ok' }) },
    {
      method: 'get',
      path: '/readyz',
      access: 'public',
      handler: async () => {
        const database = await check(async () => {
          if (!(await schemaIsCurrent(pool, schemaVersion)))
            throw new Error(`schema is not at version ${schemaVersion}`);
        });
        const checks: Record<string, ReadinessCheck> = { database };
        if (demo) {
          const { state, error } = demo.status;
          checks.demo =
            state === 'seeding' || state === 'failed' ? { ok: false, error: error ?? state } : { ok: true };
        }
        if (ingest) {
          const { state, error, topics } = ingest.status;
          checks.kafka =
            state === 'consuming' ? { ok: true, topics } : { ok: false, error: error ?? state, topics };
        }
        const ready = Object.values(checks).every((c) => c.ok);
        return json(ready ? 200 : 503, { ready, checks });
      },
    },
  ];
}

async function check(probe: () => Promise<void>): Promise<ReadinessCheck> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    await Promise.race([probe(), timeout]);
    return { ok: true };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}
