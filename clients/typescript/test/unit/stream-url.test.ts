// Shows the `streamUrl` option: the stream is read from the URL it returns for the subscribed topics
// (here the admin API's per-topic stream), with the token as `Authorization: Bearer` and the
// resume position as `Last-Event-ID` on a reconnect; without it the default `/realtime?topic=…` is used.
import { describe, expect, it, vi } from 'vitest';
import { createClient, type TopicMessage } from '../../src/index';
import { msg, mockSse } from '../support/mock-sse';

describe('streamUrl', () => {
  it('reads the stream from the URL the option returns, and resumes there', async () => {
    const m = mockSse();
    const got: TopicMessage[] = [];
    const asked: (readonly string[])[] = [];
    const c = createClient({
      url: 'http://admin',
      token: 'pk_admin',
      fetch: m.fetch,
      shareAcrossTabs: false,
      backoff: { minMs: 1, maxMs: 1 },
      streamUrl: (topics) => {
        asked.push([...topics]);
        return `http://admin/api/v1/apps/demo/topics/${encodeURIComponent(topics[0]!)}/stream`;
      },
    });
    c.subscribe('chat', (x) => got.push(x));
    const r0 = await m.request(0);
    expect(r0.url).toBe('http://admin/api/v1/apps/demo/topics/chat/stream');
    expect(r0.headers.authorization).toBe('Bearer pk_admin');
    expect(asked).toEqual([['chat']]);
    r0.push(`retry: 1\n\n${msg('chat', 7, { n: 7 })}`);
    await vi.waitFor(() => expect(got.map((g) => g.seq)).toEqual([7]));
    r0.end();
    const r1 = await m.request(1);
    expect(r1.url).toBe('http://admin/api/v1/apps/demo/topics/chat/stream');
    expect(r1.headers['last-event-id']).toBe('chat=7');
    c.close();
  });

  it('defaults to the app host realtime URL', async () => {
    const m = mockSse();
    const c = createClient({ url: 'http://demo.localhost/', fetch: m.fetch, shareAcrossTabs: false });
    c.subscribe(['b', 'a.x'], () => {});
    expect((await m.request(0)).url).toBe('http://demo.localhost/realtime?topic=b&topic=a.x');
    c.close();
  });
});
