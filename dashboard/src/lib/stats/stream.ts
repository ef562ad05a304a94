/**
 * Follows the admin stats stream (`GET /api/v1/stats/stream`, text/event-stream: one `history`
 * frame, then a `stats` frame every second) with the client's SSE reader, so the dashboard has one
 * SSE implementation. The stream is reopened after any end or error (after `retryMs`; a 401 is
 * reported to `unauthorized` and ends it) until `stop()`, which aborts the request.
 */
import { readEventStream } from '@picloud/client';
import type { Schemas } from '../api/client';

export interface StatsHandlers {
  history(h: Schemas['StatsHistory']): void;
  frame(f: Schemas['StatsFrame']): void;
  /** `open`, or `retrying` with why the last stream ended. */
  state(s: 'open' | 'retrying', why?: string): void;
}

export interface StatsOptions {
  origin: string;
  key: () => string | null;
  unauthorized: () => void;
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
  retryMs?: number;
}

export function watchStats(o: StatsOptions, h: StatsHandlers): () => void {
  const ctrl = new AbortController();
  const fetchFn = o.fetch ?? ((i: string, init?: RequestInit) => fetch(i, init));
  const retryMs = o.retryMs ?? 2000;
  const wait = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      ctrl.signal.addEventListener('abort', () => (clearTimeout(t), r()), { once: true });
    });

  void (async () => {
    while (!ctrl.signal.aborted) {
      const key = o.key();
      if (!key) return;
      let why = 'the stream ended';
      try {
        await readEventStream(fetchFn, `${o.origin}/api/v1/stats/stream`, { authorization: `Bearer ${key}` }, ctrl.signal, {
          open: () => h.state('open'),
          event: (e) => {
            if (e.event === 'history') h.history(JSON.parse(e.data) as Schemas['StatsHistory']);
            else if (e.event === 'stats') h.frame(JSON.parse(e.data) as Schemas['StatsFrame']);
          },
        });
      } catch (e) {
        if (ctrl.signal.aborted) return;
        if ((e as { status?: number }).status === 401) return o.unauthorized();
        why = e instanceof Error ? e.message : String(e);
      }
      if (ctrl.signal.aborted) return;
      h.state('retrying', why);
      await wait(retryMs);
    }
  })();
  return () => ctrl.abort();
}
