// Shows one upstream per browser: two clients standing for two tabs (same origin, same
// configuration) share one stream through Web Locks + BroadcastChannel (Node's, with a minimal
// lock manager standing in for navigator.locks); both get every message; when the leader tab
// goes, the other takes over from the last position; the stream's position and token warnings
// reach every tab; opting out gives each its own stream.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createClient } from '../../src/index';
import { fakeLocks } from '../support/fake-locks';
import { msg, mockSse, sleep } from '../support/mock-sse';

afterEach(() => vi.unstubAllGlobals());

describe('one stream per browser', () => {
  it('shares one upstream and hands over on leader exit', async () => {
    vi.stubGlobal('navigator', { locks: fakeLocks() });
    const m = mockSse();
    const opts = { url: `http://shared-${Math.random()}`, fetch: m.fetch, backoff: { minMs: 1, maxMs: 2 } };
    const tab1 = createClient(opts);
    const tab2 = createClient(opts);
    const got1: string[] = [];
    const got2: string[] = [];
    tab1.subscribe('chat', (x) => got1.push(`${x.topic}${x.seq}`));
    const r0 = await m.request(0);
    r0.push(`retry: 1\n\n${msg('chat', 1, 1)}`);
    await vi.waitFor(() => expect(got1).toEqual(['chat1']));

    tab2.subscribe(['chat', 'news'], (x) => got2.push(`${x.topic}${x.seq}`));
    const r1 = await m.request(1); // the leader re-opens with the union
    expect(r1.url).toContain('topic=chat&topic=news');
    expect(r1.headers['last-event-id']).toBe('chat=1');
    r1.push(msg('chat', 2, 2, 'chat=2,news=0') + msg('news', 1, 1, 'chat=2,news=1'));
    await vi.waitFor(() => expect(got2).toEqual(['chat2', 'news1']));
    expect(got1).toEqual(['chat1', 'chat2']);
    await vi.waitFor(() => expect(tab2.state).toBe('open'));
    expect(m.reqs.filter((r) => !r.aborted)).toHaveLength(1);

    tab1.close(); // the leader tab goes away
    const r2 = await m.request(2);
    expect(r1.aborted).toBe(true);
    expect(r2.headers['last-event-id']).toBe('chat=2,news=1');
    r2.push(`retry: 1\n\n${msg('news', 2, 2, 'chat=2,news=2')}`);
    await vi.waitFor(() => expect(got2).toEqual(['chat2', 'news1', 'news2']));
    tab2.close();
    await vi.waitFor(() => expect(r2.aborted).toBe(true));
  });

  it('relays position and token_expiring to the other tabs', async () => {
    vi.stubGlobal('navigator', { locks: fakeLocks() });
    const m = mockSse();
    const opts = { url: `http://shared-${Math.random()}`, token: 't', fetch: m.fetch };
    const tab1 = createClient(opts);
    const tab2 = createClient(opts);
    const seen1: string[] = [];
    const seen2: string[] = [];
    const on = (out: string[]) => ({ onPosition: (e: { topic: string; position: number }) => out.push(`${e.topic}@${e.position}`), onTokenExpiring: (e: { expiresIn: number }) => out.push(`expiring ${e.expiresIn}`) });
    tab1.subscribe('chat', () => {}, on(seen1));
    await m.request(0);
    tab2.subscribe('chat', () => {}, on(seen2));
    await vi.waitFor(() => expect(tab2.state).toBe('open'));
    const r = m.reqs.at(-1)!;
    r.push(`id: 7\nevent: position\ndata: null\n\nevent: token_expiring\ndata: {"expires_in":42}\n\n`);
    await vi.waitFor(() => expect(seen2).toEqual(['chat@7', 'expiring 42']));
    expect(seen1).toEqual(['chat@7', 'expiring 42']);
    tab1.close();
    tab2.close();
  });

  it('starts a leader tab from its own lastEventId, as an unshared client does', async () => {
    vi.stubGlobal('navigator', { locks: fakeLocks() });
    const m = mockSse();
    const opts = { url: `http://shared-${Math.random()}`, fetch: m.fetch, backoff: { minMs: 1, maxMs: 2 } };
    // The first (only) tab, e.g. a fresh page asking for the history.
    const tab1 = createClient(opts);
    const got1: number[] = [];
    tab1.subscribe('chat', (x) => got1.push(x.seq!), { lastEventId: '0' });
    const r0 = await m.request(0);
    expect(r0.headers['last-event-id']).toBe('chat=0');
    r0.push(`retry: 1\n\nid: 0\nevent: position\ndata: null\n\n${msg('chat', 1, 1)}${msg('chat', 2, 2)}`);
    await vi.waitFor(() => expect(got1).toEqual([1, 2]));
    tab1.close();
    await vi.waitFor(() => expect(r0.aborted).toBe(true));

    // The same page reloaded: a new leader, asking again.
    const tab1b = createClient(opts);
    const got1b: number[] = [];
    tab1b.subscribe('chat', (x) => got1b.push(x.seq!), { lastEventId: '0' });
    const r1 = await m.request(1);
    expect(r1.headers['last-event-id']).toBe('chat=0');
    r1.push(`id: 0\nevent: position\ndata: null\n\n${msg('chat', 1, 1)}${msg('chat', 2, 2)}`);
    await vi.waitFor(() => expect(got1b).toEqual([1, 2]));

    // A follower asking for a later position: replayed from there; the leader's subscriber, whose
    // position is past it, sees nothing twice.
    const tab2 = createClient(opts);
    const got2: number[] = [];
    tab2.subscribe('chat', (x) => got2.push(x.seq!), { lastEventId: '1' });
    const r2 = await m.request(2);
    expect(r2.headers['last-event-id']).toBe('chat=1');
    r2.push(`id: 1\nevent: position\ndata: null\n\n${msg('chat', 2, 2)}${msg('chat', 3, 3)}`);
    await vi.waitFor(() => expect(got2).toEqual([2, 3]));
    await vi.waitFor(() => expect(got1b).toEqual([1, 2, 3]));

    // Hand-over: tab2 leads from the last position, every message once, in order.
    tab1b.close();
    const r3 = await m.request(3);
    expect(r3.headers['last-event-id']).toBe('chat=3');
    r3.push(`id: 3\nevent: position\ndata: null\n\n${msg('chat', 4, 4)}`);
    await vi.waitFor(() => expect(got2).toEqual([2, 3, 4]));
    tab2.close();
  });

  it('starts a new leader from what other tabs asked for before it led', async () => {
    const locks = fakeLocks();
    vi.stubGlobal('navigator', { locks });
    const m = mockSse();
    const opts = { url: `http://shared-${Math.random()}`, fetch: m.fetch };
    const tab1 = createClient(opts);
    const tab2 = createClient(opts);
    const got1: number[] = [];
    const got2: number[] = [];
    // Both tabs open while no one can lead yet (the lock is still held, e.g. by a page unloading):
    // tab1 will lead, tab2 asks for the history, and tab1 hears it before it leads.
    const release = locks.hold();
    tab1.subscribe('chat', (x) => got1.push(x.seq!));
    tab2.subscribe('chat', (x) => got2.push(x.seq!), { lastEventId: '0' });
    await sleep(50);
    expect(m.reqs).toHaveLength(0);
    release();
    const r = await m.request(0);
    expect(r.headers['last-event-id']).toBe('chat=0'); // the first request already: no re-open
    r.push(`id: 0\nevent: position\ndata: null\n\n${msg('chat', 1, 1)}`);
    await vi.waitFor(() => expect(got2).toEqual([1]));
    await sleep(20);
    expect(m.reqs).toHaveLength(1);
    tab1.close();
    tab2.close();
  });

  it('does not show a replay another tab asked for to an open subscription', async () => {
    vi.stubGlobal('navigator', { locks: fakeLocks() });
    const m = mockSse();
    const opts = { url: `http://shared-${Math.random()}`, fetch: m.fetch };
    const tab1 = createClient(opts);
    const got1: number[] = [];
    tab1.subscribe('chat', (x) => got1.push(x.seq!));
    const r0 = await m.request(0);
    r0.push('id: 5\nevent: position\ndata: null\n\n'); // the stream starts at the topic's end
    await vi.waitFor(() => expect(tab1.state).toBe('open'));
    const tab2 = createClient(opts);
    const got2: number[] = [];
    tab2.subscribe('chat', (x) => got2.push(x.seq!), { lastEventId: '0' });
    const r1 = await m.request(1);
    expect(r1.headers['last-event-id']).toBe('chat=0');
    r1.push(`id: 0\nevent: position\ndata: null\n\n${[1, 2, 3, 4, 5, 6].map((i) => msg('chat', i, i)).join('')}`);
    await vi.waitFor(() => expect(got2).toEqual([1, 2, 3, 4, 5, 6]));
    expect(got1).toEqual([6]);
    tab1.close();
    tab2.close();
  });

  it('gives each client its own stream with shareAcrossTabs: false', async () => {
    vi.stubGlobal('navigator', { locks: fakeLocks() });
    const m = mockSse();
    const opts = { url: 'http://own', fetch: m.fetch, shareAcrossTabs: false };
    const a = createClient(opts);
    const b = createClient(opts);
    a.subscribe('chat', () => {});
    b.subscribe('chat', () => {});
    await m.request(1);
    expect(m.reqs.filter((r) => !r.aborted)).toHaveLength(2);
    a.close();
    b.close();
  });
});
