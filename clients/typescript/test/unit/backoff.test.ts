// Shows the reconnect delay is full jitter within [0, min(max, base·2^attempt)), that the cap
// holds for any attempt, and that the server's `retry:` replaces the configured base.
import { describe, expect, it, vi } from 'vitest';
import { backoffDelay, createClient } from '../../src/index';
import { msg, mockSse } from '../support/mock-sse';

describe('backoff', () => {
  it('stays within full-jitter bounds', () => {
    for (let attempt = 0; attempt < 40; attempt++) {
      const cap = Math.min(30_000, 500 * 2 ** attempt);
      expect(backoffDelay(attempt, 500, 30_000, () => 0)).toBe(0);
      const hi = backoffDelay(attempt, 500, 30_000, () => 0.999999);
      expect(hi).toBeLessThan(cap);
      expect(hi).toBeGreaterThanOrEqual(Math.floor(cap * 0.99));
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(attempt, 500, 30_000);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(cap);
      }
    }
  });

  it('spreads delays (jitter) rather than returning one value', () => {
    const ds = new Set(Array.from({ length: 50 }, () => backoffDelay(5, 500, 30_000)));
    expect(ds.size).toBeGreaterThan(10);
  });

  it("uses the server's retry: as the base", async () => {
    const m = mockSse();
    // A huge configured base: only the server's `retry: 20` can make the reconnect quick.
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, backoff: { minMs: 600_000, maxMs: 600_000 } });
    c.subscribe('chat', () => {});
    const r0 = await m.request(0);
    r0.push(`retry: 20\n\n${msg('chat', 1, 'a')}`);
    await vi.waitFor(() => expect(c.state).toBe('open'));
    r0.end();
    const r1 = await m.request(1);
    expect(r1.headers['last-event-id']).toBe('chat=1');
    c.close();
  });
});
