import { ErrorCode } from '@msr/protocol/codes';
import { SnapshotRequest } from '@msr/protocol/messages';
import { randomUUID } from 'node:crypto';
import type { Capture } from '../capture/capture.js';
import type { SnapshotSignals } from '../ingest/signals.js';
import { json, parseJsonBody, type Route } from './route.js';

/**
 * POST /api/v1/snapshots {source, collections[], type?}: for the source this server captures
 * itself, snapshots those tables again (in the background); for any other, sends Debezium an
 * execute-snapshot signal.
 */
export function snapshotRoutes(signals: SnapshotSignals | undefined, capture?: Capture): Route[] {
  return [
    {
      method: 'post',
      path: '/api/v1/snapshots',
      access: 'admin',
      handler: async ({ body }) => {
        if (capture) {
          const request = parseJsonBody(body, SnapshotRequest);
          if ('error' in request) return request.error;
          if (request.data.source === capture.sourceName) {
            const outcome = await capture.resnapshot(request.data.collections).catch((err: unknown) => ({
              refused: `the source cannot be read: ${(err as Error).message}`,
            }));
            if ('refused' in outcome)
              return json(400, { code: ErrorCode.BAD_MESSAGE, message: outcome.refused });
            const { source, collections } = request.data;
            return json(202, { id: randomUUID(), source, collections, type: 'blocking', via: 'capture' });
          }
        }
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
