import { WebSocketServer, type WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { ReplayClient } from '@msr/protocol';
import { SUBPROTOCOL_V2_JSON } from '@msr/protocol/wire';

// Stand-in servers that speak one version only (MSR's own speaks both, so it cannot show the
// client's choice): a client asking for v2 also offers v1, takes what the server chose, and keeps
// the same state from either keyframe shape.

const v1Part = {
  type: 'keyframe',
  epoch: 1,
  t: 10,
  part: 0,
  last: true,
  entities: [
    { table: 'city.vehicle', id: '7', state: { id: 7 } },
    { table: 'city.stop', id: '1', state: { id: 1 } },
  ],
};
const v2Part = {
  type: 'keyframe',
  epoch: 1,
  t: 10,
  part: 0,
  last: true,
  tables: { 'city.vehicle': { '7': { id: 7 } }, 'city.stop': { '1': { id: 1 } } },
};
const opened = { type: 'opened', session: 's', from: 0, to: 100, earliest: 0, latest: 100 };

describe('a client asking for protocol v2', () => {
  let server: WebSocketServer | undefined;
  const offers: string[][] = [];

  /** A server that speaks `speaks` and answers `open` with `opened` and the given keyframe part. */
  async function standIn(speaks: string, part: object): Promise<number> {
    server = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      handleProtocols: (protocols) => {
        offers.push([...protocols]);
        return protocols.has(speaks) ? speaks : false;
      },
    });
    await new Promise((resolve) => server!.once('listening', resolve));
    server.on('connection', (socket: WebSocket) =>
      socket.on('message', (data) => {
        const request = JSON.parse(String(data)) as { rid: number };
        socket.send(JSON.stringify({ ...opened, rid: request.rid }));
        socket.send(JSON.stringify(part));
      }),
    );
    return (server.address() as { port: number }).port;
  }
  afterEach(async () => {
    offers.length = 0;
    await new Promise((resolve) => server?.close(resolve));
  });

  const connectAndOpen = async (port: number) => {
    const client = await ReplayClient.connect(`ws://127.0.0.1:${port}/v1/replay`, {
      subprotocol: SUBPROTOCOL_V2_JSON,
    });
    const keyframe = client.waitFor((m) => m.type === 'keyframe' && m.last);
    await client.open({ from: 0, to: 100 });
    await keyframe;
    return client;
  };
  const state = new Map([
    ['city.vehicle|7', { id: 7 }],
    ['city.stop|1', { id: 1 }],
  ]);

  it('gets v2 from a server that speaks it, and applies grouped parts', async () => {
    const client = await connectAndOpen(await standIn('msr.v2.json', v2Part));
    expect(offers).toEqual([['msr.v2.json', 'msr.v1.json']]);
    expect(client.subprotocol).toBe('msr.v2.json');
    expect(client.state).toEqual(state);
    client.disconnect();
  });

  it('falls back to v1 with a server older than v2, and keeps the same state', async () => {
    const client = await connectAndOpen(await standIn('msr.v1.json', v1Part));
    expect(client.subprotocol).toBe('msr.v1.json');
    expect(client.state).toEqual(state);
    client.disconnect();
  });

  it('drops a part of the other version: a v1 keyframe on a v2 socket does not fit its schema', async () => {
    const port = await standIn('msr.v2.json', v1Part);
    const client = await ReplayClient.connect(`ws://127.0.0.1:${port}/v1/replay`, {
      subprotocol: SUBPROTOCOL_V2_JSON,
    });
    const seen: string[] = [];
    client.on((m) => seen.push(m.type));
    await client.open({ from: 0, to: 100 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seen).toEqual(['opened']);
    expect(client.state.size).toBe(0);
    client.disconnect();
  });
});
