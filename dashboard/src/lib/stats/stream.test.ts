// Shows the stats stream is read with the admin key, its history and stats frames reach the
// handlers, an ended stream is reopened after the delay (the new history arriving again), a 401
// ends it through `unauthorized`, and stop() aborts the open request. Only fetch is faked.
import { describe, expect, it, vi } from 'vitest';
import { watchStats } from './stream';

const enc = new TextEncoder();
const sse = (text: string, close = true) =>
  new Response(
    new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(enc.encode(text));
        if (close) c.close();
      },
    }),
    { headers: { 'content-type': 'text/event-stream' } },
  );
const sample = (at: number) => ({ at_ms: at, connections: 1, subscribers: 1, publishes_per_sec: 0, deliveries_per_sec: 0, slow_consumer_disconnects: 0 });

describe('watchStats', () => {
  it('reads history and stats, reopens after an end, and stops', async () => {
    const calls: { url: string; auth: string | null; signal: AbortSignal | undefined }[] = [];
    const fetch = async (url: string, init?: RequestInit) => {
      calls.push({ url, auth: new Headers(init?.headers).get('authorization'), signal: init?.signal ?? undefined });
      const history = `event: history\ndata: ${JSON.stringify({ interval_ms: 1000, samples: [sample(calls.length)] })}\n\n`;
      return calls.length === 1 ? sse(`${history}event: stats\ndata: ${JSON.stringify({ sample: sample(5), apps: [] })}\n\n`) : sse(history, false);
    };
    const histories: number[] = [];
    const frames: number[] = [];
    const states: string[] = [];
    const stop = watchStats(
      { origin: 'http://admin', key: () => 'pk_1', unauthorized: () => {}, fetch, retryMs: 5 },
      { history: (h) => histories.push(h.samples[0]!.at_ms), frame: (f) => frames.push(f.sample.at_ms), state: (s) => states.push(s) },
    );
    await vi.waitFor(() => expect(histories).toEqual([1, 2]));
    expect(frames).toEqual([5]);
    expect(states).toEqual(['open', 'retrying', 'open']);
    expect(calls[0]).toMatchObject({ url: 'http://admin/api/v1/stats/stream', auth: 'Bearer pk_1' });
    stop();
    expect(calls[1]!.signal?.aborted).toBe(true);
  });

  it('hands a 401 to unauthorized and stops', async () => {
    let n = 0;
    const unauthorized = vi.fn();
    watchStats(
      {
        origin: 'http://admin',
        key: () => 'pk_bad',
        unauthorized,
        retryMs: 1,
        fetch: async () => (n++, new Response('{"error":{"code":"unauthorized","message":"no"}}', { status: 401, headers: { 'content-type': 'application/json' } })),
      },
      { history: () => {}, frame: () => {}, state: () => {} },
    );
    await vi.waitFor(() => expect(unauthorized).toHaveBeenCalledOnce());
    await new Promise((r) => setTimeout(r, 20));
    expect(n).toBe(1);
  });
});
