// Shows that SSE frames are reassembled whatever the chunking: a frame split across chunks, a
// multi-byte UTF-8 character split between two chunks, CRLF line ends, keepalive comments, and
// ephemeral messages (no id, seq null) among durable ones.
import { describe, expect, it, vi } from 'vitest';
import { createClient, type TopicMessage } from '../../src/index';
import { msg, mockSse } from '../support/mock-sse';

const enc = new TextEncoder();

describe('frames', () => {
  it('reassembles a frame split across many chunks', async () => {
    const m = mockSse();
    const got: TopicMessage[] = [];
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false });
    c.subscribe('chat', (x) => got.push(x));
    const r = await m.request(0);
    const text = `retry: 2000\n\n: keepalive\n\n${msg('chat', 1, { text: 'hello' })}${msg('chat', 2, { text: 'world' })}`;
    for (const ch of text) r.push(ch); // one character per chunk
    await vi.waitFor(() => expect(got.map((g) => g.seq)).toEqual([1, 2]));
    expect(got[0]).toEqual({ topic: 'chat', seq: 1, message: { text: 'hello' }, publishedAt: '2026-01-01T00:00:00.000Z', id: 'chat=1' });
    c.close();
  });

  it('keeps multi-byte UTF-8 characters split between chunks whole', async () => {
    const m = mockSse();
    const got: unknown[] = [];
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false });
    c.subscribe('chat', (x) => got.push(x.message));
    const r = await m.request(0);
    const bytes = enc.encode(msg('chat', 1, { text: 'héllo 日本 🎉' }));
    // Split every 1 byte: every multi-byte sequence (2, 3 and 4 bytes) is cut.
    for (let i = 0; i < bytes.length; i++) r.push(bytes.slice(i, i + 1));
    await vi.waitFor(() => expect(got).toEqual([{ text: 'héllo 日本 🎉' }]));
    c.close();
  });

  it('accepts CRLF line ends and delivers ephemeral messages with seq null', async () => {
    const m = mockSse();
    const got: TopicMessage[] = [];
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false });
    c.subscribe('chat', (x) => got.push(x));
    const r = await m.request(0);
    r.push(msg('chat', null, 'typing').replace(/\n/g, '\r\n'));
    r.push(msg('chat', 1, 'durable'));
    await vi.waitFor(() => expect(got.map((g) => [g.seq, g.message])).toEqual([[null, 'typing'], [1, 'durable']]));
    expect(got[0]!.id).toBeUndefined();
    c.close();
  });

  it('asks for the topics in the query and sends no position on a first connect', async () => {
    const m = mockSse();
    const c = createClient({ url: 'http://x/', fetch: m.fetch, shareAcrossTabs: false });
    c.subscribe(['a', 'b.x', 'a'], () => {});
    const r = await m.request(0);
    expect(r.url).toBe('http://x/realtime?topic=a&topic=b.x');
    expect(r.headers['last-event-id']).toBeUndefined();
    expect(r.headers.accept).toBe('text/event-stream');
    c.close();
  });
});
