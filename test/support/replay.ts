import WebSocket from 'ws';
import { ReplayClient, type ReplayClientOptions, type WebSocketLike } from '@msr/protocol';
import type { Change, GroupedKeyframeMessage, KeyframeMessage } from '@msr/protocol/messages';
import type { ChangeText } from '../../server/replay/outgoing.js';

export const wsFactory = (url: string, protocols: string[]) =>
  new WebSocket(url, protocols) as unknown as WebSocketLike;

export function connect(port: number, options: ReplayClientOptions = {}): Promise<ReplayClient> {
  return ReplayClient.connect(`ws://127.0.0.1:${port}/v1/replay`, { webSocket: wsFactory, ...options });
}

/** A reference state (keys source|schema|table|id) in the client's key shape (schema.table|id). */
export function asClientKeys(reference: Map<string, unknown>): Map<string, unknown> {
  return new Map(
    [...reference].map(([key, value]) => {
      const [, schema, table, id] = key.split('|');
      return [`${schema}.${table}|${id}`, value];
    }),
  );
}

/** Resolves with the last part of the client's next complete keyframe (v1 or v2). */
export function keyframeDone(
  c: ReplayClient,
  timeoutMs?: number,
): Promise<KeyframeMessage | GroupedKeyframeMessage> {
  return c.waitFor(
    (m): m is KeyframeMessage | GroupedKeyframeMessage => m.type === 'keyframe' && m.last,
    timeoutMs,
  );
}

/** A change the server holds (its state the database's text) as a client receives it. */
export function asWireChange({ state, ...change }: ChangeText): Change {
  return state ? { ...change, state: state.value() as Record<string, unknown> } : change;
}
