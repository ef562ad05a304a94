// Shows client events and the `auto` transport: `publish` waits for the socket, resolves on
// `published` and rejects with the server's code (`forbidden`; `rate_limited` with retryAfterMs;
// the connection stays); an `auto` client reads SSE until `publish` is used and then moves to
// WebSocket, resubscribing from the SSE positions so nothing is lost or repeated; `presence()`
// before connecting opens the WebSocket at once; without a WebSocket (or with `transport: 'sse'`)
// publish rejects with `unsupported`.
import { describe, expect, it, vi } from 'vitest';
import { createClient, type PiCloudError, type StatusEvent } from '../../src/index';
import { frame, msg, mockSse } from '../support/mock-sse';
import { mockWs, wsMsg } from '../support/mock-ws';

describe('client events', () => {
  it('publishes once the socket is open, and rejects with the server code', async () => {
    const w = mockWs();
    const c = createClient({ url: 'http://x', transport: 'ws', WebSocket: w.WebSocket, shareAcrossTabs: false });
    const sent = c.publish('chat', { typing: true }); // no subscription: the connection opens for it
    const s = await w.sock(0);
    expect(s.sent).toEqual([]);
    s.open();
    const f = await s.next('publish');
    expect(f).toEqual({ type: 'publish', topic: 'chat', data: { typing: true }, id: expect.any(Number) });
    s.reply(f, { type: 'published', topic: 'chat', published_at: '2026-01-01T00:00:00.000Z' });
    await expect(sent).resolves.toBeUndefined();

    const refused = c.publish('locked', 1);
    s.reply(await s.next('publish', 'locked'), { type: 'error', code: 'forbidden', message: 'client events are off' });
    await expect(refused).rejects.toMatchObject({ code: 'forbidden', message: 'client events are off', fatal: false });

    const limited = c.publish('chat', 2).catch((e: PiCloudError) => e);
    s.reply(await s.next('publish', 'chat', 1), { type: 'error', code: 'rate_limited', message: 'slow down', retry_after_ms: 1200 });
    expect(await limited).toMatchObject({ name: 'PiCloudError', code: 'rate_limited', retryAfterMs: 1200 });
    expect(w.socks).toHaveLength(1);
    expect(c.state).toBe('open');
    c.close();
  });

  it('rejects with unsupported without a WebSocket, or with transport sse', async () => {
    const m = mockSse();
    const none = createClient({ url: 'http://x', fetch: m.fetch, WebSocket: undefined, shareAcrossTabs: false });
    vi.stubGlobal('WebSocket', undefined);
    try {
      await expect(none.publish('chat', 1)).rejects.toMatchObject({ code: 'unsupported' });
    } finally {
      vi.unstubAllGlobals();
    }
    const sse = createClient({ url: 'http://x', fetch: m.fetch, transport: 'sse', WebSocket: mockWs().WebSocket, shareAcrossTabs: false });
    await expect(sse.publish('chat', 1)).rejects.toMatchObject({ code: 'unsupported' });
  });
});

describe('transport auto', () => {
  it('reads SSE until publish, then moves to WebSocket from the same positions', async () => {
    const m = mockSse();
    const w = mockWs();
    const c = createClient({ url: 'http://x', fetch: m.fetch, WebSocket: w.WebSocket, shareAcrossTabs: false });
    const got: (number | null)[] = [];
    const statuses: StatusEvent[] = [];
    c.subscribe(['chat', 'news'], (x) => got.push(x.seq), { onStatus: (e) => statuses.push(e) });
    const r0 = await m.request(0);
    r0.push(`retry: 1\n\nid: chat=3,news=1\nevent: position\ndata: null\n\n${msg('chat', 4, 4, 'chat=4,news=1')}${msg('chat', 5, 5, 'chat=5,news=1')}`);
    await vi.waitFor(() => expect(got).toEqual([4, 5]));
    expect(w.socks).toHaveLength(0);

    const sent = c.publish('chat', 'hi');
    await vi.waitFor(() => expect(r0.aborted).toBe(true));
    const s = await w.sock(0);
    s.open();
    expect((await s.next('subscribe', 'chat')).position).toBe('5');
    expect((await s.next('subscribe', 'news')).position).toBe('1');
    await s.subscribeAll();
    s.reply(await s.next('publish'), { type: 'published', topic: 'chat', published_at: 'x' });
    await sent;
    s.push(wsMsg('chat', 5, 5)); // the server repeating what SSE delivered: dropped
    s.push(wsMsg('chat', 6, 6));
    s.push(wsMsg('news', 2, 2));
    expect(got).toEqual([4, 5, 6, 2]);
    expect(statuses.map((e) => `${e.new}${e.code ? `:${e.code}` : ''}`)).toEqual(['connecting', 'open', 'connecting:upgrade', 'open']);
    expect(m.reqs).toHaveLength(1);
    c.close();
  });

  it('opens on WebSocket at once when presence is used before connecting, and SSE frames carry presence too', async () => {
    const m = mockSse();
    const w = mockWs();
    const c = createClient({ url: 'http://x', fetch: m.fetch, WebSocket: w.WebSocket, shareAcrossTabs: false });
    c.presence('room');
    const s = await w.sock(0);
    s.open();
    await s.next('subscribe', 'room');
    expect(m.reqs).toHaveLength(0);
    c.close();

    // transport 'sse': presence events arrive as `event: presence`, without an id.
    const sse = createClient({ url: 'http://y', fetch: m.fetch, transport: 'sse', shareAcrossTabs: false });
    const events: string[] = [];
    sse.subscribe('room', () => {}, { onPresence: (e) => events.push(`${e.event}:${e.member.sub}`) });
    const r = await m.request(0);
    r.push(`retry: 1\n\n${frame('presence', { topic: 'room', event: 'join', member: { sub: 'ann', data: null } })}`);
    await vi.waitFor(() => expect(events).toEqual(['join:ann']));
    sse.close();
  });
});

describe('client events on a connection that fails', () => {
  it('rejects a waiting publish and enter with the fatal error', async () => {
    const w = mockWs();
    const m = mockSse(() => new Response(JSON.stringify({ error: { code: 'unauthorized', message: 'no' } }), { status: 401 }));
    const c = createClient({ url: 'http://x', token: 'bad', fetch: m.fetch, transport: 'ws', WebSocket: w.WebSocket, shareAcrossTabs: false });
    const p = c.presence('room');
    const entering = p.enter(1);
    const sent = c.publish('room', 1);
    (await w.sock(0)).drop(1006); // refused before opening; the SSE endpoint says why
    await expect(sent).rejects.toMatchObject({ code: 'unauthorized', fatal: true });
    await expect(entering).rejects.toMatchObject({ code: 'unauthorized', fatal: true });
    expect(c.state).toBe('closed');
  });
});
