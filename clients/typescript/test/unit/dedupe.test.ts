// Shows de-duplication by position: after a reconnect the client sends its last position as
// Last-Event-ID, and any message at or below it (replayed by a server or a proxy) is dropped; a
// second subscriber asking for history gets the replay without the first seeing anything twice.
import { describe, expect, it, vi } from 'vitest';
import { createClient } from '../../src/index';
import { msg, mockSse } from '../support/mock-sse';

describe('dedupe', () => {
  it('drops replayed messages and resumes with Last-Event-ID', async () => {
    const m = mockSse();
    const seqs: (number | null)[] = [];
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 2 } });
    c.subscribe('chat', (x) => seqs.push(x.seq));
    const r0 = await m.request(0);
    r0.push(`retry: 1\n\n${msg('chat', 1, 'a')}${msg('chat', 2, 'b')}${msg('chat', 2, 'b again')}`);
    await vi.waitFor(() => expect(seqs).toEqual([1, 2]));
    r0.end();
    const r1 = await m.request(1);
    expect(r1.headers['last-event-id']).toBe('chat=2');
    r1.push(`${msg('chat', 1, 'a')}${msg('chat', 2, 'b')}${msg('chat', 3, 'c')}`);
    await vi.waitFor(() => expect(seqs).toEqual([1, 2, 3]));
    c.close();
  });

  it('tracks every topic of a multi-topic id, even those with no message yet', async () => {
    const m = mockSse();
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 2 } });
    const got: string[] = [];
    c.subscribe(['a', 'b.x'], (x) => got.push(`${x.topic}:${x.seq}:${x.id}`));
    const r0 = await m.request(0);
    r0.push(`retry: 1\n\n${msg('a', 3, 1, 'a=3,b.x=9')}`);
    await vi.waitFor(() => expect(got).toEqual(['a:3:a=3,b.x=9']));
    r0.end();
    const r1 = await m.request(1);
    expect(r1.headers['last-event-id']).toBe('a=3,b.x=9');
    r1.push(msg('b.x', 9, 'dup', 'a=3,b.x=9') + msg('b.x', 10, 'new', 'a=3,b.x=10'));
    await vi.waitFor(() => expect(got).toEqual(['a:3:a=3,b.x=9', 'b.x:10:a=3,b.x=10']));
    c.close();
  });

  it('replays history to a new subscriber with lastEventId, not to the others', async () => {
    const m = mockSse();
    const first: number[] = [];
    const second: number[] = [];
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false });
    c.subscribe('chat', (x) => first.push(x.seq!));
    const r0 = await m.request(0);
    r0.push(`retry: 1\n\n${msg('chat', 5, 5)}`);
    await vi.waitFor(() => expect(first).toEqual([5]));
    c.subscribe('chat', (x) => second.push(x.seq!), { lastEventId: '3' });
    const r1 = await m.request(1); // re-opened further back
    expect(r0.aborted).toBe(true);
    expect(r1.headers['last-event-id']).toBe('chat=3');
    r1.push(msg('chat', 4, 4) + msg('chat', 5, 5) + msg('chat', 6, 6));
    await vi.waitFor(() => expect(second).toEqual([4, 5, 6]));
    expect(first).toEqual([5, 6]);
    c.close();
  });

  it('takes positions from an id on any event, so a reconnect before the first message resumes', async () => {
    const m = mockSse();
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 2 } });
    c.subscribe('chat', () => {});
    const r0 = await m.request(0);
    r0.push('retry: 1\n\nid: 12\nevent: position\ndata: null\n\n');
    await vi.waitFor(() => expect(c.state).toBe('open'));
    r0.end();
    expect((await m.request(1)).headers['last-event-id']).toBe('chat=12');
    c.close();
  });
});
