// Refreshes the screenshots of every dashboard page in docs/dashboard/ (README shows the topic
// page): a fresh real binary with a little data, Debian's Chromium, a 1280×800 window.
// DASHBOARD_DIST=dist (../dist.ts) shows that build instead of the binary's embedded one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { it } from 'vitest';
import { PiCloud } from '../../../clients/typescript/test/support/picloud';
import { DIST_ARGS, serveDist } from '../dist';

const OUT = resolve(__dirname, '../../../docs/dashboard');

it('refreshes docs/dashboard/*.png', async () => {
  const pc = await PiCloud.start();
  const profile = mkdtempSync(join(tmpdir(), 'picloud-shots-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', ...DIST_ARGS],
  });
  try {
    await serveDist(ctx, pc.admin);
    await pc.createApp('demo');
    await pc.createTopic('chat', 'token');
    await pc.createTopic('orders.eu', 'public');
    for (const n of [1, 2, 3]) await pc.publish('chat', { user: 'ann', text: `hello ${n}` });
    const page = await ctx.newPage();
    await page.goto(`${pc.admin}/_/`);
    await page.screenshot({ path: join(OUT, 'sign-in.png') });
    await page.getByLabel('Admin key').fill(pc.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Apps' }).waitFor();
    const pages: [string, string][] = [
      ['overview', '/_/'],
      ['apps', '/_/apps'],
      ['app', '/_/apps/demo'],
      ['topics', '/_/apps/demo/topics'],
      ['secrets', '/_/apps/demo/secrets'],
      ['keys', '/_/keys'],
    ];
    for (const [name, path] of pages) {
      await page.goto(`${pc.admin}${path}`);
      await page.getByRole('heading', { level: 1 }).waitFor();
      await page.locator('.loading').waitFor({ state: 'detached' });
      if (name === 'overview') {
        // A few live samples with some traffic, drawn by the lazily loaded charts.
        await page.locator('.chart-canvas canvas').nth(2).waitFor();
        for (const n of [1, 2, 3]) {
          await pc.publish('chat', { user: 'ann', text: `overview ${n}` });
          await page.waitForTimeout(1000);
        }
        await page.getByRole('table', { name: 'Activity per app' }).waitFor();
      }
      await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
    }
    await page.goto(`${pc.admin}/_/apps/demo/topics/chat`);
    await page.getByText('Stream: open').waitFor();
    for (const n of [4, 5]) await pc.publish('chat', { user: 'bob', text: `live ${n}` });
    await page.getByRole('log', { name: 'Messages of chat' }).getByText('live 5').waitFor();
    await page.getByRole('table', { name: 'Subscribers of chat' }).waitFor();
    await page.getByRole('button', { name: 'Load history' }).click();
    await page.getByRole('table', { name: 'History of chat' }).waitFor();
    await page.screenshot({ path: join(OUT, 'topic.png'), fullPage: true });
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
    await pc.destroy();
  }
});
