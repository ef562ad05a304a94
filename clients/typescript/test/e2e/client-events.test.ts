// Shows client events against the real binary: `client.publish` reaches a subscriber over SSE and
// one over WebSocket (and the sender itself) as an ephemeral message; it is refused (`forbidden`)
// without the token's `publish` claim or without the topic's `client_publish`, and the connection
// stays; over the topic's `client_event_limit` (and the app's `client_events_per_sec`) it is
// refused with `rate_limited` and `retryAfterMs`, on the same connection, and accepted again after
// that wait.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type PiCloudError, type StatusEvent, type TopicMessage } from '../../src/index';
import { appFetch, AppWebSocket, PiCloud, until } from '../support/picloud';

let pc: PiCloud;
beforeAll(async () => {
  pc = await PiCloud.start();
  await pc.createApp();
  await pc.topic('chat', { client_publish: true });
  await pc.topic('locked'); // client_publish: false (the default)
  await pc.topic('typing', { client_publish: true, client_event_limit: { count: 2, per_secs: 1 } });
  await pc.topic('burst', { client_publish: true });
});
afterAll(() => pc?.destroy());

const wsClient = (token?: string) =>
  createClient({ url: pc.appUrl(), fetch: appFetch, WebSocket: AppWebSocket, transport: 'ws', ...(token !== undefined && { token }) });

describe('client events', () => {
  it('reach an SSE subscriber, a WebSocket subscriber and the sender', async () => {
    const viaSse = createClient({ url: pc.appUrl(), fetch: appFetch, transport: 'sse' });
    const viaWs = wsClient();
    const sender = wsClient(await pc.token({ topics: ['chat'], publish: ['chat'], subject: 'ann' }));
    const got: Record<string, TopicMessage[]> = { sse: [], ws: [], sender: [] };
    viaSse.subscribe('chat', (m) => got.sse!.push(m));
    viaWs.subscribe('chat', (m) => got.ws!.push(m));
    sender.subscribe('chat', (m) => got.sender!.push(m));
    await until(() => viaSse.state === 'open' && viaWs.state === 'open' && sender.state === 'open', 'three open');
    await pc.connections(3);
    await sender.publish('chat', { text: 'typing…' });
    await until(() => got.sse!.length === 1 && got.ws!.length === 1 && got.sender!.length === 1, 'the event everywhere');
    for (const k of ['sse', 'ws', 'sender']) {
      expect(got[k]![0]).toMatchObject({ topic: 'chat', seq: null, message: { text: 'typing…' } });
      expect(got[k]![0]!.id).toBeUndefined();
      expect(Date.parse(got[k]![0]!.publishedAt)).toBeGreaterThan(0);
    }
    // Not stored: a durable message published next is seq 1.
    expect((await pc.publish('chat', { durable: true })).seq).toBe(1);
    await until(() => got.ws!.length === 2 && got.sse!.length === 2, 'the durable message');
    expect(got.ws![1]!.seq).toBe(1);
    for (const c of [viaSse, viaWs, sender]) c.close();
    await pc.connections(0);
  });

  it('is forbidden without the publish claim or the topic setting, and the connection stays', async () => {
    const noClaim = wsClient(await pc.token({ topics: ['chat'], subject: 'ann' }));
    const events: StatusEvent[] = [];
    const got: unknown[] = [];
    noClaim.subscribe('chat', (m) => got.push(m.message), { onStatus: (e) => events.push(e) });
    await until(() => noClaim.state === 'open', 'open');
    const e1 = (await noClaim.publish('chat', 1).catch((e: PiCloudError) => e)) as PiCloudError;
    expect(e1).toMatchObject({ name: 'PiCloudError', code: 'forbidden', fatal: false });

    const claimed = wsClient(await pc.token({ topics: ['chat', 'locked'], publish: ['chat', 'locked'], subject: 'bob' }));
    const e2 = (await claimed.publish('locked', 1).catch((e: PiCloudError) => e)) as PiCloudError;
    expect(e2.code).toBe('forbidden');
    // Allowed once the topic allows it.
    await pc.patchTopic('locked', { client_publish: true });
    await until(async () => (await claimed.publish('locked', 2).then(() => true, () => false)), 'accepted after the PATCH', 10_000);

    // Still the same connection, still delivering.
    await pc.publish('chat', 'after');
    await until(() => got.includes('after'), 'a message after the refusal');
    expect(events.map((e) => e.new)).toEqual(['connecting', 'open']);
    noClaim.close();
    claimed.close();
    await pc.connections(0);
  });

  it('is rate limited per topic, and accepted again after the wait', async () => {
    const c = wsClient(await pc.token({ topics: ['typing'], publish: ['typing'], subject: 'ann' }));
    const events: StatusEvent[] = [];
    c.subscribe('typing', () => {}, { onStatus: (e) => events.push(e) });
    await until(() => c.state === 'open', 'open');
    let limited: PiCloudError | undefined;
    let accepted = 0;
    for (let i = 0; i < 10 && !limited; i++) {
      await c.publish('typing', i).then(
        () => accepted++,
        (e: PiCloudError) => (limited = e),
      );
    }
    expect(accepted).toBe(2); // count: 2 per second
    expect(limited).toMatchObject({ code: 'rate_limited' });
    expect(limited!.retryAfterMs).toBeGreaterThan(0);
    expect(limited!.retryAfterMs).toBeLessThanOrEqual(1000);
    await new Promise((r) => setTimeout(r, limited!.retryAfterMs! + 50));
    await expect(c.publish('typing', 'again')).resolves.toBeUndefined();
    expect(events.map((e) => e.new)).toEqual(['connecting', 'open']); // the connection stayed
    await pc.connections(1);
    c.close();
    await pc.connections(0);
  });

  it('is rate limited by the app quota, and accepted again after the wait', async () => {
    await pc.quotas({ client_events_per_sec: 2 });
    const c = wsClient(await pc.token({ topics: ['burst'], publish: ['burst'], subject: 'ann' }));
    let limited: PiCloudError | undefined;
    let accepted = 0;
    for (let i = 0; i < 50 && !limited; i++) {
      await c.publish('burst', i).then(
        () => accepted++,
        (e: PiCloudError) => (limited = e),
      );
    }
    expect(limited).toMatchObject({ code: 'rate_limited' });
    expect(accepted).toBeGreaterThanOrEqual(2);
    expect(accepted).toBeLessThanOrEqual(4); // bursts of twice the rate
    await new Promise((r) => setTimeout(r, limited!.retryAfterMs! + 50));
    await expect(c.publish('burst', 'again')).resolves.toBeUndefined();
    c.close();
    await pc.quotas({});
  });
});
