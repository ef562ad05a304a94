import { describe, expect, it } from 'vitest';
import { filterText, parseFilter, parseRetry, retryText, routeBody, triggerBody, type RetryInput } from './wiring';

const noRetry: RetryInput = { max_attempts: '', base_delay_ms: '', max_delay_ms: '' };

describe('parseFilter', () => {
  it('takes a JSON object', () => {
    expect(parseFilter('{"topic": "orders.*"}')).toEqual({ ok: true, value: { topic: 'orders.*' } });
    expect(parseFilter(' {} ')).toEqual({ ok: true, value: {} });
  });
  it('refuses invalid JSON and non-objects', () => {
    const bad = parseFilter('{"topic":');
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error).toMatch(/not valid JSON/);
    for (const t of ['[]', 'null', '"x"', '3']) {
      const r = parseFilter(t);
      expect(r.ok, t).toBe(false);
      if (!r.ok) expect(r.error).toMatch(/must be a JSON object/);
    }
  });
});

describe('routeBody', () => {
  it('builds the body, the path trimmed', () => {
    expect(routeBody('GET', ' /hello ', 'h')).toEqual({ ok: true, value: { method: 'GET', path: '/hello', script: 'h' } });
  });
  it('refuses an unknown method, a relative path, no script', () => {
    expect(routeBody('HEAD', '/x', 'h').ok).toBe(false);
    expect(routeBody('GET', 'x', 'h').ok).toBe(false);
    expect(routeBody('GET', '/x', '').ok).toBe(false);
  });
});

describe('parseRetry', () => {
  it('all empty: the server default (none sent)', () => {
    expect(parseRetry(noRetry)).toEqual({ ok: true, value: null });
  });
  it('some given: the rest from the default', () => {
    expect(parseRetry({ ...noRetry, max_attempts: '1' })).toEqual({ ok: true, value: { max_attempts: 1, base_delay_ms: 1000, max_delay_ms: 60000 } });
    expect(parseRetry({ max_attempts: '0', base_delay_ms: '10', max_delay_ms: '20' })).toEqual({ ok: true, value: { max_attempts: 0, base_delay_ms: 10, max_delay_ms: 20 } });
  });
  it('refuses negative, fractional or non-numeric values', () => {
    for (const v of ['-1', '1.5', 'x']) expect(parseRetry({ ...noRetry, base_delay_ms: v }).ok, v).toBe(false);
  });
});

describe('triggerBody', () => {
  it('builds the body with the parsed filter, enabled, and retry only when given', () => {
    expect(triggerBody({ kind: 'pubsub', script: 's', filter: '{"topic":"t"}', enabled: true, retry: noRetry })).toEqual({
      ok: true,
      value: { kind: 'pubsub', script: 's', filter: { topic: 't' }, enabled: true },
    });
    const r = triggerBody({ kind: 'cron', script: 's', filter: '{"schedule":"nonsense"}', enabled: false, retry: { ...noRetry, max_attempts: '2' } });
    expect(r).toEqual({
      ok: true,
      value: { kind: 'cron', script: 's', filter: { schedule: 'nonsense' }, enabled: false, retry: { max_attempts: 2, base_delay_ms: 1000, max_delay_ms: 60000 } },
    });
  });
  it('refuses a bad filter, kind, script or retry before sending', () => {
    expect(triggerBody({ kind: 'pubsub', script: 's', filter: '{', enabled: true, retry: noRetry }).ok).toBe(false);
    expect(triggerBody({ kind: 'webhook', script: 's', filter: '{}', enabled: true, retry: noRetry }).ok).toBe(false);
    expect(triggerBody({ kind: 'kv', script: '', filter: '{}', enabled: true, retry: noRetry }).ok).toBe(false);
    expect(triggerBody({ kind: 'kv', script: 's', filter: '{}', enabled: true, retry: { ...noRetry, max_delay_ms: '-5' } }).ok).toBe(false);
  });
});

describe('text', () => {
  it('retry and filter on one line', () => {
    expect(retryText({ max_attempts: 1, base_delay_ms: 1, max_delay_ms: 1 })).toBe('1 attempt, 1–1 ms');
    expect(retryText({ max_attempts: 5, base_delay_ms: 1000, max_delay_ms: 60000 })).toBe('5 attempts, 1000–60000 ms');
    expect(filterText({ topic: 'a' })).toBe('{"topic":"a"}');
  });
});
