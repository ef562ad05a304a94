// Shows that a connection that keeps failing is not silent (issue 25: in Node, `*.localhost` does
// not resolve, and the client sat in `reconnecting` without a word): every failed attempt reaches
// `onError` as a non-fatal PiCloudError whose `cause` is the underlying error, while the state
// machine stays `reconnecting` and retries. With the README's Node recipe (`localhostFetch`) the
// same URL connects. Real sockets: Node's own fetch and DNS against a local `node:http` server.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createClient, type PiCloudError, type StatusEvent } from '../../src/index';
import { localhostFetch } from '../support/localhost-fetch';
import { errorAnswer, frame, mockSse } from '../support/mock-sse';
import { freePort } from '../support/picloud';

let server: Server;
let port: number;
beforeAll(async () => {
  // A minimal SSE endpoint: proves the URL is right, only the name resolution differs.
  server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`retry: 50\n\n${frame('message', { topic: 'chat', seq: 1, message: { host: req.headers.host }, published_at: '2026-01-01T00:00:00.000Z' }, '1')}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

/** Collects onError calls, with the state the client was in at each. */
function watch(url: string, fetch?: typeof localhostFetch) {
  const errors: { e: PiCloudError; state: string }[] = [];
  const events: StatusEvent[] = [];
  const messages: unknown[] = [];
  const c = createClient({ url, shareAcrossTabs: false, backoff: { minMs: 10, maxMs: 40 }, ...(fetch && { fetch }) });
  c.subscribe('chat', (m) => messages.push(m.message), {
    onError: (e) => errors.push({ e, state: c.state }),
    onStatus: (e) => events.push(e),
  });
  return { c, errors, events, messages };
}

describe('connection failures reach onError', () => {
  it('reports an unresolvable *.localhost name on every attempt, and keeps retrying', async () => {
    const { c, errors, events } = watch(`http://nope.localhost:${port}`); // Node's global fetch
    await vi.waitFor(() => expect(errors.length).toBeGreaterThanOrEqual(3), { timeout: 10_000 });
    c.close();
    for (const { e, state } of errors) {
      expect(e).toMatchObject({ name: 'PiCloudError', code: 'network', fatal: false, status: undefined });
      expect(state).toBe('reconnecting');
      // The cause is fetch's own TypeError; its cause is the DNS failure, named in the message too.
      expect(e.cause).toBeInstanceOf(TypeError);
      expect(((e.cause as Error).cause as NodeJS.ErrnoException).code).toBe('ENOTFOUND');
      expect(e.message).toMatch(/fetch failed.*ENOTFOUND nope\.localhost/);
    }
    expect(events[0]).toEqual({ old: 'closed', new: 'connecting' });
    expect(events[1]).toEqual({ old: 'connecting', new: 'reconnecting', code: 'network' });
    expect(events.slice(2, -1)).toEqual([]); // retries stay in `reconnecting` until close()
  });

  it('reports a refused connection the same way', async () => {
    const { c, errors } = watch(`http://127.0.0.1:${await freePort()}`);
    await vi.waitFor(() => expect(errors.length).toBeGreaterThanOrEqual(2), { timeout: 10_000 });
    c.close();
    expect(errors.map(({ e, state }) => [e.code, e.fatal, state])).toEqual(errors.map(() => ['network', false, 'reconnecting']));
    expect(((errors[0]!.e.cause as Error).cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
  });

  it('connects to the same *.localhost URL with the README recipe', async () => {
    const { c, errors, messages } = watch(`http://nope.localhost:${port}`, localhostFetch);
    await vi.waitFor(() => expect(messages).toEqual([{ host: `nope.localhost:${port}` }]), { timeout: 10_000 });
    expect(c.state).toBe('open');
    expect(errors).toEqual([]);
    c.close();
  });

  it('reports each retried failure with its code; fatal ones stay distinguishable', async () => {
    // #0 opens and ends with server_shutdown; #1 answers 503; #2 answers 404 (final).
    const m = mockSse((_, i) => (i === 1 ? errorAnswer(503, 'unavailable') : i === 2 ? errorAnswer(404, 'not_found') : undefined));
    const errors: [string, boolean, number | undefined, string][] = [];
    const c = createClient({ url: 'http://x', fetch: m.fetch, shareAcrossTabs: false, backoff: { minMs: 1, maxMs: 5 } });
    c.subscribe('chat', () => {}, { onError: (e) => errors.push([e.code, e.fatal, e.status, c.state]) });
    const r0 = await m.request(0);
    r0.push(`retry: 1\n\n${frame('error', { code: 'server_shutdown' })}`);
    r0.end();
    await vi.waitFor(() => expect(errors).toHaveLength(3));
    expect(errors).toEqual([
      ['server_shutdown', false, undefined, 'reconnecting'],
      ['unavailable', false, 503, 'reconnecting'],
      ['not_found', true, 404, 'closed'],
    ]);
  });
});
