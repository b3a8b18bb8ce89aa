import { ErrorCode } from '../../protocol/codes.js';
import { SnapshotRequest } from '../../protocol/messages.js';
import type { SnapshotSignals } from '../ingest/signals.js';
import { json, parseJsonBody, type Route } from './route.js';

/** POST /api/v1/snapshots {source, collections[], type?}: sends Debezium an execute-snapshot signal. */
export function snapshotRoutes(signals: SnapshotSignals | undefined): Route[] {
  return [
    {
      method: 'post',
      path: '/api/v1/snapshots',
      access: 'admin',
      handler: async ({ body }) => {
        if (!signals) {
          return json(503, {
            code: ErrorCode.NOT_CONFIGURED,
            message: 'snapshot signals need Kafka: set KAFKA_BROKERS',
          });
        }
        const request = parseJsonBody(body, SnapshotRequest);
        if ('error' in request) return request.error;
        try {
          return json(202, await signals.send(request.data));
        } catch (err) {
          return json(503, {
            code: ErrorCode.UNAVAILABLE,
            message: `could not send the signal to Kafka: ${(err as Error).message}`,
          });
        }
      },
    },
  ];
}
