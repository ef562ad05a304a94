// A fake `fetch` for unit tests: every call becomes a request the test can push SSE bytes into,
// end, or answer with an error. Only the transport is faked; parsing, state machine and dedupe are real.
import { vi } from 'vitest';
import type { FetchLike } from '../../src/types';

export interface MockRequest {
  url: string;
  headers: Record<string, string>;
  aborted: boolean;
  push(chunk: string | Uint8Array): void;
  end(): void;
}

export type Responder = (req: MockRequest, index: number) => Response | undefined;

const enc = new TextEncoder();

export function mockSse(respond?: Responder) {
  const reqs: MockRequest[] = [];
  const fetch: FetchLike = async (url, init) => {
    const headers = Object.fromEntries(new Headers(init?.headers).entries());
    let ctl!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        ctl = c;
      },
    });
    const req: MockRequest = {
      url,
      headers,
      aborted: false,
      push: (c) => ctl.enqueue(typeof c === 'string' ? enc.encode(c) : c),
      end: () => ctl.close(),
    };
    init?.signal?.addEventListener('abort', () => {
      req.aborted = true;
      try {
        ctl.error(new DOMException('aborted', 'AbortError'));
      } catch {
        // already closed
      }
    });
    reqs.push(req);
    const custom = respond?.(req, reqs.length - 1);
    if (custom) return custom;
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
  };
  /** Waits for the n-th request (0-based). */
  const request = (n: number) =>
    vi.waitFor(
      () => {
        const r = reqs[n];
        if (!r) throw new Error(`no request #${n} yet (${reqs.length} so far)`);
        return r;
      },
      { timeout: 5000, interval: 5 },
    );
  return { fetch, reqs, request };
}

export const frame = (event: string, data: unknown, id?: string) =>
  `${id !== undefined ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

export const msg = (topic: string, seq: number | null, message: unknown, id?: string) =>
  frame('message', { topic, seq, message, published_at: '2026-01-01T00:00:00.000Z' }, id ?? (seq === null ? undefined : String(seq)));

export const errorAnswer = (status: number, code: string) =>
  new Response(JSON.stringify({ error: { code, message: code } }), { status, headers: { 'content-type': 'application/json' } });

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
