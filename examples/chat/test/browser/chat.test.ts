// The chat page in real browsers (Debian's Chromium driven by playwright-core) against the real
// picloud binary, deployed from the manifest with the built page uploaded as the app's static
// files and opened at http://chat.localhost:<port>/. Two people (separate browser profiles, so
// separate storage) and a second tab of one of them (same storage: the name is remembered): a message
// sent from one appears in all, in order; Enter sends; a refusal is shown; a reload shows the
// history and remembers the name; another room starts empty and keeps its own messages; after a
// server restart the page shows "Reconnecting…", then resumes without losing or repeating anything.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appFetch, PiCloud, until } from '../../../../clients/typescript/test/support/picloud';
import { deploy, EXAMPLE_DIR, filesUnder, type Manifest } from '../support/manifest';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let pc: PiCloud;
let m: Manifest;
let uploaded: string[] = [];
let browser: Browser;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  pc = await PiCloud.start();
  m = deploy(pc).manifest;
  uploaded = filesUnder(join(EXAMPLE_DIR, m.static));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  await browser?.close();
  await pc?.destroy();
});

/** A person: a browser profile of their own (storage, stream). */
async function person(): Promise<BrowserContext> {
  const ctx = await browser.newContext();
  contexts.push(ctx);
  return ctx;
}

/** A tab on the chat page; any script error on it fails the test at the end. */
async function open(ctx: BrowserContext, problems: string[]): Promise<Page> {
  const page = await ctx.newPage();
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (msg) => {
    // The browser logs every refused request; the test makes /api/messages refuse on purpose.
    const refusedSend = msg.text().startsWith('Failed to load resource') && msg.location().url.endsWith('/api/messages');
    if (msg.type() === 'error' && !refusedSend) problems.push(`console: ${msg.text()} (${msg.location().url})`);
  });
  await page.goto(`${pc.appUrl(m.slug)}/`);
  return page;
}

const log = (page: Page): Locator => page.getByRole('log');
const live = (page: Page) => expect.poll(() => page.getByRole('status').textContent(), { timeout: 30_000 }).toBe('Live');

/** The [name, text] of every message shown, in order. */
const shown = (page: Page) =>
  log(page)
    .getByRole('listitem')
    .evaluateAll((items) => items.map((li) => [li.querySelector('.name')?.textContent ?? '', li.querySelector('.text')?.textContent ?? '']));

async function say(page: Page, text: string, how: 'enter' | 'click' = 'click') {
  const box = page.getByLabel('Message');
  await box.fill(text);
  if (how === 'enter') await box.press('Enter');
  else await page.getByRole('button', { name: 'Send' }).click();
  await expect.poll(() => box.inputValue()).toBe(''); // cleared once the server took it
}

async function accessibilityProblems(page: Page): Promise<string[]> {
  await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (c: Document) => Promise<{ violations: { id: string; impact: string | null; nodes: { target: unknown }[] }[] }> } }).axe;
    return (await axe.run(document)).violations.map((v) => ({ id: v.id, impact: v.impact, targets: v.nodes.map((n) => JSON.stringify(n.target)) }));
  });
  return found.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.targets.join(' ')}`);
}

describe('the chat page in a real browser', () => {
  it('is served on the app Host, every file as built', async () => {
    const base = pc.appUrl(m.slug);
    const index = await appFetch(`${base}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await index.text()).toBe(readFileSync(join(EXAMPLE_DIR, m.static, 'index.html'), 'utf8'));
    for (const f of uploaded) {
      const r = await appFetch(`${base}/${f}`);
      expect(r.status, f).toBe(200);
      expect(Buffer.from(await r.arrayBuffer()).equals(readFileSync(join(EXAMPLE_DIR, m.static, f))), f).toBe(true);
    }
    expect((await appFetch(`${base}/assets/index.js`)).headers.get('content-type')).toMatch(/^text\/javascript/);
    expect((await appFetch(`${base}/nope.html`)).status).toBe(404);
  });

  it('carries messages between people and tabs, in order, and keeps the history', async () => {
    const problems: string[] = [];
    const ann = await person();
    const bob = await person();
    const a = await open(ann, problems);
    const b = await open(bob, problems);
    await a.getByLabel('Your name').fill('Ann');
    await b.getByLabel('Your name').fill('Bob');
    await live(a);
    await live(b);
    await expect.poll(() => log(a).textContent()).toContain('No messages yet');

    await say(a, 'hello from Ann', 'enter');
    await say(b, 'hi Ann');
    await say(a, 'how are you?');
    const expected = [
      ['Ann', 'hello from Ann'],
      ['Bob', 'hi Ann'],
      ['Ann', 'how are you?'],
    ];
    await expect.poll(() => shown(a), { timeout: 15_000 }).toEqual(expected);
    await expect.poll(() => shown(b), { timeout: 15_000 }).toEqual(expected);

    // Ann's second tab: the name is remembered; it shows the same history, then what comes next.
    const a2 = await open(ann, problems);
    expect(await a2.getByLabel('Your name').inputValue()).toBe('Ann');
    await live(a2);
    await expect.poll(() => shown(a2), { timeout: 15_000 }).toEqual(expected);
    await say(a2, 'from my other tab');
    expected.push(['Ann', 'from my other tab']);
    for (const p of [a, b, a2]) await expect.poll(() => shown(p), { timeout: 15_000 }).toEqual(expected);

    // A refusal is shown, in the server's words; nothing is sent.
    await b.getByLabel('Your name').fill('');
    await b.getByLabel('Message').fill('nameless');
    await b.getByRole('button', { name: 'Send' }).click();
    await expect.poll(() => b.getByRole('alert').textContent()).toBe('Not sent: name: must be 1 to 32 characters');
    expect(await b.getByLabel('Message').inputValue()).toBe('nameless');
    await b.getByLabel('Your name').fill('Bob');

    // A reload starts from the history.
    await b.reload();
    await live(b);
    expect(await b.getByLabel('Your name').inputValue()).toBe('Bob');
    await expect.poll(() => shown(b), { timeout: 15_000 }).toEqual(expected);

    expect(await accessibilityProblems(b)).toEqual([]);

    // Another room: its own (empty) history, its own messages; back in the lobby, the lobby's.
    await b.getByLabel('Room').selectOption('random');
    await live(b);
    await expect.poll(() => log(b).textContent()).toContain('No messages yet');
    await say(b, 'anyone here?');
    await expect.poll(() => shown(b)).toEqual([['Bob', 'anyone here?']]);
    await b.getByLabel('Room').selectOption('lobby');
    await expect.poll(() => shown(b), { timeout: 15_000 }).toEqual(expected);
    expect(await shown(a)).toEqual(expected);

    // The count trigger saw all of it.
    await until(async () => {
      const r = await appFetch(`${pc.appUrl(m.slug)}/api/stats`);
      const s = (await r.json()) as { rooms: Record<string, number> };
      return s.rooms.lobby === expected.length && s.rooms.random === 1;
    }, '/api/stats to count the browser messages');

    // The server restarts: the page says so, then resumes where it was; what was published while
    // it was away arrives once, in its place.
    await pc.stop();
    await expect.poll(() => a.getByRole('status').textContent(), { timeout: 30_000 }).toMatch(/^Reconnecting…/);
    await pc.boot();
    await live(a);
    await live(b);
    await say(b, 'back again');
    expected.push(['Bob', 'back again']);
    for (const p of [a, b, a2]) await expect.poll(() => shown(p), { timeout: 30_000 }).toEqual(expected);

    // Reconnect attempts while the server was down are logged by the browser; nothing else may be.
    expect(problems.filter((p) => !/ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|network error/i.test(p))).toEqual([]);
  });
});
