import type { Pool } from 'pg';
import type { Config } from '../config.js';
import { readAvailability } from '../replay/availability.js';
import { json, type Route } from './route.js';

export function availabilityRoutes(pool: Pool, config: Config): Route[] {
  return [
    {
      method: 'get',
      path: '/api/v1/availability',
      handler: async () => json(200, await readAvailability(pool, config)),
    },
  ];
}
