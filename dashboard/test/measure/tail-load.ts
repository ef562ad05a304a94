// Measures the dashboard under load against the real binary (PICLOUD_BIN) in Debian's Chromium:
// the time from pressing Sign in to the Overview's first render (timed in the page), then a
// topic's live tail while the HTTP API publishes MEASURE_RATE messages/s (default 1,000, sent as
// one batch every 100 ms) for MEASURE_SECS seconds (default 120). Every 10 s the page's JS heap is
// sampled over CDP (JSHeapUsedSize after HeapProfiler.collectGarbage). At the end it reads what
// the tail says it received (lines kept + lines dropped) against what was published, and prints
// a JSON and a markdown report. Run with: npm run measure:tail
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { it } from 'vitest';
import { PiCloud, until } from '../../../clients/typescript/test/support/picloud';

const RATE = Number(process.env.MEASURE_RATE ?? 1000);
const SECS = Number(process.env.MEASURE_SECS ?? 120);
const TICK_MS = 100;
const SAMPLE_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const num = (text: string | null | undefined, re: RegExp) => Number((re.exec(text ?? '')?.[1] ?? '0').replace(/,/g, ''));

it('measures the live tail under load', async () => {
  const pc = await PiCloud.start();
  const profile = mkdtempSync(join(tmpdir(), 'picloud-measure-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-timer-throttling', '--disable-renderer-backgrounding'],
  });
  try {
    await pc.createApp('load');
    await pc.createTopic('firehose', 'public', 'load');
    const page = await ctx.newPage();
    // Timed inside the page: the Sign in press (capture phase, before the app handles it) and the
    // first frame in which the Overview's heading exists.
    await page.addInitScript(() => {
      const w = window as unknown as { __signInAt?: number; __overviewAt?: number };
      document.addEventListener('submit', () => (w.__signInAt ??= performance.now()), true);
      new MutationObserver(() => {
        if (w.__signInAt !== undefined && w.__overviewAt === undefined && document.querySelector('h1')?.textContent === 'Overview') w.__overviewAt = performance.now();
      }).observe(document, { childList: true, subtree: true, characterData: true });
    });
    await page.goto(`${pc.admin}/_/`);
    await page.getByLabel('Admin key').fill(pc.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const firstRenderMs = await page.evaluate(() => {
      const w = window as unknown as { __signInAt: number; __overviewAt: number };
      return Math.round(w.__overviewAt - w.__signInAt);
    });

    await page.goto(`${pc.admin}/_/apps/load/topics/firehose`);
    await page.getByText('Stream: open').waitFor({ timeout: 30_000 });
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Performance.enable');
    const heap = async () => {
      await cdp.send('HeapProfiler.collectGarbage');
      const { metrics } = await cdp.send('Performance.getMetrics');
      return metrics.find((m) => m.name === 'JSHeapUsedSize')!.value;
    };
    const samples: { t: number; mb: number }[] = [{ t: 0, mb: (await heap()) / 2 ** 20 }];

    let published = 0;
    let failed = 0;
    let n = 0;
    const start = Date.now();
    const publisher = (async () => {
      const perTick = Math.max(1, Math.round((RATE * TICK_MS) / 1000));
      const inflight = new Set<Promise<void>>();
      for (let tick = 0; Date.now() - start < SECS * 1000; tick++) {
        const messages = Array.from({ length: perTick }, () => ({ topic: 'firehose', data: { n: ++n, user: 'load', text: 'a message of moderate size for the tail' } }));
        const p = pc
          .api('POST', '/apps/load/publish', { messages })
          .then(() => void (published += perTick))
          .catch(() => void (failed += perTick))
          .finally(() => inflight.delete(p));
        inflight.add(p);
        await sleep(Math.max(0, start + (tick + 1) * TICK_MS - Date.now()));
      }
      await Promise.all(inflight);
    })();
    const sampler = (async () => {
      for (let k = 1; k * SAMPLE_MS <= SECS * 1000; k++) {
        await sleep(Math.max(0, start + k * SAMPLE_MS - Date.now()));
        samples.push({ t: Math.round((Date.now() - start) / 1000), mb: (await heap()) / 2 ** 20 });
      }
    })();
    await Promise.all([publisher, sampler]);
    const elapsed = (Date.now() - start) / 1000;

    // Let the tail catch up (its count stops growing), then read what it says it received.
    const hint = page.locator('.tail .hint');
    const received = async () => {
      const t = await hint.textContent();
      return num(t, /([\d,]+) lines kept/) + num(t, /([\d,]+) older lines dropped/);
    };
    let last = -1;
    await until(async () => {
      const r = await received();
      const settled = r === last;
      last = r;
      await sleep(1000);
      return settled;
    }, 'the tail to settle', 60_000);
    const text = await hint.textContent();
    const kept = num(text, /([\d,]+) lines kept/);
    const dropped = num(text, /([\d,]+) older lines dropped/);
    const spread = (mbs: number[]) => {
      const min = Math.min(...mbs);
      const max = Math.max(...mbs);
      return { min: Number(min.toFixed(2)), max: Number(max.toFixed(2)), pct: Number((((max - min) / 2 / ((min + max) / 2)) * 100).toFixed(1)) };
    };
    const all = spread(samples.map((s) => s.mb));
    // From 10 s on the buffer is full (5,000 lines at well under 10 s): what stays flat if memory is bounded.
    const steady = spread(samples.filter((s) => s.t >= 10).map((s) => s.mb));
    const report = {
      rate_per_sec: RATE,
      seconds: SECS,
      published,
      failed_publishes: failed,
      achieved_rate_per_sec: Math.round(published / elapsed),
      first_render_ms: firstRenderMs,
      heap_mb: samples.map((s) => ({ t: s.t, mb: Number(s.mb.toFixed(2)) })),
      heap_min_mb: all.min,
      heap_max_mb: all.max,
      heap_spread_pct: all.pct,
      heap_steady_min_mb: steady.min,
      heap_steady_max_mb: steady.max,
      heap_steady_spread_pct: steady.pct,
      tail_kept: kept,
      tail_dropped: dropped,
      tail_received: kept + dropped,
      shown_over_published: Number(((kept + dropped) / Math.max(1, published)).toFixed(4)),
    };
    const md = [
      `| measure | value |`,
      `|---|---|`,
      `| Sign in → Overview first render | ${report.first_render_ms} ms |`,
      `| published (${RATE}/s for ${SECS} s, batches every ${TICK_MS} ms) | ${published.toLocaleString('en')} (${report.achieved_rate_per_sec}/s achieved, ${failed} failed) |`,
      `| JS heap (after GC, every 10 s) | min ${all.min} MB, max ${all.max} MB, ±${all.pct}% (from the empty page) |`,
      `| JS heap from 10 s (tail buffer full) | min ${steady.min} MB, max ${steady.max} MB, ±${steady.pct}% |`,
      `| heap samples (MB) | ${report.heap_mb.map((s) => `${s.t}s: ${s.mb}`).join(', ')} |`,
      `| tail: kept + dropped | ${kept.toLocaleString('en')} + ${dropped.toLocaleString('en')} = ${(kept + dropped).toLocaleString('en')} lines |`,
      `| shown / published | ${report.shown_over_published} (the tail's own lines count too: "connecting", "open" and the position line, 3 on a stream that never broke) |`,
    ].join('\n');
    console.log(`\n${JSON.stringify(report, null, 2)}\n\n${md}\n`);
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
    await pc.destroy();
  }
});
