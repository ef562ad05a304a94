// Shows tab sharing on the WebSocket transport: two clients standing for two tabs (Node's
// BroadcastChannel, fake Web Locks) use one socket; a follower's publish and presence go through
// the leader's connection, which enters a topic once for both tabs (one member) and leaves only
// when no tab holds it, also when the follower tab goes; presence events and answers reach the
// right tabs; when the leader tab goes, the other opens its own socket, subscribes from the last
// positions and enters again what it held.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createClient } from '../../src/index';
import { fakeLocks } from '../support/fake-locks';
import { mockWs, wsMsg } from '../support/mock-ws';

afterEach(() => vi.unstubAllGlobals());

const presenceFrames = (sent: { type: string }[]) => sent.filter((f) => /^presence\.(enter|update|leave)$/.test(f.type)).map((f) => f.type);

describe('one WebSocket per browser', () => {
  it('carries both tabs: publish and presence through the leader, one member', async () => {
    vi.stubGlobal('navigator', { locks: fakeLocks() });
    const w = mockWs();
    const opts = { url: `http://shared-ws-${Math.random()}`, transport: 'ws' as const, WebSocket: w.WebSocket };
    const tab1 = createClient(opts);
    const tab2 = createClient(opts);
    const got1: unknown[] = [];
    const got2: unknown[] = [];
    tab1.subscribe('chat', (m) => got1.push(m.message));
    const s = await w.sock(0);
    s.open();
    await s.subscribeAll('0');
    tab2.subscribe('chat', (m) => got2.push(m.message));
    await vi.waitFor(() => expect(tab2.state).toBe('open'));

    // A follower's client event goes out on the leader's socket; the answer comes back to it.
    const sent = tab2.publish('chat', 'hi');
    const pub = await s.next('publish');
    s.reply(pub, { type: 'published', topic: 'chat', published_at: 'x' });
    await sent;
    const refused = tab2.publish('chat', 'again');
    s.reply(await s.next('publish', 'chat', 1), { type: 'error', code: 'rate_limited', message: 'slow', retry_after_ms: 900 });
    await expect(refused).rejects.toMatchObject({ code: 'rate_limited', retryAfterMs: 900 });
    s.push(wsMsg('chat', null, 'hi'));
    await vi.waitFor(() => expect(got2).toEqual(['hi']));
    expect(got1).toEqual(['hi']);

    const p1 = tab1.presence<string>('room');
    const p2 = tab2.presence<string>('room');
    const subRoom = await s.next('subscribe', 'room');
    s.reply(subRoom, { type: 'subscribed', topic: 'room', position: '0' });
    const e2 = p2.enter('ann');
    s.reply(await s.next('presence.enter', 'room'), { type: 'ok' });
    await e2;
    await p1.enter('ann'); // the same member with the same data: nothing sent
    s.push({ type: 'presence', topic: 'room', event: 'join', member: { sub: 'ann', data: 'ann' } });
    await vi.waitFor(() => expect(p2.members).toEqual([{ sub: 'ann', data: 'ann' }]));
    expect(p1.members).toEqual([{ sub: 'ann', data: 'ann' }]);

    // The follower tab goes: the leader's tab still holds the topic, so no leave.
    tab2.close();
    await new Promise((r) => setTimeout(r, 30)); // room for a wrong leave to be sent
    expect(presenceFrames(s.sent)).toEqual(['presence.enter']);
    const leaving = p1.leave();
    s.reply(await s.next('presence.leave', 'room'), { type: 'ok' });
    await leaving;
    expect(presenceFrames(s.sent)).toEqual(['presence.enter', 'presence.leave']);
    expect(w.socks).toHaveLength(1);
    tab1.close();
  });

  it('drops what a follower tab held when it goes', async () => {
    vi.stubGlobal('navigator', { locks: fakeLocks() });
    const w = mockWs();
    const opts = { url: `http://shared-ws-${Math.random()}`, transport: 'ws' as const, WebSocket: w.WebSocket };
    const tab1 = createClient(opts);
    const tab2 = createClient(opts);
    tab1.subscribe('chat', () => {});
    const s = await w.sock(0);
    s.open();
    await s.subscribeAll('0');
    const p2 = tab2.presence('room');
    s.reply(await s.next('subscribe', 'room'), { type: 'subscribed', topic: 'room', position: '0' });
    const entering = p2.enter({ at: 'tab2' });
    s.reply(await s.next('presence.enter', 'room'), { type: 'ok' });
    await entering;
    tab2.close(); // e.g. the tab closed without calling leave()
    await s.next('presence.leave', 'room');
    tab1.close();
  });

  it('hands over: the next leader resumes from the positions and enters again', async () => {
    vi.stubGlobal('navigator', { locks: fakeLocks() });
    const w = mockWs();
    const opts = { url: `http://shared-ws-${Math.random()}`, transport: 'ws' as const, WebSocket: w.WebSocket, backoff: { minMs: 1, maxMs: 2 } };
    const tab1 = createClient(opts);
    const tab2 = createClient(opts);
    const got2: number[] = [];
    tab1.subscribe('chat', () => {});
    const s0 = await w.sock(0);
    s0.open();
    await s0.subscribeAll('0');
    tab2.subscribe('chat', (m) => got2.push(m.seq!));
    const p2 = tab2.presence('room');
    s0.reply(await s0.next('subscribe', 'room'), { type: 'subscribed', topic: 'room', position: '0' });
    const entering = p2.enter({ n: 2 });
    s0.reply(await s0.next('presence.enter', 'room'), { type: 'ok' });
    await entering;
    s0.push(wsMsg('chat', 1, 1));
    s0.push(wsMsg('chat', 2, 2));
    await vi.waitFor(() => expect(got2).toEqual([1, 2]));

    tab1.close();
    expect(s0.closedWith).toBe(1000);
    const s1 = await w.sock(1);
    s1.open();
    expect((await s1.next('subscribe', 'chat')).position).toBe('2');
    expect(await s1.next('presence.enter', 'room')).toMatchObject({ data: { n: 2 } });
    await s1.subscribeAll('0');
    s1.push(wsMsg('chat', 3, 3));
    await vi.waitFor(() => expect(got2).toEqual([1, 2, 3]));
    expect(p2.entered).toBe(true);
    tab2.close();
  });
});
