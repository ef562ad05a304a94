// Shows the stream's own announcements reach the subscriber: `event: position` (sent first on
// every stream) calls onPosition for each subscribed topic after the client took it as its resume
// position (bare seq for one topic, `name=seq` pairs for several), also on reconnect;
// `event: token_expiring` calls onTokenExpiring with the seconds left, with a fixed token (the
// stream stays open until expiry) as with getToken (which then reconnects).
import { describe, expect, it, vi } from 'vitest';
import { createClient, type PositionEvent, readEventStream, type TokenExpiringEvent } from '../../src/index';
import { frame, mockSse } from '../support/mock-sse';

const position = (id: string) => `id: ${id}\nevent: position\ndata: null\n\n`;

describe('position and token_expiring events', () => {
  it('calls onPosition with a one-topic stream\'s bare seq, again after a reconnect', async () => {
    const m = mockSse();
    const got: PositionEvent[] = [];
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 2 } });
    c.subscribe('chat', () => {}, { onPosition: (e) => got.push(e) });
    const r0 = await m.request(0);
    r0.push(`retry: 1\n\n${position('41')}`);
    await vi.waitFor(() => expect(got).toEqual([{ topic: 'chat', position: 41 }]));
    r0.end();
    const r1 = await m.request(1);
    // Taken as the resume position before onPosition was called.
    expect(r1.headers['last-event-id']).toBe('chat=41');
    r1.push(position('43'));
    await vi.waitFor(() => expect(got.at(-1)).toEqual({ topic: 'chat', position: 43 }));
    c.close();
  });

  it('calls onPosition per topic of a several-topic stream, each subscriber for its own topics', async () => {
    const m = mockSse();
    const a: PositionEvent[] = [];
    const b: PositionEvent[] = [];
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false });
    c.subscribe(['a', 'b.x'], () => {}, { onPosition: (e) => a.push(e) });
    c.subscribe('b.x', () => {}, { onPosition: (e) => b.push(e) });
    const r0 = await m.request(0);
    r0.push(position('a=2,b.x=7'));
    await vi.waitFor(() => expect(a).toHaveLength(2));
    expect(a).toEqual([
      { topic: 'a', position: 2 },
      { topic: 'b.x', position: 7 },
    ]);
    expect(b).toEqual([{ topic: 'b.x', position: 7 }]);
    expect(c.state).toBe('open');
    c.close();
  });

  it('reports token_expiring with a fixed token and keeps the stream open', async () => {
    const m = mockSse();
    const got: TokenExpiringEvent[] = [];
    const c = createClient({ url: 'http://x', token: 't', fetch: m.fetch, shareAcrossTabs: false });
    c.subscribe('chat', () => {}, { onTokenExpiring: (e) => got.push(e) });
    const r0 = await m.request(0);
    r0.push(frame('token_expiring', { expires_in: 58 }));
    await vi.waitFor(() => expect(got).toEqual([{ expiresIn: 58 }]));
    expect(r0.aborted).toBe(false);
    expect(c.state).toBe('open');
    c.close();
  });

  it('reports token_expiring with getToken too, then reconnects with a fresh token', async () => {
    const m = mockSse();
    const got: TokenExpiringEvent[] = [];
    let n = 0;
    const c = createClient({ url: 'http://x', getToken: () => `t${++n}`, fetch: m.fetch, shareAcrossTabs: false });
    c.subscribe('chat', () => {}, { onTokenExpiring: (e) => got.push(e) });
    const r0 = await m.request(0);
    r0.push(frame('token_expiring', { expires_in: 60 }));
    const r1 = await m.request(1);
    expect(got).toEqual([{ expiresIn: 60 }]);
    expect(r1.headers.authorization).toBe('Bearer t2');
    c.close();
  });

  it('exports the low-level reader as readEventStream', async () => {
    const m = mockSse();
    const frames: { event?: string | undefined; data: string }[] = [];
    const ctrl = new AbortController();
    const done = readEventStream(m.fetch, 'http://x/api/v1/stats/stream', { authorization: 'Bearer k' }, ctrl.signal, {
      event: (e) => frames.push({ event: e.event, data: e.data }),
    });
    const r = await m.request(0);
    expect(r.headers.authorization).toBe('Bearer k');
    r.push('event: history\ndata: {"samples":[]}\n\nevent: stats\ndata: {"sample":1}\n\n');
    r.end();
    await done;
    expect(frames).toEqual([
      { event: 'history', data: '{"samples":[]}' },
      { event: 'stats', data: '{"sample":1}' },
    ]);
  });
});
