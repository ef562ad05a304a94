// A fake WebSocket constructor for unit tests: every socket records the frames the client sends
// (parsed) and lets the test open it, push server frames, answer requests by their id, or drop it.
// Only the socket is faked; frames, state machine, positions and presence are the real code.
import { vi } from 'vitest';
import type { WebSocketConstructor } from '../../src/index';

type Frame = { type: string; id?: number | string; [k: string]: unknown };

export interface MockSocket {
  url: string;
  protocols?: string | string[] | undefined;
  sent: Frame[];
  /** Closed by the client (`close()`), with its code. */
  closedWith: number | undefined;
  open(): void;
  push(f: Frame): void;
  /** The server closes (or the network drops) the socket. */
  drop(code?: number): void;
  /** Waits for the n-th (0-based) sent frame of `type` (and `topic`, if given). */
  next(type: string, topic?: string, n?: number): Promise<Frame>;
  /** Answers the request `f` (echoing its id) with `answer`. */
  reply(f: Frame, answer: Frame): void;
  /** Answers every `subscribe` so far that is not answered yet with `subscribed` at `position` (default `0`). */
  subscribeAll(position?: string): Promise<void>;
}

export function mockWs() {
  const socks: MockSocket[] = [];
  class Sock {
    onopen: ((e: unknown) => void) | null = null;
    onmessage: ((e: { data: string }) => void) | null = null;
    onclose: ((e: { code: number; reason: string }) => void) | null = null;
    onerror: ((e: unknown) => void) | null = null;
    sent: Frame[] = [];
    closedWith: number | undefined;
    private answered = new Set<number | string>();
    constructor(
      public url: string,
      public protocols?: string | string[],
    ) {
      socks.push(this);
    }
    send(d: string) {
      if (this.closedWith !== undefined) throw new Error('send after close');
      this.sent.push(JSON.parse(d) as Frame);
    }
    close(code?: number) {
      this.closedWith = code ?? 1005;
    }
    open() {
      this.onopen?.({});
    }
    push(f: Frame) {
      this.onmessage?.({ data: JSON.stringify(f) });
    }
    drop(code = 1006) {
      this.onclose?.({ code, reason: '' });
    }
    next(type: string, topic?: string, n = 0) {
      return vi.waitFor(
        () => {
          const f = this.sent.filter((x) => x.type === type && (topic === undefined || x.topic === topic))[n];
          if (!f) throw new Error(`no ${type}${topic ? ` ${topic}` : ''} #${n} sent yet: ${JSON.stringify(this.sent)}`);
          return f;
        },
        { timeout: 5000, interval: 5 },
      );
    }
    reply(f: Frame, answer: Frame) {
      this.answered.add(f.id!);
      this.push({ ...answer, id: f.id! });
    }
    async subscribeAll(position = '0') {
      for (const f of this.sent)
        if (f.type === 'subscribe' && !this.answered.has(f.id!)) this.reply(f, { type: 'subscribed', topic: f.topic, position: (f.position as string) ?? position });
    }
  }
  /** Waits for the n-th socket (0-based). */
  const sock = (n: number): Promise<MockSocket> =>
    vi.waitFor(
      () => {
        const s = socks[n];
        if (!s) throw new Error(`no socket #${n} yet (${socks.length} so far)`);
        return s;
      },
      { timeout: 5000, interval: 5 },
    );
  return { WebSocket: Sock as unknown as WebSocketConstructor, socks, sock };
}

export const wsMsg = (topic: string, seq: number | null, message: unknown) =>
  seq === null
    ? { type: 'message', topic, seq, message, published_at: '2026-01-01T00:00:00.000Z' }
    : { type: 'message', topic, seq, message, published_at: '2026-01-01T00:00:00.000Z', position: String(seq) };
