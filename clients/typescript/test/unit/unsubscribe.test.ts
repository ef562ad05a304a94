// Shows the stream's life follows the subscriptions: unsubscribing the last one aborts the request
// (after one tick, so an unsubscribe/subscribe pair keeps it), adding topics re-opens one connection
// with the combined position, and dropping some topics keeps the stream.
import { describe, expect, it, vi } from 'vitest';
import { createClient } from '../../src/index';
import { msg, mockSse, sleep } from '../support/mock-sse';

describe('unsubscribe', () => {
  it('closes the stream when the last subscription ends', async () => {
    const m = mockSse();
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false });
    const got: unknown[] = [];
    const un = c.subscribe('chat', (x) => got.push(x.message));
    const r0 = await m.request(0);
    r0.push('retry: 1\n\n');
    await vi.waitFor(() => expect(c.state).toBe('open'));
    un();
    un(); // idempotent
    await vi.waitFor(() => expect(r0.aborted).toBe(true));
    expect(c.state).toBe('closed');
    await sleep(20);
    expect(m.reqs).toHaveLength(1);
  });

  it('keeps the stream across an unsubscribe/subscribe pair in one tick', async () => {
    const m = mockSse();
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false });
    c.subscribe('chat', () => {})();
    const un = c.subscribe('chat', () => {});
    const r0 = await m.request(0);
    await sleep(30);
    expect(r0.aborted).toBe(false);
    expect(m.reqs).toHaveLength(1);
    un();
    await vi.waitFor(() => expect(r0.aborted).toBe(true));
  });

  it('re-opens one connection with the combined position when topics are added', async () => {
    const m = mockSse();
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false });
    const a: number[] = [];
    const b: number[] = [];
    const unA = c.subscribe('a', (x) => a.push(x.seq!));
    const r0 = await m.request(0);
    r0.push(`retry: 1\n\n${msg('a', 7, 7)}`);
    await vi.waitFor(() => expect(a).toEqual([7]));
    c.subscribe('b', (x) => b.push(x.seq!));
    const r1 = await m.request(1);
    expect(r0.aborted).toBe(true);
    expect(r1.url).toBe('http://x/realtime?topic=a&topic=b');
    expect(r1.headers['last-event-id']).toBe('a=7');
    r1.push(msg('a', 8, 8, 'a=8,b=0') + msg('b', 1, 1, 'a=8,b=1'));
    await vi.waitFor(() => expect([a, b]).toEqual([[7, 8], [1]]));
    // Dropping `a` keeps the stream; its later messages reach nobody.
    unA();
    await sleep(20);
    expect(r1.aborted).toBe(false);
    r1.push(msg('a', 9, 9, 'a=9,b=1'));
    await sleep(20);
    expect(a).toEqual([7, 8]);
    c.close();
    expect(r1.aborted).toBe(true);
  });

  it('keeps a throwing callback from breaking the stream', async () => {
    const m = mockSse();
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false });
    const seqs: number[] = [];
    const thrown: unknown[] = [];
    const onErr = (e: unknown) => thrown.push(e);
    process.on('uncaughtException', onErr);
    try {
      c.subscribe('chat', (x) => {
        seqs.push(x.seq!);
        if (x.seq === 1) throw new Error('boom');
      });
      const r0 = await m.request(0);
      r0.push(`retry: 1\n\n${msg('chat', 1, 1)}${msg('chat', 2, 2)}`);
      await vi.waitFor(() => expect(seqs).toEqual([1, 2]));
      await vi.waitFor(() => expect(thrown).toHaveLength(1));
      expect(m.reqs).toHaveLength(1);
      c.close();
    } finally {
      process.off('uncaughtException', onErr);
    }
  });
});
