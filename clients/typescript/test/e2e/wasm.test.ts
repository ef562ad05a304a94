// The script checker compiled to wasm agrees with the server on every script of the shared
// corpus (crates/picloud-runtime/tests/corpus/check.json): each script, under its limits, goes to
// the real server's `POST …/scripts/check` (the native check a deploy runs) and to
// `@picloud/client/wasm`'s checkScript, from the built ESM and the built CJS entry, and the
// diagnostics must be identical (and say what the corpus expects). Topic names and trigger
// filters are judged alike by the wasm validators and by the server creating them; cronNext
// lists the coming fire times.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as Wasm from '../../src/wasm';
import { PiCloud } from '../support/picloud';

type Limits = Record<string, number>;
interface Case {
  name: string;
  source: string;
  repeat?: { text: string; times: number };
  limits?: Limits;
  expect: 'ok' | { line: number };
}

const CORPUS = resolve(__dirname, '../../../../crates/picloud-runtime/tests/corpus/check.json');
const corpus = (JSON.parse(readFileSync(CORPUS, 'utf8')) as { scripts: Case[] }).scripts;
const source = (c: Case) => c.source + (c.repeat ? c.repeat.text.repeat(c.repeat.times) : '');

let pc: PiCloud;
let esm: typeof Wasm;
let cjs: typeof Wasm;
beforeAll(async () => {
  // The built entries (a computed path: they do not exist when the sources are typechecked).
  const dist = resolve(__dirname, '../../dist');
  esm = (await import(pathToFileURL(`${dist}/wasm.js`).href)) as typeof Wasm;
  cjs = createRequire(import.meta.url)(`${dist}/wasm.cjs`) as typeof Wasm;
  pc = await PiCloud.start();
  await pc.createApp();
});
afterAll(() => pc?.destroy());

describe('@picloud/client/wasm against the server', () => {
  it('judges every corpus script exactly as the server does', async () => {
    expect(corpus.length).toBeGreaterThanOrEqual(50);
    expect(esm.checkScript).not.toBe(cjs.checkScript);
    let limitsNow = '{}';
    for (const c of corpus) {
      const limits = c.limits ?? {};
      if (JSON.stringify(limits) !== limitsNow) {
        await pc.api('PUT', '/apps/demo/runtime', { limits, max_concurrency: 4 });
        limitsNow = JSON.stringify(limits);
      }
      const text = source(c);
      const server = (await pc.api<{ diagnostics: Wasm.Diagnostic[] }>('POST', '/apps/demo/scripts/check', { source: text })).diagnostics;
      const fromEsm = esm.checkScript(text, c.limits);
      const fromCjs = cjs.checkScript(text, c.limits);
      expect(fromEsm, c.name).toEqual(server);
      expect(fromCjs, c.name).toEqual(server);
      if (c.expect === 'ok') expect(server, c.name).toEqual([]);
      else expect(server.map((d) => d.line), c.name).toEqual([c.expect.line]);
    }
  });

  it('validates topic names as creating a topic does', async () => {
    const names = ['chat', 'chat.room-1', 'a:b@c_d', '', 'a..b', '.a', 'a.', 'chat.*', 'a b', 'a/b', 'é', 'x'.repeat(128), 'x'.repeat(129)];
    for (const name of names) {
      const created = await fetch(`${pc.admin}/api/v1/apps/demo/topics`, {
        method: 'POST',
        headers: { authorization: `Bearer ${pc.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name }),
      });
      const verdict = esm.validateTopic(name);
      expect(verdict, JSON.stringify(name)).toEqual(cjs.validateTopic(name));
      expect(created.status, `${JSON.stringify(name)}: ${JSON.stringify(verdict)}`).toBe(verdict === null ? 201 : 422);
      if (verdict) expect(((await created.json()) as { error: { message: string } }).error.message).toContain(verdict.message);
    }
    expect(esm.topicPatternMatches('chat.*', 'chat.a')).toBe(true);
    expect(esm.topicPatternMatches('chat.*', 'chat')).toBe(false);
    expect(cjs.topicPatternMatches('chat', 'chat')).toBe(true);
    expect(() => esm.topicPatternMatches('a..*', 'a')).toThrow(/topic/);
  });

  it('validates trigger filters as creating a trigger does', async () => {
    await pc.api('POST', '/apps/demo/scripts', { name: 'h', source: '1' });
    const cases: [string, unknown][] = [
      ['kv', { prefix: 'users:' }],
      ['kv', { topic: 'x' }],
      ['cron', { schedule: '*/5 * * * *' }],
      ['cron', { schedule: '61 * * * *' }],
      ['cron', {}],
      ['pubsub', { topic: 'orders.*' }],
      ['pubsub', { topic: 'a..b' }],
      ['docs', { collection: 'users' }],
      ['dead_letter', null],
      ['files', 'not an object'],
    ];
    for (const [kind, filter] of cases) {
      const r = await fetch(`${pc.admin}/api/v1/apps/demo/triggers`, {
        method: 'POST',
        headers: { authorization: `Bearer ${pc.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ kind, filter, script: 'h', enabled: false }),
      });
      const verdict = esm.validateTriggerFilter(kind, filter);
      expect(cjs.validateTriggerFilter(kind, filter)).toEqual(verdict);
      expect(r.status, `${kind} ${JSON.stringify(filter)}: ${JSON.stringify(verdict)}`).toBe(verdict === null ? 201 : 422);
    }
  });

  it('lists the next fire times of a cron schedule', () => {
    const monday = Date.UTC(2026, 11, 7);
    expect(esm.cronNext('30 9 * * 1-5', monday, 3)).toEqual([Date.UTC(2026, 11, 7, 9, 30), Date.UTC(2026, 11, 8, 9, 30), Date.UTC(2026, 11, 9, 9, 30)]);
    expect(cjs.cronNext('*/20 * * * * *', 0, 2)).toEqual([20_000, 40_000]);
    expect(() => esm.cronNext('61 * * * *', monday, 5)).toThrow(/filter.schedule/);
    expect(() => esm.checkScript('1', { max_expr_depth: 1_000_000 })).toThrow(/limits/);
  });
});
