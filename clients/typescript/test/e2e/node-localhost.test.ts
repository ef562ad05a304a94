// Shows issue 25's first run, against the real picloud binary: in Node, the app's URL
// `http://demo.localhost:<port>` does not resolve, and the client says so on every attempt
// (`onError`, code `network`, non-fatal, the DNS failure as cause) while it stays `reconnecting`;
// the README's Node recipe (`localhostFetch`, test/support/localhost-fetch.ts) connects to the
// same URL and receives a publish.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type PiCloudError } from '../../src/index';
import { localhostFetch } from '../support/localhost-fetch';
import { PiCloud, until } from '../support/picloud';

let pc: PiCloud;
beforeAll(async () => {
  pc = await PiCloud.start();
  await pc.createApp();
  await pc.createTopic('chat');
});
afterAll(() => pc?.destroy());

describe('Node and *.localhost', () => {
  it("reports that Node's own fetch cannot resolve the app's name, on every attempt", async () => {
    const c = createClient({ url: pc.appUrl(), backoff: { minMs: 20, maxMs: 100 } });
    const errors: { e: PiCloudError; state: string }[] = [];
    c.subscribe('chat', () => {}, { onError: (e) => errors.push({ e, state: c.state }) });
    await until(() => errors.length >= 3, 'three reported attempts');
    expect(c.state).toBe('reconnecting');
    c.close();
    for (const { e, state } of errors) {
      expect(e).toMatchObject({ code: 'network', fatal: false });
      expect(state).toBe('reconnecting');
      expect(((e.cause as Error).cause as NodeJS.ErrnoException).code).toBe('ENOTFOUND');
      expect(e.message).toContain('demo.localhost');
    }
    expect((await pc.realtimeHealth()).connections).toBe(0);
  });

  it('connects with the README recipe and receives', async () => {
    const c = createClient({ url: pc.appUrl(), fetch: localhostFetch });
    const got: unknown[] = [];
    const errors: PiCloudError[] = [];
    c.subscribe('chat', (m) => got.push(m.message), { onError: (e) => errors.push(e) });
    await until(() => c.state === 'open', 'open');
    await pc.publish('chat', { text: 'hi' });
    await until(() => got.length === 1, 'the message');
    expect(got).toEqual([{ text: 'hi' }]);
    expect(errors).toEqual([]);
    c.close();
    await pc.connections(0);
  });
});
