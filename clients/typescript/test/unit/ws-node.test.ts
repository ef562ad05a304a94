// Shows the WebSocket transport with the `ws` package (what Node 20 apps pass as `WebSocket`)
// against a local server that accepts the TCP connection but never answers the upgrade: closing
// the client while its socket is still connecting ends cleanly (`ws` reports that close as an
// `error` event, which must have a listener or Node throws it).
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createClient } from '../../src/index';

describe('ws package', () => {
  it('closes a socket that is still connecting without an uncaught error', async () => {
    const held: Socket[] = [];
    const upgrades: IncomingMessage[] = [];
    const server = createServer();
    server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
      upgrades.push(req);
      held.push(socket); // never answered
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const c = createClient({ url, transport: 'ws', WebSocket, shareAcrossTabs: false });
    c.subscribe('chat', () => {});
    await expect.poll(() => upgrades.length).toBe(1);
    expect(upgrades[0]!.url).toBe('/realtime/ws');
    expect(upgrades[0]!.headers['sec-websocket-protocol']).toBe('picloud.v1');
    c.close();
    await new Promise((r) => setTimeout(r, 100)); // the `error` event comes on a later tick
    expect(c.state).toBe('closed');
    for (const s of held) s.destroy();
    await new Promise((r) => server.close(r));
  });
});
