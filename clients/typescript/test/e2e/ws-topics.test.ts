// Shows, against the real binary, the WebSocket paths a fake socket cannot vouch for: on
// `token_expiring` the client sends a fresh token as `refresh` and keeps its connection (no
// reconnect, nothing missed); a topic made token-only under a public subscriber ends with
// `unsubscribed` (`topic_closed`, non-fatal), asked again it is refused (`unauthorized`, fatal for
// that topic only) while the connection's other topic goes on; an SSE subscriber of a presence
// topic gets the presence events (`event: presence`) and lists the members from them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type PiCloudError, type StatusEvent } from '../../src/index';
import { appFetch, AppWebSocket, PiCloud, until } from '../support/picloud';

let pc: PiCloud;
beforeAll(async () => {
  pc = await PiCloud.start();
  await pc.createApp();
  await pc.topic('private', { auth_mode: 'token' });
  await pc.topic('chat');
  await pc.topic('closing');
  await pc.topic('room', { presence: true });
});
afterAll(() => pc?.destroy());

describe('websocket topics and tokens', () => {
  it('refreshes the token in place on token_expiring, on the same connection', async () => {
    let minted = 0;
    const c = createClient({
      url: pc.appUrl(),
      fetch: appFetch,
      WebSocket: AppWebSocket,
      transport: 'ws',
      // 61 s: the server warns at once (60 s before expiry).
      getToken: () => (minted++, pc.mint(['private'], 61)),
    });
    const seqs: number[] = [];
    const events: StatusEvent[] = [];
    const warned: number[] = [];
    c.subscribe('private', (m) => seqs.push(m.seq!), { onStatus: (e) => events.push(e), onTokenExpiring: (e) => warned.push(e.expiresIn) });
    await until(() => c.state === 'open', 'open');
    await until(() => minted >= 2 && warned.length >= 1, 'a warning and a fresh token', 30_000);
    await pc.publish('private', { n: 1 });
    await until(() => seqs.length === 1, 'a message after the refresh');
    expect(events.map((e) => e.new)).toEqual(['connecting', 'open']);
    await pc.connections(1);
    c.close();
    await pc.connections(0);
  });

  it('surfaces topic_closed, then the refusal, for that topic only', async () => {
    const c = createClient({ url: pc.appUrl(), fetch: appFetch, WebSocket: AppWebSocket, transport: 'ws', backoff: { minMs: 100, maxMs: 200 } });
    const errs: string[] = [];
    const chat: number[] = [];
    c.subscribe('closing', () => {}, { onError: (e: PiCloudError) => errs.push(`${e.code}:${e.fatal}`) });
    c.subscribe('chat', (m) => chat.push(m.seq!), { onError: (e: PiCloudError) => errs.push(`chat ${e.code}`) });
    await until(() => c.state === 'open', 'open');
    await pc.patchTopic('closing', { auth_mode: 'token' });
    await until(() => errs.length >= 2, 'topic_closed, then the refusal', 30_000);
    expect(errs).toEqual(['topic_closed:false', 'unauthorized:true']);
    await pc.publish('chat', 'still here');
    await until(() => chat.length === 1, 'the other topic goes on');
    expect(c.state).toBe('open');
    c.close();
  });

  it('gives an SSE subscriber the presence events', async () => {
    const sse = createClient({ url: pc.appUrl(), fetch: appFetch, transport: 'sse' });
    const seen = sse.presence('room');
    const events: string[] = [];
    seen.onJoin((m) => events.push(`join ${m.sub}`));
    seen.onUpdate((m) => events.push(`update ${m.sub}`));
    seen.onLeave((m) => events.push(`leave ${m.sub}`));
    await until(() => sse.state === 'open', 'open over SSE');
    const eve = createClient({ url: pc.appUrl(), fetch: appFetch, WebSocket: AppWebSocket, token: await pc.token({ topics: ['room'], subject: 'eve' }) });
    const mine = eve.presence('room');
    await mine.enter({ mood: 'ok' });
    await until(() => seen.members.length === 1, 'the SSE page lists eve');
    expect(seen.members).toEqual([{ sub: 'eve', data: { mood: 'ok' } }]);
    await mine.update({ mood: 'great' });
    await mine.leave();
    await until(() => events.length === 3, 'three events');
    expect(events).toEqual(['join eve', 'update eve', 'leave eve']);
    expect(seen.members).toEqual([]);
    eve.close();
    sse.close();
  });
});
