import { describe, expect, it } from 'vitest';
import type { Checker } from './checker';
import { checkTrigger, fireTimes } from './triggerCheck';

const checker: Checker = {
  checkScript: () => [],
  validateTopic: () => null,
  topicPatternMatches: () => true,
  validateTriggerFilter: (kind, filter) => {
    const f = filter as Record<string, unknown>;
    if (kind === 'pubsub' && typeof f.topic !== 'string') return { field: 'topic', message: 'a pubsub trigger needs a topic' };
    if (kind === 'cron' && f.schedule === 'nope') return { field: 'schedule', message: 'invalid schedule' };
    return null;
  },
  cronNext: (expr, from, n) => {
    if (expr === 'nope') throw new Error('invalid cron expression: nope');
    return Array.from({ length: n }, (_, i) => from + (i + 1) * 60_000);
  },
};

describe('checkTrigger', () => {
  it('says why a filter would be refused, with its field', () => {
    expect(checkTrigger(checker, 'pubsub', '{}', 0)).toEqual({ filterError: 'topic: a pubsub trigger needs a topic', cron: null });
    expect(checkTrigger(checker, 'pubsub', '{"topic": "a"}', 0)).toEqual({ filterError: null, cron: null });
  });
  it('leaves JSON that does not parse to the form', () => {
    expect(checkTrigger(checker, 'pubsub', '{"topic":', 0)).toEqual({ filterError: null, cron: null });
  });
  it('gives a cron schedule its next five fire times', () => {
    const r = checkTrigger(checker, 'cron', '{"schedule": "* * * * *"}', Date.UTC(2026, 0, 1));
    expect(r.filterError).toBeNull();
    expect(r.cron && 'times' in r.cron && r.cron.times.map((t) => t.iso)).toEqual([
      '2026-01-01T00:01:00.000Z',
      '2026-01-01T00:02:00.000Z',
      '2026-01-01T00:03:00.000Z',
      '2026-01-01T00:04:00.000Z',
      '2026-01-01T00:05:00.000Z',
    ]);
  });
  it('shows an invalid expression\'s error instead', () => {
    expect(checkTrigger(checker, 'cron', '{"schedule": "nope"}', 0)).toEqual({ filterError: 'schedule: invalid schedule', cron: { error: 'invalid cron expression: nope' } });
  });
});

describe('fireTimes', () => {
  it('local and UTC', () => {
    const [t] = fireTimes([Date.UTC(2026, 5, 1, 12, 30)]);
    expect(t!.iso).toBe('2026-06-01T12:30:00.000Z');
    expect(t!.local).toMatch(/^2026-06-01 \d\d:30:00$/);
  });
});
