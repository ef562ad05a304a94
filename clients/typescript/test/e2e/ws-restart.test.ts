// Shows the resume invariant over WebSocket against the real binary: the server is stopped
// (SIGTERM: `server_shutdown`) and restarted on the same port and data dir; the client reconnects,
// subscribes every topic again from its last position and receives every seq exactly once,
// including those published just before the stop that it may not have seen and those published
// after the restart. An `auto` client moving from SSE to WebSocket mid-stream loses and repeats
// nothing either.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type StatusEvent } from '../../src/index';
import { appFetch, AppWebSocket, PiCloud, until } from '../support/picloud';

let pc: PiCloud;
beforeAll(async () => {
  pc = await PiCloud.start();
  await pc.createApp();
  await pc.topic('chat', { client_publish: true });
  await pc.topic('news');
});
afterAll(() => pc?.destroy());

/** Frames the client sent, per socket. */
const sent: Record<string, unknown>[][] = [];
/** While true, connection attempts fail as if the network were down. */
let offline = false;
class Gated extends AppWebSocket {
  constructor(url: string, protocols?: string | string[]) {
    // Port 9 (discard) is closed: the attempt fails like an unreachable server.
    super(offline ? 'ws://127.0.0.1:9/' : url, protocols);
    const mine: Record<string, unknown>[] = [];
    sent.push(mine);
    const send = this.send.bind(this);
    this.send = (d: string) => {
      mine.push(JSON.parse(d) as Record<string, unknown>);
      send(d);
    };
  }
}
const gatedFetch: typeof appFetch = (u, i) => (offline ? Promise.reject(new TypeError('offline')) : appFetch(u, i));

describe('websocket restart', () => {
  it('receives everything missed, without duplicates', async () => {
    const c = createClient({ url: pc.appUrl(), transport: 'ws', WebSocket: Gated, fetch: gatedFetch, backoff: { minMs: 100, maxMs: 1000 } });
    const seqs: Record<string, number[]> = { chat: [], news: [] };
    const events: StatusEvent[] = [];
    c.subscribe(['chat', 'news'], (m) => seqs[m.topic]!.push(m.seq!), { onStatus: (e) => events.push(e) });
    await until(() => c.state === 'open', 'open');
    await pc.connections(1);
    for (let i = 1; i <= 3; i++) await pc.publish('chat', { i });
    await until(() => seqs.chat!.length === 3, 'first messages');
    // Published right before the stop: the client may or may not see them before it goes.
    for (let i = 4; i <= 6; i++) await pc.publish('chat', { i });
    await pc.publish('news', { i: 1 });
    offline = true;
    await pc.stop();
    await until(() => c.state === 'reconnecting', 'reconnecting');
    await pc.boot();
    for (let i = 7; i <= 9; i++) await pc.publish('chat', { i });
    await pc.publish('news', { i: 2 });
    expect(seqs.chat!.length).toBeLessThanOrEqual(6);
    offline = false;
    await until(() => seqs.chat!.length >= 9 && seqs.news!.length >= 2, 'every message', 60_000);
    await new Promise((r) => setTimeout(r, 300)); // room for a duplicate to show up
    expect(seqs.chat).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(seqs.news).toEqual([1, 2]);
    expect(events.some((e) => e.new === 'reconnecting')).toBe(true);
    // The first socket subscribed without a position; the last one resumed each topic from one.
    const subs = (frames: Record<string, unknown>[]) => frames.filter((f) => f.type === 'subscribe');
    expect(subs(sent[0]!).map((f) => f.position)).toEqual([undefined, undefined]);
    const last = subs(sent.at(-1)!);
    expect(last.map((f) => f.topic).sort()).toEqual(['chat', 'news']);
    for (const f of last) expect(f.position).toMatch(/^\d+$/);
    expect(c.state).toBe('open');
    c.close();
    await pc.connections(0);
  });

  it('moves an auto client from SSE to WebSocket without losing or repeating a message', async () => {
    const token = await pc.token({ topics: ['news', 'chat'], publish: ['chat'], subject: 'ann' });
    const c = createClient({ url: pc.appUrl(), fetch: appFetch, WebSocket: AppWebSocket, token });
    const seqs: number[] = [];
    const events: StatusEvent[] = [];
    c.subscribe('news', (m) => seqs.push(m.seq!), { onStatus: (e) => events.push(e) });
    await until(() => c.state === 'open', 'open on SSE');
    const first = (await pc.publish('news', { n: 'a' })).seq;
    await until(() => seqs.length === 1, 'a message over SSE');
    // Publishing while the client moves.
    const during = (async () => {
      for (let i = 0; i < 10; i++) await pc.publish('news', { n: i });
    })();
    const sent = c.publish('chat', { hello: true });
    await during;
    await sent;
    await until(() => seqs.length === 11, 'every message', 30_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(seqs).toEqual(Array.from({ length: 11 }, (_, i) => first + i));
    expect(events.map((e) => e.code).filter(Boolean)).toContain('upgrade');
    await pc.connections(1);
    c.close();
    await pc.connections(0);
  });
});
