// Refreshes the screenshots of every dashboard page in docs/dashboard/ (README shows the topic
// page; the Scripts page with a diagnostic, a diff and Try it; the cron preview): a fresh real binary with a little data, Debian's Chromium, a 1280×800 window.
// DASHBOARD_DIST=dist (../dist.ts) shows that build instead of the binary's embedded one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { it } from 'vitest';
import { PiCloud, until } from '../../../clients/typescript/test/support/picloud';
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
    // A handler that fails on odd orders, tried once: dead letters and invocation logs.
    await pc.api('POST', '/apps/demo/scripts', {
      name: 'on-order',
      source: 'log::info(`order ${event.message.id}`);\nif event.message.id % 2 == 1 { throw `payment service refused order ${event.message.id}` }',
    });
    await pc.api('POST', '/apps/demo/triggers', { kind: 'pubsub', script: 'on-order', filter: { topic: 'orders.eu' }, retry: { max_attempts: 1, base_delay_ms: 1, max_delay_ms: 1 } });
    // Routes & triggers: a route and a disabled cron trigger beside the pubsub one.
    await pc.api('POST', '/apps/demo/scripts', { name: 'orders-api', source: '#{ status: 200, body: #{ orders: [] } }' });
    await pc.api('POST', '/apps/demo/routes', { method: 'GET', path: '/orders/:id', script: 'orders-api' });
    await pc.api('POST', '/apps/demo/triggers', { kind: 'cron', script: 'on-order', filter: { schedule: '0 3 * * *' }, enabled: false });
    for (const id of [1, 2, 3, 4]) await pc.publish('orders.eu', { id, total: id * 10 });
    await until(async () => (await pc.api<{ dead_letters: unknown[] }>('GET', '/apps/demo/dead-letters')).dead_letters.length === 2, 'two dead letters');
    await until(async () => (await pc.api<{ invocations: unknown[] }>('GET', '/apps/demo/logs')).invocations.length === 4, 'four runs');
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
      ['dead-letters', '/_/apps/demo/dead-letters'],
      ['logs', '/_/apps/demo/logs'],
      ['wiring', '/_/apps/demo/wiring'],
      ['keys', '/_/keys'],
    ];
    for (const [name, path] of pages) {
      await page.goto(`${pc.admin}${path}`);
      await page.getByRole('heading', { level: 1 }).waitFor();
      await page.waitForFunction(() => document.querySelector('.loading') === null);
      if (name === 'overview') {
        // A few live samples with some traffic, drawn by the lazily loaded charts.
        await page.locator('.chart-canvas canvas').nth(2).waitFor();
        for (const n of [1, 2, 3]) {
          await pc.publish('chat', { user: 'ann', text: `overview ${n}` });
          await page.waitForTimeout(1000);
        }
        await page.getByRole('table', { name: 'Activity per app' }).waitFor();
      }
      // One opened: a dead letter's payload and error; a failed run's error and log lines.
      if (name === 'dead-letters') await page.getByRole('button', { name: /^View dead letter/ }).first().click();
      if (name === 'logs') {
        await page.getByLabel('Outcome').selectOption('error');
        await page.getByRole('button', { name: /^Details of run/ }).first().click();
      }
      await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
    }
    // Routes & triggers with a cron trigger being written: the next five fire times.
    await page.goto(`${pc.admin}/_/apps/demo/wiring`);
    const triggerForm = page.getByRole('form', { name: 'Create trigger' });
    await triggerForm.getByLabel('Kind').selectOption('cron');
    await triggerForm.getByLabel('Filter (JSON)').fill('{"schedule": "30 9 * * MON-FRI"}');
    await triggerForm.getByRole('list', { name: 'Next fire times' }).getByRole('listitem').nth(4).waitFor();
    await page.screenshot({ path: join(OUT, 'wiring-cron.png'), fullPage: true });

    // Scripts: the list; a script being edited with a syntax error listed and marked; a diff of v1
    // against the active v2; Try it with the answer and the run's log lines.
    await pc.api('POST', '/apps/demo/scripts', { name: 'orders-api', source: 'let id = request.params.id;\nlog::info(`order ${id}`);\n#{ status: 200, body: #{ id: id, items: [] } }' });
    await page.goto(`${pc.admin}/_/apps/demo/scripts`);
    await page.getByRole('table', { name: 'Scripts' }).waitFor();
    await page.screenshot({ path: join(OUT, 'scripts.png'), fullPage: true });
    await page.goto(`${pc.admin}/_/apps/demo/scripts/orders-api`);
    const editor = page.getByRole('textbox', { name: 'Script source' });
    await editor.waitFor();
    await editor.click();
    await editor.press('Control+a');
    await editor.evaluate((el, t) => {
      const data = new DataTransfer();
      data.setData('text/plain', t);
      el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
    }, 'let id = request.params.id;\nlog::info(`order ${id}`);\nlet total = ;\n#{ status: 200, body: #{ id: id, items: [] } }');
    await page.getByRole('list', { name: 'Problems' }).waitFor();
    await page.screenshot({ path: join(OUT, 'script-editor.png'), fullPage: true });
    await page.getByRole('button', { name: 'Diff v1 with active' }).click();
    await page.getByRole('textbox', { name: 'Version 1', exact: true }).waitFor();
    await page.screenshot({ path: join(OUT, 'script-diff.png'), fullPage: true });
    await page.getByRole('button', { name: 'Close diff' }).click();
    const tryForm = page.getByRole('form', { name: 'Try a request' });
    await tryForm.getByLabel('Path').fill('/orders/42');
    await tryForm.getByRole('button', { name: 'Send' }).click();
    await page.getByRole('list', { name: 'Log lines of the run' }).waitFor();
    await page.screenshot({ path: join(OUT, 'script-try.png'), fullPage: true });

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
