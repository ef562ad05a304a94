// Shows client.endpoint() against a real local HTTP server (PiCloud's script endpoints are not
// served yet, so this stands in for them): query strings, JSON bodies, the token header, validate
// (a Zod schema as is), PiCloud error bodies as PiCloudError, and one token refresh on 401.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createClient, PiCloudError } from '../../src/index';

interface Seen {
  method: string;
  url: string;
  auth: string | undefined;
  type: string | undefined;
  body: string;
}

let server: Server;
let base: string;
const seen: Seen[] = [];

const read = (req: IncomingMessage) =>
  new Promise<string>((res) => {
    let b = '';
    req.on('data', (c: Buffer) => (b += c.toString()));
    req.on('end', () => res(b));
  });

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const body = await read(req);
    seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, type: req.headers['content-type'], body });
    const json = (status: number, v: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(v));
    };
    if (req.url!.startsWith('/items') && req.method === 'GET') return json(200, [{ id: 1, name: 'one' }]);
    if (req.url === '/items' && req.method === 'POST') return json(201, { id: 2, ...JSON.parse(body) });
    if (req.url === '/items/2' && req.method === 'PUT') return json(200, { id: 2, ...JSON.parse(body) });
    if (req.url === '/items/2' && req.method === 'DELETE') {
      res.writeHead(204);
      return res.end();
    }
    if (req.url === '/text') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end('plain');
    }
    if (req.url === '/private') {
      if (req.headers.authorization === 'Bearer good') return json(200, { ok: true });
      return json(401, { error: { code: 'unauthorized', message: 'unauthorized' } });
    }
    return json(404, { error: { code: 'not_found', message: 'route not found' } });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('endpoint', () => {
  it('GETs with a query and validates with a Zod schema', async () => {
    const c = createClient({ url: base, token: 'tok' });
    const Items = z.array(z.object({ id: z.number(), name: z.string() }));
    const items = await c.endpoint('/items').get({ query: { q: 'a b', tag: ['x', 'y'], page: 2, skip: undefined }, validate: Items });
    expect(items).toEqual([{ id: 1, name: 'one' }]);
    expect(seen.at(-1)).toMatchObject({ method: 'GET', url: '/items?q=a+b&tag=x&tag=y&page=2', auth: 'Bearer tok' });
  });

  it('rejects an answer the validator refuses', async () => {
    const c = createClient({ url: base });
    await expect(c.endpoint('items').get({ validate: z.object({ nope: z.string() }) })).rejects.toThrow();
  });

  it('POSTs and PUTs JSON, DELETE resolves undefined on 204, text stays text', async () => {
    const c = createClient({ url: `${base}/` });
    expect(await c.endpoint('/items').post({ body: { name: 'two' } })).toEqual({ id: 2, name: 'two' });
    expect(seen.at(-1)).toMatchObject({ method: 'POST', type: 'application/json', body: '{"name":"two"}', auth: undefined });
    expect(await c.endpoint('/items/2').put({ body: { name: 'deux' } })).toEqual({ id: 2, name: 'deux' });
    expect(await c.endpoint('/items/2').delete()).toBeUndefined();
    expect(await c.endpoint('/text').get()).toBe('plain');
  });

  it('throws PiCloudError with the server code and status', async () => {
    const c = createClient({ url: base });
    const e = await c.endpoint('/missing').get().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PiCloudError);
    expect(e).toMatchObject({ code: 'not_found', status: 404, message: 'route not found' });
  });

  it('refreshes the token once on 401', async () => {
    const tokens = ['stale', 'good'];
    const c = createClient({ url: base, getToken: () => tokens.shift() });
    expect(await c.endpoint('/private').get()).toEqual({ ok: true });
    expect(seen.slice(-2).map((s) => s.auth)).toEqual(['Bearer stale', 'Bearer good']);
    const fixed = createClient({ url: base, token: 'bad' });
    await expect(fixed.endpoint('/private').get()).rejects.toMatchObject({ code: 'unauthorized', status: 401 });
  });
});
