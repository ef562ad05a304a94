// Shows the connection state machine: every transition is one `{old, new, code}` event, in order,
// through connecting → open → reconnecting (with the server's error code) → open → closed.
import { describe, expect, it, vi } from 'vitest';
import { createClient, type StatusEvent } from '../../src/index';
import { errorAnswer, frame, mockSse } from '../support/mock-sse';

describe('state machine', () => {
  it('emits each transition with its reason', async () => {
    const m = mockSse((_, i) => (i === 1 ? errorAnswer(503, 'unavailable') : undefined));
    const events: StatusEvent[] = [];
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 5 } });
    expect(c.state).toBe('closed');
    const un = c.subscribe('chat', () => {}, { onStatus: (e) => events.push(e) });
    const r0 = await m.request(0);
    r0.push('retry: 5\n\n');
    await vi.waitFor(() => expect(c.state).toBe('open'));
    r0.push(frame('error', { code: 'server_shutdown' }));
    r0.end();
    // #1 answers 503 (retried), #2 opens.
    const r2 = await m.request(2);
    r2.push(': keepalive\n\n');
    await vi.waitFor(() => expect(c.state).toBe('open'));
    un();
    await vi.waitFor(() => expect(c.state).toBe('closed'));
    expect(events).toEqual([
      { old: 'closed', new: 'connecting' },
      { old: 'connecting', new: 'open' },
      { old: 'open', new: 'reconnecting', code: 'server_shutdown' },
      { old: 'reconnecting', new: 'open' },
    ]);
    expect(r2.aborted).toBe(true);
  });

  it('treats a 404 as final and reports it', async () => {
    const m = mockSse(() => errorAnswer(404, 'not_found'));
    const errors: unknown[] = [];
    const events: StatusEvent[] = [];
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 2 } });
    c.subscribe('nope', () => {}, { onError: (e) => errors.push({ code: e.code, status: e.status, fatal: e.fatal }), onStatus: (e) => events.push(e) });
    await vi.waitFor(() => expect(errors).toEqual([{ code: 'not_found', status: 404, fatal: true }]));
    expect(c.state).toBe('closed');
    expect(events.at(-1)).toEqual({ old: 'connecting', new: 'closed', code: 'not_found' });
    await new Promise((r) => setTimeout(r, 50));
    expect(m.reqs.length).toBe(1);
  });

  it('reconnects when the server goes silent past idleTimeoutMs', async () => {
    const m = mockSse();
    const events: StatusEvent[] = [];
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, idleTimeoutMs: 50, backoff: { minMs: 1, maxMs: 2 } });
    c.subscribe('chat', () => {}, { onStatus: (e) => events.push(e) });
    const r0 = await m.request(0);
    r0.push('retry: 1\n\n');
    await m.request(1);
    expect(r0.aborted).toBe(true);
    expect(events).toContainEqual({ old: 'open', new: 'reconnecting', code: 'idle' });
    c.close();
  });

  it('pauses and resumes from the same position', async () => {
    const m = mockSse();
    const events: StatusEvent[] = [];
    const listeners = new Map<string, () => void>();
    const doc = { hidden: false, addEventListener: (n: string, f: () => void) => listeners.set(n, f) };
    vi.stubGlobal('document', doc);
    try {
      const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, pauseWhenHidden: 10 });
      c.subscribe('chat', () => {}, { onStatus: (e) => events.push(e) });
      const r0 = await m.request(0);
      r0.push('retry: 1\n\nid: 7\nevent: message\ndata: {"topic":"chat","seq":7,"message":1,"published_at":"x"}\n\n');
      await vi.waitFor(() => expect(c.state).toBe('open'));
      doc.hidden = true;
      listeners.get('visibilitychange')!();
      await vi.waitFor(() => expect(c.state).toBe('closed'));
      expect(events.at(-1)).toEqual({ old: 'open', new: 'closed', code: 'paused' });
      expect(r0.aborted).toBe(true);
      doc.hidden = false;
      listeners.get('visibilitychange')!();
      const r1 = await m.request(1);
      expect(r1.headers['last-event-id']).toBe('chat=7');
      c.close();
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
