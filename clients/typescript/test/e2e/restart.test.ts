// Shows the resume invariant end to end: the server is stopped (SIGTERM, the stream ends with
// `server_shutdown`) and restarted on the same port and data dir; the client reconnects with its
// Last-Event-ID and receives every seq exactly once, including those published just before the
// stop that it may not have seen, and those published after the restart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type StatusEvent } from '../../src/index';
import { appFetch, PiCloud, until } from '../support/picloud';

let pc: PiCloud;
beforeAll(async () => {
  pc = await PiCloud.start();
  await pc.createApp();
  await pc.createTopic('chat');
  await pc.createTopic('news');
});
afterAll(() => pc?.destroy());

describe('restart', () => {
  it('receives everything missed, without duplicates', async () => {
    // While `offline`, connection attempts fail as if the network were down: this holds the client
    // back until the messages published after the restart are committed, so it must fetch them.
    let offline = false;
    const ids: (string | null)[] = [];
    const gated: typeof appFetch = (u, i) => {
      if (offline) return Promise.reject(new TypeError('offline'));
      ids.push(new Headers(i?.headers).get('last-event-id'));
      return appFetch(u, i);
    };
    const c = createClient({ url: pc.appUrl(), fetch: gated, backoff: { minMs: 100, maxMs: 1000 } });
    const seqs: Record<string, number[]> = { chat: [], news: [] };
    const events: StatusEvent[] = [];
    c.subscribe(['chat', 'news'], (m) => seqs[m.topic]!.push(m.seq!), { onStatus: (e) => events.push(e) });
    await until(() => c.state === 'open', 'open');
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
    // The first connect had no position; the one after the restart resumed from one.
    expect(ids[0]).toBeNull();
    expect(ids.at(-1)).toMatch(/^chat=\d+,news=\d+$/);
    expect(c.state).toBe('open');
    c.close();
  });
});
