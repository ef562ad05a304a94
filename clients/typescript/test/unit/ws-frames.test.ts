// Shows the WebSocket transport frame by frame (docs/protocol.md, "WebSocket"): the URL (ws/wss
// from http/https, `?token=`), the `picloud.v1` subprotocol, one `subscribe` per topic, `open` once
// every topic is answered, messages handed over exactly like SSE's (same TopicMessage, dedupe by
// seq, ephemeral with seq null, resync moving the position), topics added, dropped and rewound on
// the open socket without reconnecting, and a refused or closed topic failing alone.
import { describe, expect, it, vi } from 'vitest';
import { createClient, type PiCloudError, type ResyncEvent, type TopicMessage } from '../../src/index';
import { mockWs, wsMsg } from '../support/mock-ws';
import { sleep } from '../support/mock-sse';

const at = '2026-01-01T00:00:00.000Z';

describe('websocket frames', () => {
  it('connects with the token and subprotocol, subscribes each topic, delivers like SSE', async () => {
    const w = mockWs();
    const c = createClient({ url: 'https://demo.example.com/', token: 't k', transport: 'ws', WebSocket: w.WebSocket, shareAcrossTabs: false });
    const got: TopicMessage[] = [];
    const seen: string[] = [];
    const resyncs: ResyncEvent[] = [];
    c.subscribe(['chat', 'news'], (m) => got.push(m), {
      onPosition: (e) => seen.push(`${e.topic}@${e.position}`),
      onResync: (e) => resyncs.push(e),
    });
    const s = await w.sock(0);
    expect(s.url).toBe('wss://demo.example.com/realtime/ws?token=t%20k');
    expect(s.protocols).toBe('picloud.v1');
    s.open();
    const chat = await s.next('subscribe', 'chat');
    const news = await s.next('subscribe', 'news');
    expect(chat).toEqual({ type: 'subscribe', topic: 'chat', id: expect.any(Number) }); // no position: from the end
    s.reply(chat, { type: 'subscribed', topic: 'chat', position: '4' });
    await sleep(5);
    expect(c.state).toBe('connecting'); // not before every topic is answered
    s.reply(news, { type: 'subscribed', topic: 'news', position: '0' });
    await vi.waitFor(() => expect(c.state).toBe('open'));
    expect(seen).toEqual(['chat@4', 'news@0']);

    s.push(wsMsg('chat', 4, 'old')); // at the position: already had
    s.push(wsMsg('chat', 5, 'a'));
    s.push(wsMsg('chat', 5, 'a')); // a duplicate
    s.push(wsMsg('news', null, 'typing')); // ephemeral (a client event)
    s.push({ type: 'resync', topic: 'news', from: 1, to: 3, reason: 'retention', position: '3' });
    s.push(wsMsg('news', 3, 'gone'));
    s.push(wsMsg('news', 4, 'b'));
    expect(got).toEqual([
      { topic: 'chat', seq: 5, message: 'a', publishedAt: at, id: 'chat=5,news=0' },
      { topic: 'news', seq: null, message: 'typing', publishedAt: at },
      { topic: 'news', seq: 4, message: 'b', publishedAt: at, id: 'chat=5,news=4' },
    ]);
    expect(resyncs).toEqual([{ topic: 'news', from: 1, to: 3, reason: 'retention' }]);
    c.close();
    expect(s.closedWith).toBe(1000);
  });

  it('adds, drops and rewinds topics on the open socket', async () => {
    const w = mockWs();
    const c = createClient({ url: 'http://demo.localhost:8080', transport: 'ws', WebSocket: w.WebSocket, shareAcrossTabs: false });
    const first: number[] = [];
    const later: number[] = [];
    c.subscribe('chat', (m) => first.push(m.seq!));
    const s = await w.sock(0);
    expect(s.url).toBe('ws://demo.localhost:8080/realtime/ws');
    s.open();
    await s.next('subscribe', 'chat');
    await s.subscribeAll('2');
    await vi.waitFor(() => expect(c.state).toBe('open'));

    const unNews = c.subscribe('news', () => {});
    s.reply(await s.next('subscribe', 'news'), { type: 'subscribed', topic: 'news', position: '0' });
    // A subscription asking for history: the topic is subscribed again from there.
    c.subscribe('chat', (m) => later.push(m.seq!), { lastEventId: '0' });
    await s.next('unsubscribe', 'chat');
    const again = await s.next('subscribe', 'chat', 1);
    expect(again.position).toBe('0');
    s.reply(again, { type: 'subscribed', topic: 'chat', position: '0' });
    for (const i of [1, 2, 3]) s.push(wsMsg('chat', i, i));
    expect(later).toEqual([1, 2, 3]);
    expect(first).toEqual([3]); // it had 1 and 2 (its position was 2)

    unNews();
    await s.next('unsubscribe', 'news');
    expect(w.socks).toHaveLength(1);
    expect(c.state).toBe('open');
    c.close();
  });

  it('fails a refused topic alone, and asks again for a closed one', async () => {
    const w = mockWs();
    const c = createClient({ url: 'http://x', transport: 'ws', WebSocket: w.WebSocket, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 2 } });
    const errs: string[] = [];
    const log = (topic: string) => (e: PiCloudError) => errs.push(`${topic}:${e.code}:${e.fatal}`);
    const got: number[] = [];
    c.subscribe('chat', (m) => got.push(m.seq!), { onError: log('chat') });
    c.subscribe('gone', () => {}, { onError: log('gone') });
    const s = await w.sock(0);
    s.open();
    s.reply(await s.next('subscribe', 'chat'), { type: 'subscribed', topic: 'chat', position: '1' });
    s.reply(await s.next('subscribe', 'gone'), { type: 'error', code: 'not_found', message: 'no such topic' });
    await vi.waitFor(() => expect(c.state).toBe('open'));
    expect(errs).toEqual(['gone:not_found:true']);

    s.push(wsMsg('chat', 2, 2));
    s.push({ type: 'unsubscribed', topic: 'chat', code: 'topic_closed' });
    expect(errs).toEqual(['gone:not_found:true', 'chat:topic_closed:false']);
    const again = await s.next('subscribe', 'chat', 1);
    expect(again.position).toBe('2');
    s.reply(again, { type: 'subscribed', topic: 'chat', position: '2' });
    s.push(wsMsg('chat', 3, 3));
    expect(got).toEqual([2, 3]);
    expect(s.sent.filter((f) => f.topic === 'gone')).toHaveLength(1); // not asked again
    expect(w.socks).toHaveLength(1);
    c.close();
  });
});
