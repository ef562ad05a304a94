// Shows presence against the real binary: two clients with the same `sub` (two tabs of one user
// that do not share a connection) are one member, and an observer sees one join; closing one is
// no leave, closing both is exactly one leave. A member updating its data 20 times is 20 update
// events, with no leave or join. After a server restart the client subscribes and enters again by
// itself, and reads the members again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type Presence, type PiCloudClient } from '../../src/index';
import { appFetch, AppWebSocket, PiCloud, until } from '../support/picloud';

let pc: PiCloud;
beforeAll(async () => {
  pc = await PiCloud.start();
  await pc.createApp();
  await pc.topic('room', { presence: true });
  await pc.topic('lobby', { presence: true });
  await pc.topic('plain');
  // 21 presence operations in a row: above the default rate (5 a second, bursts of 10).
  await pc.quotas({ presence_per_sec: 100 });
});
afterAll(() => pc?.destroy());

const client = async (sub?: string, topics = ['room', 'lobby', 'plain']) =>
  createClient({
    url: pc.appUrl(),
    fetch: appFetch,
    WebSocket: AppWebSocket,
    ...(sub !== undefined && { token: await pc.token({ topics, subject: sub }) }),
  });

/** Records an observer's presence events as `join ann`, `update ann {…}`, `leave ann`. */
function watch(p: Presence): string[] {
  const log: string[] = [];
  p.onJoin((m) => log.push(`join ${m.sub}`));
  p.onLeave((m) => log.push(`leave ${m.sub}`));
  p.onUpdate((m) => log.push(`update ${m.sub} ${JSON.stringify(m.data)}`));
  return log;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('presence', () => {
  it('is one member for two connections of one sub: one join, no leave for the first to go, one leave for the last', async () => {
    const observer = await client();
    const seen = observer.presence('room');
    const log = watch(seen);
    await until(() => observer.state === 'open', 'observer open');

    const tab1 = await client('ann');
    const tab2 = await client('ann');
    await tab1.presence('room').enter({ name: 'Ann' });
    await tab2.presence('room').enter({ name: 'Ann' });
    await until(async () => (await pc.members('room'))[0]?.connections === 2, 'two connections of ann');
    expect(await pc.members('room')).toEqual([{ sub: 'ann', data: { name: 'Ann' }, connections: 2 }]);
    await until(() => seen.members.length === 1, 'the observer lists ann');
    expect(seen.members).toEqual([{ sub: 'ann', data: { name: 'Ann' } }]);

    tab1.close();
    await until(async () => (await pc.members('room'))[0]?.connections === 1, 'one connection left');
    await sleep(500); // room for a wrong leave to arrive
    expect(seen.members).toEqual([{ sub: 'ann', data: { name: 'Ann' } }]);

    tab2.close();
    await until(() => log.includes('leave ann'), 'the leave');
    await sleep(500);
    expect(log).toEqual(['join ann', 'leave ann']);
    expect(await pc.members('room')).toEqual([]);
    expect(seen.members).toEqual([]);
    observer.close();
  });

  it('turns 20 updates into 20 update events, with no leave or join', async () => {
    const observer = await client();
    const seen = observer.presence('lobby');
    const log = watch(seen);
    await until(() => observer.state === 'open', 'observer open');
    const bob = await client('bob');
    const me = bob.presence<{ n: number }>('lobby');
    await me.enter({ n: 0 });
    await until(() => log.length === 1, 'the join');
    for (let n = 1; n <= 20; n++) await me.update({ n });
    await until(() => log.length === 21, '20 updates', 20_000);
    await sleep(300);
    expect(log).toEqual(['join bob', ...Array.from({ length: 20 }, (_, i) => `update bob {"n":${i + 1}}`)]);
    expect(seen.members).toEqual([{ sub: 'bob', data: { n: 20 } }]);
    expect(await pc.members('lobby')).toEqual([{ sub: 'bob', data: { n: 20 }, connections: 1 }]);
    bob.close();
    observer.close();
    await pc.connections(0);
  });

  it('refuses presence without a token, without a sub, or on a topic without presence', async () => {
    // docs/protocol.md: `unauthorized` for no token; `forbidden` for a token without a `sub`, or a
    // topic without presence.
    const anon = await client();
    await expect(anon.presence('room').enter()).rejects.toMatchObject({ code: 'unauthorized' });
    const noSub = createClient({ url: pc.appUrl(), fetch: appFetch, WebSocket: AppWebSocket, token: await pc.token({ topics: ['room'] }) });
    await expect(noSub.presence('room').enter()).rejects.toMatchObject({ code: 'forbidden' });
    const cid = await client('cid');
    await expect(cid.presence('plain').enter()).rejects.toMatchObject({ code: 'forbidden' });
    for (const c of [anon, noSub, cid]) c.close();
    await pc.connections(0);
  });

  it('enters again by itself after a server restart, and reads the members again', async () => {
    const observer: PiCloudClient = await client();
    const seen = observer.presence('room');
    const dan = await client('dan');
    const mine = dan.presence('room');
    await mine.enter({ at: 'desk' });
    await until(() => seen.members.length === 1, 'the observer lists dan');
    await pc.stop();
    await until(() => dan.state === 'reconnecting' && observer.state === 'reconnecting', 'both reconnecting');
    await pc.boot();
    await until(async () => (await pc.members('room')).length === 1, 'dan entered again', 60_000);
    expect(await pc.members('room')).toEqual([{ sub: 'dan', data: { at: 'desk' }, connections: 1 }]);
    await until(() => observer.state === 'open' && seen.members.length === 1, 'the observer reads dan again', 60_000);
    expect(seen.members).toEqual([{ sub: 'dan', data: { at: 'desk' } }]);
    expect(mine.entered).toBe(true);
    dan.close();
    await until(() => seen.members.length === 0, 'dan left');
    observer.close();
  });
});
