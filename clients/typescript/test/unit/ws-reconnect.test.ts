// Shows how a WebSocket connection survives: after a drop it reconnects with the backoff,
// subscribes every topic again from its position and enters its presence again by itself; on
// `token_expiring` it sends `refresh` with a fresh token instead of reconnecting; a final `error`
// frame is handled like SSE's (`server_shutdown` reconnects, `token_expired` with a fixed token
// stops); the app-level heartbeat pings every 25 s and reconnects when no pong comes within 10 s;
// and a refused upgrade (which browsers show as a bare close) is explained by the SSE endpoint.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createClient, type PiCloudError, type StatusEvent } from '../../src/index';
import { errorAnswer, mockSse } from '../support/mock-sse';
import { mockWs, wsMsg } from '../support/mock-ws';

afterEach(() => vi.useRealTimers());

describe('websocket reconnects', () => {
  it('resubscribes from the positions and enters presence again after a drop', async () => {
    const w = mockWs();
    const c = createClient({ url: 'http://x', transport: 'ws', WebSocket: w.WebSocket, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 2 } });
    const got: number[] = [];
    const statuses: StatusEvent[] = [];
    const errors: PiCloudError[] = [];
    c.subscribe('chat', (m) => got.push(m.seq!), { onStatus: (e) => statuses.push(e), onError: (e) => errors.push(e) });
    const room = c.presence<{ n: number }>('room');
    const s0 = await w.sock(0);
    s0.open();
    await s0.next('subscribe', 'room');
    await s0.subscribeAll('0');
    s0.push(wsMsg('chat', 1, 1));
    s0.push(wsMsg('chat', 2, 2));
    const entering = room.enter({ n: 1 });
    s0.reply(await s0.next('presence.enter', 'room'), { type: 'ok' });
    await entering;
    const updating = room.update({ n: 2 });
    s0.reply(await s0.next('presence.update', 'room'), { type: 'ok' });
    await updating;

    s0.drop(1006);
    await vi.waitFor(() => expect(c.state).toBe('reconnecting'));
    expect(errors.map((e) => [e.code, e.fatal])).toEqual([['network', false]]);
    const s1 = await w.sock(1);
    s1.open();
    expect((await s1.next('subscribe', 'chat')).position).toBe('2');
    expect((await s1.next('subscribe', 'room')).position).toBe('0');
    // Entered again with the latest data, without being asked.
    expect(await s1.next('presence.enter', 'room')).toMatchObject({ data: { n: 2 } });
    await s1.subscribeAll();
    await vi.waitFor(() => expect(c.state).toBe('open'));
    s1.push(wsMsg('chat', 2, 2));
    s1.push(wsMsg('chat', 3, 3));
    expect(got).toEqual([1, 2, 3]);
    expect(statuses.map((e) => e.new)).toEqual(['connecting', 'open', 'reconnecting', 'open']);
    c.close();
  });

  it('refreshes the token in place on token_expiring', async () => {
    const w = mockWs();
    let n = 0;
    const c = createClient({ url: 'http://x', getToken: () => `t${++n}`, transport: 'ws', WebSocket: w.WebSocket, shareAcrossTabs: false });
    const warned: number[] = [];
    c.subscribe('chat', () => {}, { onTokenExpiring: (e) => warned.push(e.expiresIn) });
    const s = await w.sock(0);
    expect(s.url).toBe('ws://x/realtime/ws?token=t1');
    s.open();
    await s.subscribeAll();
    s.push({ type: 'token_expiring', expires_in: 60 });
    const refresh = await s.next('refresh');
    expect(refresh.token).toBe('t2');
    s.reply(refresh, { type: 'ok' });
    expect(warned).toEqual([60]);
    expect(w.socks).toHaveLength(1);
    expect(c.state).toBe('open');
    c.close();
  });

  it('handles final error frames like SSE', async () => {
    const w = mockWs();
    const c = createClient({ url: 'http://x', token: 'fixed', transport: 'ws', WebSocket: w.WebSocket, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 2 } });
    const errors: PiCloudError[] = [];
    c.subscribe('chat', () => {}, { onError: (e) => errors.push(e) });
    const s0 = await w.sock(0);
    s0.open();
    await s0.subscribeAll();
    s0.push({ type: 'error', code: 'server_shutdown' });
    s0.drop(1012);
    const s1 = await w.sock(1);
    s1.open();
    await s1.subscribeAll();
    await vi.waitFor(() => expect(c.state).toBe('open'));
    s1.push({ type: 'error', code: 'token_expired' });
    s1.drop(1008);
    await vi.waitFor(() => expect(c.state).toBe('closed'));
    expect(errors.map((e) => [e.code, e.fatal])).toEqual([
      ['server_shutdown', false],
      ['token_expired', true],
    ]);
    expect(w.socks).toHaveLength(2);
  });

  it('pings every 25 s and reconnects when no pong comes within 10 s', async () => {
    vi.useFakeTimers();
    const w = mockWs();
    const c = createClient({ url: 'http://x', transport: 'ws', WebSocket: w.WebSocket, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 1 } });
    const statuses: StatusEvent[] = [];
    c.subscribe('chat', () => {}, { onStatus: (e) => statuses.push(e) });
    await vi.advanceTimersByTimeAsync(0);
    const s0 = w.socks[0]!;
    s0.open();
    await s0.subscribeAll();
    await vi.advanceTimersByTimeAsync(24_999);
    expect(s0.sent.filter((f) => f.type === 'ping')).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    const ping = s0.sent.find((f) => f.type === 'ping')!;
    s0.reply(ping, { type: 'pong' });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(s0.closedWith).toBeUndefined();
    await vi.advanceTimersByTimeAsync(15_000); // the second ping, never answered
    expect(s0.sent.filter((f) => f.type === 'ping')).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(9_999);
    expect(s0.closedWith).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(s0.closedWith).toBe(1000);
    expect(statuses.at(-1)).toEqual({ old: 'open', new: 'reconnecting', code: 'idle' });
    await vi.advanceTimersByTimeAsync(5);
    expect(w.socks).toHaveLength(2);
    c.close();
  });

  it('asks the SSE endpoint why an upgrade was refused', async () => {
    const w = mockWs();
    const m = mockSse(() => errorAnswer(401, 'unauthorized'));
    const c = createClient({ url: 'http://x', token: 'bad', fetch: m.fetch, transport: 'ws', WebSocket: w.WebSocket, shareAcrossTabs: false });
    const errors: PiCloudError[] = [];
    c.subscribe('chat', () => {}, { onError: (e) => errors.push(e) });
    (await w.sock(0)).drop(1006); // never opened
    await vi.waitFor(() => expect(c.state).toBe('closed'));
    expect(m.reqs[0]!.url).toBe('http://x/realtime?topic=chat');
    expect(m.reqs[0]!.headers.authorization).toBe('Bearer bad');
    expect(errors.map((e) => [e.code, e.status, e.fatal])).toEqual([['unauthorized', 401, true]]);
    expect(w.socks).toHaveLength(1);
  });
});
