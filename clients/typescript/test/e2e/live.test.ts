// Shows, against the real picloud binary: a message published through the admin API reaches a
// subscriber; several topics share one server-side connection; subscribing to another topic later
// re-opens that one connection without losing anything; ephemeral messages arrive with seq null;
// unsubscribing closes the server-side connection.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type TopicMessage } from '../../src/index';
import { appFetch, PiCloud, until } from '../support/picloud';

let pc: PiCloud;
beforeAll(async () => {
  pc = await PiCloud.start();
  await pc.createApp();
  for (const t of ['chat', 'news', 'b.x']) await pc.createTopic(t);
});
afterAll(() => pc?.destroy());

describe('live delivery', () => {
  it('receives a publish', async () => {
    const c = createClient({ url: pc.appUrl(), fetch: appFetch });
    const got: TopicMessage<{ text: string }>[] = [];
    const un = c.subscribe<{ text: string }>('chat', (m) => got.push(m));
    await until(() => c.state === 'open', 'open');
    const p = await pc.publish('chat', { text: 'hello' });
    await until(() => got.length === 1, 'the message');
    expect(got[0]).toEqual({ topic: 'chat', seq: p.seq, message: { text: 'hello' }, publishedAt: got[0]!.publishedAt, id: `chat=${p.seq}` });
    expect(Date.parse(got[0]!.publishedAt)).toBe(Date.parse(p.published_at));
    await pc.api('POST', '/apps/demo/topics/chat/publish?ephemeral=true', { typing: true });
    await until(() => got.length === 2, 'the ephemeral message');
    expect(got[1]).toMatchObject({ seq: null, message: { typing: true } });
    un();
    await pc.connections(0);
  });

  it('carries several topics on one connection, and adds one without losing messages', async () => {
    const c = createClient({ url: pc.appUrl(), fetch: appFetch });
    const got: string[] = [];
    c.subscribe(['chat', 'news'], (m) => got.push(`${m.topic}:${String(m.message)}`));
    await until(() => c.state === 'open', 'open');
    await pc.connections(1);
    await pc.publish('news', 'n1');
    await pc.publish('chat', 'c1');
    await until(() => got.length === 2, 'two messages');
    // A new topic re-opens the connection with the combined position; publish while it does.
    c.subscribe('b.x', (m) => got.push(`${m.topic}:${String(m.message)}`));
    const during = pc.publish('chat', 'c2');
    await until(() => c.state === 'open', 'reopened');
    await during;
    await pc.publish('b.x', 'x1');
    await pc.publish('news', 'n2');
    await until(() => got.length === 5, 'five messages');
    expect(got.sort()).toEqual(['b.x:x1', 'chat:c1', 'chat:c2', 'news:n1', 'news:n2']);
    await pc.connections(1);
    c.close();
    await pc.connections(0);
  });
});
