import { WebSocketServer, type WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReplayClient } from '@msr/protocol';
import { ReplayClient as TrustingClient } from '@msr/protocol/core';

// A stand-in server that answers a request with a message outside protocol v1 (MSR's own server
// never does, so it cannot show this): the client fails that request at once, saying why, and
// does not leave it to time out as if no answer had come.

describe('a client given an answer outside the protocol', () => {
  let server: WebSocketServer;
  let port: number;

  beforeAll(async () => {
    server = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'msr.v1.json' });
    await new Promise((resolve) => server.once('listening', resolve));
    port = (server.address() as { port: number }).port;
    server.on('connection', (socket: WebSocket) =>
      socket.on('message', (data) => {
        const request = JSON.parse(String(data)) as { rid: number };
        // `opened` without the fields the protocol requires.
        socket.send(JSON.stringify({ type: 'opened', rid: request.rid, session: 42 }));
      }),
    );
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('rejects the request at once with the reason', async () => {
    const client = await ReplayClient.connect(`ws://127.0.0.1:${port}/v1/replay`, {
      requestTimeoutMs: 10_000,
    });
    const started = Date.now();
    await expect(client.open({ from: 0, to: 1 })).rejects.toThrow('does not fit msr.v1.json');
    expect(Date.now() - started).toBeLessThan(5_000);
    client.disconnect();
  });

  it('is trusted as it is by the core client, which checks nothing', async () => {
    const client = await TrustingClient.connect(`ws://127.0.0.1:${port}/v1/replay`);
    const opened = await client.open({ from: 0, to: 1 });
    expect(opened).toMatchObject({ type: 'opened', session: 42 });
    client.disconnect();
  });
});
