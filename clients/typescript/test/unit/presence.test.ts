// Shows `client.presence(topic)`: members read with `presence.get` once the topic is subscribed,
// join / leave / update events applied on top (idempotently), the list read again after a
// reconnect with the difference reported as events; one connection enters a topic once for any
// number of handles and leaves with the last; `update` before `enter` and refused enters; an
// enter made while connecting resolves once the connection entered; over SSE only the events.
import { describe, expect, it, vi } from 'vitest';
import { createClient, type PresenceMember } from '../../src/index';
import { frame, mockSse } from '../support/mock-sse';
import { mockWs } from '../support/mock-ws';

const ws = () => {
  const w = mockWs();
  const c = createClient({ url: 'http://x', transport: 'ws', WebSocket: w.WebSocket, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 2 } });
  return { w, c };
};

describe('presence', () => {
  it('reads the members, applies events, and reports what changed while disconnected', async () => {
    const { w, c } = ws();
    const p = c.presence<{ n: number } | null>('room');
    const log: string[] = [];
    const lists: PresenceMember<unknown>[][] = [];
    p.onJoin((m) => log.push(`join ${m.sub} ${JSON.stringify(m.data)}`));
    p.onLeave((m) => log.push(`leave ${m.sub}`));
    p.onUpdate((m) => log.push(`update ${m.sub} ${JSON.stringify(m.data)}`));
    p.onChange((members) => lists.push(members));
    const s0 = await w.sock(0);
    s0.open();
    await s0.subscribeAll();
    const get = await s0.next('presence.get', 'room');
    s0.reply(get, { type: 'members', topic: 'room', members: [{ sub: 'ann', data: { n: 1 } }] });
    await vi.waitFor(() => expect(p.members).toEqual([{ sub: 'ann', data: { n: 1 } }]));
    const ev = (event: string, sub: string, data: unknown) => s0.push({ type: 'presence', topic: 'room', event, member: { sub, data } });
    ev('join', 'bob', null);
    ev('join', 'ann', { n: 1 }); // already listed as is: no event
    ev('update', 'ann', { n: 2 });
    ev('leave', 'bob', null);
    ev('leave', 'bob', null); // not there: no event
    expect(log).toEqual(['join ann {"n":1}', 'join bob null', 'update ann {"n":2}', 'leave bob']);
    expect(p.members).toEqual([{ sub: 'ann', data: { n: 2 } }]);
    expect(lists).toHaveLength(4);

    // While disconnected, ann left and cid came: the list read after the reconnect says so.
    s0.drop();
    const s1 = await w.sock(1);
    s1.open();
    await s1.subscribeAll();
    s1.reply(await s1.next('presence.get', 'room'), { type: 'members', topic: 'room', members: [{ sub: 'cid', data: null }] });
    await vi.waitFor(() => expect(p.members).toEqual([{ sub: 'cid', data: null }]));
    expect(log.slice(4)).toEqual(['leave ann', 'join cid null']);
    expect(lists).toHaveLength(5); // one change for the whole read
    p.close(); // the last subscription: the connection closes
    await vi.waitFor(() => expect(s1.closedWith).toBe(1000));
  });

  it('keeps an event that arrived before an older read answer', async () => {
    const { w, c } = ws();
    const p = c.presence('room');
    const log: string[] = [];
    p.onJoin((m) => log.push(`join ${m.sub}`));
    p.onLeave((m) => log.push(`leave ${m.sub}`));
    const s = await w.sock(0);
    s.open();
    await s.subscribeAll();
    const get = await s.next('presence.get', 'room');
    // As the real server did after a restart: the join first, then an answer from before it.
    s.push({ type: 'presence', topic: 'room', event: 'join', member: { sub: 'dan', data: 1 } });
    s.push({ type: 'presence', topic: 'room', event: 'join', member: { sub: 'eve', data: 1 } });
    s.push({ type: 'presence', topic: 'room', event: 'leave', member: { sub: 'eve', data: 1 } });
    s.reply(get, { type: 'members', topic: 'room', members: [{ sub: 'eve', data: 1 }] });
    await vi.waitFor(() => expect(log).toHaveLength(3));
    await new Promise((r) => setTimeout(r, 10));
    expect(p.members).toEqual([{ sub: 'dan', data: 1 }]);
    expect(log).toEqual(['join dan', 'join eve', 'leave eve']);
    c.close();
  });

  it('enters once per connection for any number of handles, and leaves with the last', async () => {
    const { w, c } = ws();
    const a = c.presence('room');
    const b = c.presence('room');
    const s = await w.sock(0);
    s.open();
    await s.subscribeAll();
    const entering = a.enter({ name: 'ann' });
    s.reply(await s.next('presence.enter', 'room'), { type: 'ok' });
    await entering;
    await b.enter({ name: 'ann' }); // the same member, the same data: nothing to send
    const updating = b.update({ name: 'Ann' });
    const upd = await s.next('presence.update', 'room');
    expect(upd.data).toEqual({ name: 'Ann' });
    s.reply(upd, { type: 'ok' });
    await updating;
    await a.leave(); // b still holds it
    expect(s.sent.filter((f) => f.type === 'presence.leave')).toHaveLength(0);
    const leaving = b.leave();
    s.reply(await s.next('presence.leave', 'room'), { type: 'ok' });
    await leaving;
    expect(s.sent.filter((f) => f.type.startsWith('presence.') && f.type !== 'presence.get').map((f) => f.type)).toEqual([
      'presence.enter',
      'presence.update',
      'presence.leave',
    ]);
    c.close();
  });

  it('shows the data of the handles that stay when the latest writer leaves', async () => {
    const { w, c } = ws();
    const a = c.presence('room');
    const b = c.presence('room');
    const s = await w.sock(0);
    s.open();
    await s.subscribeAll();
    const ok = async (p: Promise<void>, type: string, n: number) => {
      const f = await s.next(type, 'room', n);
      s.reply(f, { type: 'ok' });
      await p;
      return f.data;
    };
    expect(await ok(a.enter({ page: '/a' }), 'presence.enter', 0)).toEqual({ page: '/a' });
    expect(await ok(b.enter({ page: '/b' }), 'presence.update', 0)).toEqual({ page: '/b' });
    expect(await ok(b.leave(), 'presence.update', 1)).toEqual({ page: '/a' });
    await a.update({ page: '/a' }); // what the server shows already: nothing to send
    expect(s.sent.filter((f) => f.type.startsWith('presence.') && f.type !== 'presence.get')).toHaveLength(3);
    c.close();
  });

  it('refuses update before enter, and rolls back a refused enter', async () => {
    const { w, c } = ws();
    const p = c.presence('room');
    const s = await w.sock(0);
    s.open();
    await s.subscribeAll();
    await expect(p.update(1)).rejects.toMatchObject({ code: 'not_entered' });
    const refused = p.enter(1);
    s.reply(await s.next('presence.enter'), { type: 'error', code: 'forbidden', message: 'presence is off' });
    await expect(refused).rejects.toMatchObject({ code: 'forbidden' });
    expect(p.entered).toBe(false);
    const again = p.enter(2);
    s.reply(await s.next('presence.enter', 'room', 1), { type: 'ok' }); // an enter again, not an update
    await again;
    expect(p.entered).toBe(true);
    c.close();
  });

  it('resolves an enter made while connecting once the connection entered', async () => {
    const { w, c } = ws();
    const p = c.presence('room');
    let done = false;
    const entering = p.enter({ n: 1 }).then(() => (done = true));
    const s = await w.sock(0);
    s.open();
    const f = await s.next('presence.enter', 'room');
    expect(done).toBe(false);
    s.reply(f, { type: 'ok' });
    await entering;
    expect(s.sent.filter((x) => x.type === 'presence.enter')).toHaveLength(1);
    c.close();
  });

  it('keeps the list from SSE presence events when the transport is sse', async () => {
    const m = mockSse();
    const c = createClient({ url: 'http://x', fetch: m.fetch, transport: 'sse', shareAcrossTabs: false });
    const p = c.presence('room');
    const r = await m.request(0);
    r.push(`retry: 1\n\n${frame('presence', { topic: 'room', event: 'join', member: { sub: 'ann', data: 1 } })}`);
    await vi.waitFor(() => expect(p.members).toEqual([{ sub: 'ann', data: 1 }]));
    await expect(p.enter()).rejects.toMatchObject({ code: 'unsupported' });
    c.close();
  });
});
