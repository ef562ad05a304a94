// Shows the built ESM bundle in a real browser (Debian's Chromium driven by playwright-core)
// against the real picloud binary: a page subscribes and receives a publish; a second tab of the
// same origin shares the first tab's upstream connection (the server counts one in
// /health/realtime); when the leader tab closes the other takes over and misses nothing; a page
// that opts out (shareAcrossTabs: false) opens its own; a token-mode topic works with the token in
// an Authorization header (a CORS-preflighted request). A page subscribed with `lastEventId: '0'`
// gets the history published before it opened when it is the only tab (so it leads the shared
// stream), again after a reload, and a second tab asking from a later position gets the rest while
// the first sees nothing twice. The wasm entry (`@picloud/client/wasm`)
// checks a script, a topic and a cron schedule in the page, and its checkScript time on a
// 500-line script is printed (a figure, not asserted).
//
// Three tabs using presence and client events share ONE WebSocket (the server counts one
// connection and one member with one connection): every tab lists the member, gets the admin
// API's messages and a follower tab's client event; a follower tab closing is no leave; the
// leader tab closing hands the socket over and the next leader enters again by itself.
//
// The page is served from http://127.0.0.1:<port> and subscribes to http://demo.localhost:<port>
// (Chromium resolves *.localhost to loopback), a cross-origin request: it needs CORS on the
// data plane's /realtime routes, which the server answers (no web-security switch is used).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Diagnostic, Invalid } from '../../src/wasm';
import { appFetch, PiCloud, until } from '../support/picloud';

const ROOT = resolve(__dirname, '../..');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const FILES: Record<string, string> = {
  '/': join(__dirname, 'page.html'),
  '/dist/index.js': join(ROOT, 'dist/index.js'),
  '/dist/wasm.js': join(ROOT, 'dist/wasm.js'),
  '/eventsource-parser/index.js': join(ROOT, 'node_modules/eventsource-parser/dist/index.js'),
};

let pc: PiCloud;
let web: Server;
let origin: string;
let ctx: BrowserContext;
let profile: string;

interface Received {
  topic: string;
  seq: number | null;
  message: unknown;
}
type PageWindow = { received: Received[]; errors: unknown[]; client: { state: string }; locksAvailable: boolean };

async function corsAnswer(): Promise<boolean> {
  const r = await appFetch(`${pc.appUrl()}/realtime?topic=chat`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization,last-event-id' },
  });
  const allowOrigin = r.headers.get('access-control-allow-origin');
  const allowHeaders = (r.headers.get('access-control-allow-headers') ?? '').toLowerCase();
  return r.ok && (allowOrigin === '*' || allowOrigin === origin) && allowHeaders.includes('authorization') && allowHeaders.includes('last-event-id');
}

beforeAll(async () => {
  pc = await PiCloud.start();
  await pc.createApp();
  await pc.createTopic('chat');
  await pc.createTopic('private', 'token');
  await pc.createTopic('history');
  await pc.topic('room', { presence: true });
  await pc.topic('talk', { client_publish: true });
  web = createServer((req, res) => {
    const file = FILES[new URL(req.url!, 'http://x').pathname];
    if (!file) {
      res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end();
      return;
    }
    res.writeHead(200, { 'content-type': extname(file) === '.html' ? 'text/html' : 'text/javascript', 'cache-control': 'no-store' });
    res.end(readFileSync(file));
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
  if (!(await corsAnswer())) {
    throw new Error(`${pc.appUrl()}/realtime does not answer a CORS preflight allowing Authorization and Last-Event-ID`);
  }
  profile = mkdtempSync(join(tmpdir(), 'picloud-chromium-'));
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

afterAll(async () => {
  await ctx?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await new Promise((r) => (web ? web.close(r) : r(undefined)));
  await pc?.destroy();
});

/** The WebSockets the pages opened (Playwright sees each one), with the page that opened it. */
const sockets: { page: Page; url: string }[] = [];

async function open(share = true, extra = ''): Promise<Page> {
  const page = await ctx.newPage();
  page.on('websocket', (ws) => sockets.push({ page, url: ws.url() }));
  page.on('console', (m) => m.type() === 'error' && console.error(`[page] ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[page] ${e.message}`));
  await page.goto(`${origin}/?server=${encodeURIComponent(pc.appUrl())}&share=${share ? 1 : 0}${extra}`);
  await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 });
  return page;
}

const members = (p: Page) => p.getByRole('list', { name: 'members' }).getByRole('listitem').allTextContents();
const state = (p: Page) => p.evaluate(() => (window as unknown as PageWindow).client.state);
const received = (p: Page) => p.evaluate(() => (window as unknown as PageWindow).received.map((m) => m.seq));
const errors = (p: Page) => p.evaluate(() => (window as unknown as PageWindow).errors);

describe('real browser', () => {
  it('subscribes, shares one upstream between tabs, hands over, and can opt out', async () => {
    const tab1 = await open();
    expect(await tab1.evaluate(() => (window as unknown as PageWindow).locksAvailable)).toBe(true);
    await until(async () => (await state(tab1)) === 'open', 'tab 1 open', 60_000);
    await pc.connections(1);
    const m1 = await pc.publish('chat', { text: 'one' });
    await until(async () => (await received(tab1)).length === 1, 'tab 1 receives');
    expect(await tab1.evaluate(() => (window as unknown as PageWindow).received[0])).toMatchObject({ topic: 'chat', seq: m1.seq, message: { text: 'one' } });

    // A second tab: same origin, same configuration → no second upstream.
    const tab2 = await open();
    await until(async () => (await state(tab2)) === 'open', 'tab 2 open (follower)', 60_000);
    const m2 = await pc.publish('chat', { text: 'two' });
    await until(async () => (await received(tab2)).length === 1 && (await received(tab1)).length === 2, 'both tabs receive');
    expect(await received(tab2)).toEqual([m2.seq]);
    expect((await pc.realtimeHealth()).connections).toBe(1);

    // The leader tab goes: the other takes over the stream from where it was.
    await tab1.close();
    const m3 = await pc.publish('chat', { text: 'three' });
    await until(async () => (await received(tab2)).length === 2, 'tab 2 receives after the hand-over', 60_000);
    await pc.connections(1);
    const m4 = await pc.publish('chat', { text: 'four' });
    await until(async () => (await received(tab2)).length === 3, 'tab 2 receives as leader');
    expect(await received(tab2)).toEqual([m2.seq, m3.seq, m4.seq]);

    // Opting out: this tab opens its own upstream.
    const tab3 = await open(false);
    await until(async () => (await state(tab3)) === 'open', 'tab 3 open', 60_000);
    await pc.connections(2);
    const m5 = await pc.publish('chat', { text: 'five' });
    await until(async () => (await received(tab3)).length === 1 && (await received(tab2)).length === 4, 'tab 2 and 3 receive');
    expect(await received(tab3)).toEqual([m5.seq]);
    expect(await errors(tab2)).toEqual([]);
    expect(await errors(tab3)).toEqual([]);
    await tab2.close();
    await tab3.close();
    await pc.connections(0);

    // A token-mode topic: the token travels in the Authorization header.
    const token = await pc.mint(['private'], 600);
    const tab4 = await open(false, `&topic=private&token=${encodeURIComponent(token)}`);
    await until(async () => (await state(tab4)) === 'open', 'tab 4 open with a token', 60_000);
    const m6 = await pc.publish('private', { text: 'secret' });
    await until(async () => (await received(tab4)).length === 1, 'tab 4 receives');
    expect(await received(tab4)).toEqual([m6.seq]);
    await tab4.close();
    await pc.connections(0);
  });

  it('replays from lastEventId in a page that leads the shared stream, also after a reload', async () => {
    const h1 = await pc.publish('history', { text: 'h1' });
    const h2 = await pc.publish('history', { text: 'h2' });
    const tab = await open(true, '&topic=history&last=0');
    await until(async () => (await received(tab)).length === 2, 'the only tab receives the history', 60_000);
    expect(await received(tab)).toEqual([h1.seq, h2.seq]);
    await pc.connections(1);

    await tab.reload();
    await tab.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 });
    await until(async () => (await received(tab)).length === 2, 'the reloaded tab receives the history again', 60_000);
    expect(await received(tab)).toEqual([h1.seq, h2.seq]);
    await until(async () => (await state(tab)) === 'open', 'the reloaded tab open', 60_000);
    const h3 = await pc.publish('history', { text: 'h3' });
    await until(async () => (await received(tab)).length === 3, 'the reloaded tab receives live');

    // A follower asking from h1: h2 and h3 replayed to it; the leader sees nothing twice.
    const tab2 = await open(true, `&topic=history&last=${h1.seq}`);
    await until(async () => (await received(tab2)).length === 2, 'the follower receives from its position', 60_000);
    expect(await received(tab2)).toEqual([h2.seq, h3.seq]);
    const h4 = await pc.publish('history', { text: 'h4' });
    await until(async () => (await received(tab2)).length === 3 && (await received(tab)).length === 4, 'both receive live');
    expect(await received(tab)).toEqual([h1.seq, h2.seq, h3.seq, h4.seq]);
    expect(await received(tab2)).toEqual([h2.seq, h3.seq, h4.seq]);
    expect((await pc.realtimeHealth()).connections).toBe(1);
    expect(await errors(tab)).toEqual([]);
    expect(await errors(tab2)).toEqual([]);
    await tab.close();
    await tab2.close();
    await pc.connections(0);
  });

  it('shares one WebSocket between tabs: one member, presence and messages in every tab', async () => {
    const token = await pc.token({ topics: ['talk', 'room'], subject: 'alice', publish: ['talk'] });
    const tabs: Page[] = [];
    sockets.length = 0;
    for (const name of ['one', 'two', 'three']) {
      const tab = await open(true, `&topic=talk&presence=room&tab=${name}&token=${encodeURIComponent(token)}`);
      await until(async () => (await state(tab)) === 'open', `tab ${name} open`, 60_000);
      tabs.push(tab);
    }
    const [one, two, three] = tabs as [Page, Page, Page];
    for (const tab of tabs) await tab.getByRole('button', { name: 'enter' }).click();
    for (const tab of tabs) await until(async () => (await members(tab)).join() === 'alice', 'every tab lists alice', 30_000);
    expect((await pc.realtimeHealth()).connections).toBe(1);
    // That one connection is a WebSocket, the first tab's (it leads).
    expect(sockets.map((s) => [s.page, s.url.replace(/\?.*/, '')])).toEqual([[one, `${pc.appUrl().replace('http', 'ws')}/realtime/ws`]]);
    expect(await pc.members('room')).toEqual([{ sub: 'alice', data: { tab: expect.any(String) }, connections: 1 }]);

    // The admin API's message and a follower tab's client event reach every tab.
    const m = await pc.publish('talk', { text: 'from the server' });
    await three.getByRole('button', { name: 'send' }).click();
    for (const tab of tabs)
      await until(async () => {
        const got = await tab.evaluate(() => (window as unknown as PageWindow).received);
        return got.length === 2 && got.some((x) => x.seq === m.seq) && got.some((x) => x.seq === null && (x.message as { text: string }).text === 'hi from three');
      }, 'both messages in every tab');

    // A follower tab goes: still one member on the one connection.
    await three.close();
    await new Promise((r) => setTimeout(r, 500));
    expect(await pc.members('room')).toEqual([{ sub: 'alice', data: expect.anything(), connections: 1 }]);
    expect(await members(one)).toEqual(['alice']);

    // The leader tab goes: tab two opens its own socket and enters again by itself.
    await one.close();
    await until(() => sockets.length === 2, 'tab two opening its socket', 60_000);
    expect(sockets.map((s) => s.page)).toEqual([one, two]);
    const enteredByTwo = JSON.stringify([{ sub: 'alice', data: { tab: 'two' }, connections: 1 }]);
    await until(async () => JSON.stringify(await pc.members('room')) === enteredByTwo, 'alice entered again by tab two', 60_000);
    await pc.connections(1);
    await until(async () => (await state(two)) === 'open', 'tab two open');
    await until(async () => (await members(two)).join() === 'alice', 'tab two lists alice');
    expect(await errors(two)).toEqual([]);
    await two.close();
    await pc.connections(0);
    await until(async () => (await pc.members('room')).length === 0, 'alice gone');
  });

  it('runs the wasm checker in the page', async () => {
    const page = await open();
    // A string, not a function: vitest would rewrite a function's dynamic import for Node.
    const got = (await page.evaluate(`(async () => {
      const w = await import('/dist/wasm.js');
      const lines = Array.from({ length: 500 }, (_, i) => 'let v' + i + ' = #{ n: ' + i + ', s: "x' + i + '" }; if v' + i + '.n > 3 { v' + i + '.s += "y"; }').join('\\n');
      const first = performance.now();
      w.checkScript('1');
      const initMs = performance.now() - first;
      const times = [];
      for (let i = 0; i < 9; i++) {
        const t = performance.now();
        w.checkScript(lines);
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      return {
        error: w.checkScript('let a = 1;\\nlet b = (;\\n'),
        clean: w.checkScript(lines),
        topic: w.validateTopic('a..b'),
        cron: w.cronNext('0 12 * * *', Date.UTC(2026, 11, 7), 2),
        initMs,
        medianMs: times[4],
      };
    })()`)) as { error: Diagnostic[]; clean: Diagnostic[]; topic: Invalid | null; cron: number[]; initMs: number; medianMs: number };
    expect(got.error).toHaveLength(1);
    expect(got.error[0]).toMatchObject({ line: 2, severity: 'error' });
    expect(got.clean).toEqual([]);
    expect(got.topic?.field).toBe('topic');
    expect(got.cron).toEqual([Date.UTC(2026, 11, 7, 12), Date.UTC(2026, 11, 8, 12)]);
    console.log(`[figure] Chromium: wasm instantiate + first check ${got.initMs.toFixed(1)} ms; checkScript on 500 lines, median of 9: ${got.medianMs.toFixed(1)} ms`);
    await page.close();
  });
});
