// Shows subscriber tokens against the real server: a token-mode topic with a token provider gets a
// fresh token when the server says `token_expiring` (tokens minted with ttl 61 s, warned 60 s
// before) and keeps every message; a bad token is answered 401 and the provider's next token
// works; a fixed bad token is final (closed, fatal `unauthorized`, one request); a token minted by
// a tenant backend with `jose` and the app secret (the README's recipe) is accepted; retiring the
// secret that signed a stream's token ends it with `token_revoked`, and the client gets a new token
// and resumes without missing a message.
import { base64url, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type PiCloudError, type StatusEvent } from '../../src/index';
import { appFetch, PiCloud, until } from '../support/picloud';

let pc: PiCloud;
let appId: string;
beforeAll(async () => {
  pc = await PiCloud.start();
  appId = (await pc.createApp()).id;
  await pc.createTopic('private', 'token');
  await pc.createTopic('revocable', 'token');
});
afterAll(() => pc?.destroy());

describe('tokens', () => {
  it('refreshes on token_expiring and misses nothing', async () => {
    let minted = 0;
    const events: StatusEvent[] = [];
    const c = createClient({
      url: pc.appUrl(),
      fetch: appFetch,
      getToken: () => {
        minted++;
        return pc.mint(['private'], 61);
      },
    });
    const seqs: number[] = [];
    c.subscribe('private', (m) => seqs.push(m.seq!), { onStatus: (e) => events.push(e) });
    await until(() => c.state === 'open', 'open');
    await pc.publish('private', { n: 1 });
    await until(() => seqs.length === 1, 'first message');
    // About a second in, the server warns; the client reconnects with a new token.
    await until(() => minted >= 2 && c.state === 'open', 'a refreshed token', 30_000);
    expect(events.some((e) => e.code === 'token_expiring')).toBe(true);
    await pc.publish('private', { n: 2 });
    await until(() => seqs.length === 2, 'second message');
    expect(seqs).toEqual([1, 2]);
    c.close();
  });

  it('gets a new token when its secret is retired, and misses nothing', async () => {
    const { kid, secret } = await pc.api<{ kid: string; secret: string }>('POST', '/apps/demo/secrets/rotate');
    const signedByRetiring = await new SignJWT({ topics: ['revocable'] })
      .setProtectedHeader({ alg: 'HS256', kid })
      .setAudience(appId)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(base64url.decode(secret));
    let calls = 0;
    const events: StatusEvent[] = [];
    const c = createClient({
      url: pc.appUrl(),
      fetch: appFetch,
      getToken: () => (++calls === 1 ? signedByRetiring : pc.mint(['revocable'], 600)),
    });
    const seqs: number[] = [];
    c.subscribe('revocable', (m) => seqs.push(m.seq!), { onStatus: (e) => events.push(e) });
    await until(() => c.state === 'open', 'open');
    await pc.publish('revocable', { n: 1 });
    await until(() => seqs.length === 1, 'first message');
    // A newer secret signs from now on; the old one is retired under the open stream.
    await pc.api('POST', '/apps/demo/secrets/rotate');
    await pc.api('POST', `/apps/demo/secrets/${kid}/retire`);
    await pc.publish('revocable', { n: 2 });
    await until(() => calls >= 2 && c.state === 'open' && seqs.length === 2, 'resumed with a new token');
    expect(events.some((e) => e.code === 'token_revoked')).toBe(true);
    await pc.publish('revocable', { n: 3 });
    await until(() => seqs.length === 3, 'third message');
    expect(seqs).toEqual([1, 2, 3]);
    c.close();
  });

  it('gets a new token after a 401', async () => {
    const tokens: (() => Promise<string> | string)[] = [() => 'not-a-token', () => pc.mint(['private'], 600)];
    const c = createClient({ url: pc.appUrl(), fetch: appFetch, getToken: () => tokens.shift()!() });
    const got: unknown[] = [];
    c.subscribe('private', (m) => got.push(m.message));
    await until(() => c.state === 'open', 'open after refresh');
    expect(tokens).toHaveLength(0);
    await pc.publish('private', 'hi');
    await until(() => got.length === 1, 'message');
    c.close();
  });

  it('gives up on 401 with a fixed token', async () => {
    let requests = 0;
    const counting: typeof appFetch = (u, i) => {
      requests++;
      return appFetch(u, i);
    };
    const c = createClient({ url: pc.appUrl(), fetch: counting, token: 'not-a-token', backoff: { minMs: 10, maxMs: 20 } });
    const errors: PiCloudError[] = [];
    c.subscribe('private', () => {}, { onError: (e) => errors.push(e) });
    await until(() => errors.length === 1, 'the error');
    expect(errors[0]).toMatchObject({ code: 'unauthorized', status: 401, fatal: true });
    expect(c.state).toBe('closed');
    await new Promise((r) => setTimeout(r, 300));
    expect(requests).toBe(1);
    // Without a token at all the topic answers 401 too.
    const anon = createClient({ url: pc.appUrl(), fetch: appFetch });
    const e2: PiCloudError[] = [];
    anon.subscribe('private', () => {}, { onError: (e) => e2.push(e) });
    await until(() => e2.length === 1, 'anonymous 401');
    expect(e2[0]!.code).toBe('unauthorized');
  });

  it('accepts a token minted in a tenant backend with jose (README recipe)', async () => {
    const { kid, secret } = await pc.api<{ kid: string; secret: string }>('POST', '/apps/demo/secrets/rotate');
    // --- as in the README ---
    const token = await new SignJWT({ topics: ['private'] })
      .setProtectedHeader({ alg: 'HS256', kid })
      .setAudience(appId)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(base64url.decode(secret));
    // ---
    const c = createClient({ url: pc.appUrl(), fetch: appFetch, token });
    const got: unknown[] = [];
    c.subscribe('private', (m) => got.push(m.message));
    await until(() => c.state === 'open', 'open with a jose token');
    await pc.publish('private', 'from a tenant token');
    await until(() => got.length === 1, 'message');
    c.close();
  });
});
