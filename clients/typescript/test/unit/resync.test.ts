// Shows `event: resync` reaches onResync for its topic only, and moves the position to `to`: after
// a `position_ahead` (topic recreated) the lower seqs that follow are delivered, not dropped as
// duplicates, and the next reconnect resumes from `to`.
import { describe, expect, it, vi } from 'vitest';
import { createClient, type ResyncEvent } from '../../src/index';
import { frame, msg, mockSse } from '../support/mock-sse';

describe('resync', () => {
  it('surfaces resync and continues from the topic end', async () => {
    const m = mockSse();
    const resyncs: ResyncEvent[] = [];
    const other: ResyncEvent[] = [];
    const seqs: number[] = [];
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 2 } });
    c.subscribe('chat', (x) => seqs.push(x.seq!), { lastEventId: '50', onResync: (e) => resyncs.push(e) });
    c.subscribe('other', () => {}, { onResync: (e) => other.push(e) });
    const r0 = await m.request(0); // both subscribed in one tick: one request
    expect(r0.url).toBe('http://x/realtime?topic=chat&topic=other');
    expect(r0.headers['last-event-id']).toBe('chat=50');
    r0.push(`retry: 1\n\n${frame('resync', { topic: 'chat', from: 50, to: 2, reason: 'position_ahead' })}`);
    r0.push(msg('chat', 3, 'x', 'chat=3,other=0'));
    await vi.waitFor(() => expect(seqs).toEqual([3]));
    expect(resyncs).toEqual([{ topic: 'chat', from: 50, to: 2, reason: 'position_ahead' }]);
    expect(other).toEqual([]);
    r0.end();
    const r1 = await m.request(1);
    expect(r1.headers['last-event-id']).toBe('chat=3,other=0');
    c.close();
  });

  it('resumes from `to` after a retention resync', async () => {
    const m = mockSse();
    const resyncs: ResyncEvent[] = [];
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 2 } });
    c.subscribe('chat', () => {}, { lastEventId: '1', onResync: (e) => resyncs.push(e) });
    const r0 = await m.request(0);
    r0.push(`retry: 1\n\n${frame('resync', { topic: 'chat', from: 2, to: 40, reason: 'retention' })}`);
    await vi.waitFor(() => expect(resyncs).toHaveLength(1));
    r0.end();
    expect((await m.request(1)).headers['last-event-id']).toBe('chat=40');
    c.close();
  });

  it('takes the position after a resync from its id when the server sends one', async () => {
    const m = mockSse();
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 2 } });
    c.subscribe('chat', () => {}, { lastEventId: '1' });
    const r0 = await m.request(0);
    r0.push('retry: 1\n\nid: 55\nevent: resync\ndata: {"topic":"chat","from":2,"to":40,"reason":"retention"}\n\n');
    await vi.waitFor(() => expect(c.state).toBe('open'));
    r0.end();
    expect((await m.request(1)).headers['last-event-id']).toBe('chat=55');
    c.close();
  });
});
