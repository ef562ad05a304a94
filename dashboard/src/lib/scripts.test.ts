// Shows the dead-letter and invocation filters, which letters "replay all that match" and "replay
// selected" take, and that polled invocation records merge newest first with no duplicates.
import { describe, expect, it } from 'vitest';
import {
  appendOlder,
  distinct,
  filterDeadLetters,
  filterInvocations,
  type DeadLetter,
  type Invocation,
  inRange,
  localTimeMs,
  logLines,
  mergeNewest,
  micros,
  NO_DEAD_LETTER_FILTER,
  NO_INVOCATION_FILTER,
  replayIds,
} from './scripts';

const dl = (id: string, trigger: string, last_error: string, created_at: string, replayed_at: string | null = null): DeadLetter => ({
  id,
  trigger,
  last_error,
  created_at,
  replayed_at,
  attempts: 1,
  event: {},
});
const letters = [
  dl('d3', 't1', 'Runtime error: boom', '2026-01-03T00:00:00Z'),
  dl('d2', 't2', 'timeout', '2026-01-02T00:00:00Z'),
  dl('d1', 't1', 'BOOM again', '2026-01-01T00:00:00Z', '2026-01-04T00:00:00Z'),
];

describe('dead letters', () => {
  it('shows those not replayed by default; filters by trigger, error text and time', () => {
    expect(filterDeadLetters(letters, NO_DEAD_LETTER_FILTER).map((d) => d.id)).toEqual(['d3', 'd2']);
    const all = { ...NO_DEAD_LETTER_FILTER, status: 'all' as const };
    expect(filterDeadLetters(letters, { ...all, trigger: 't1' }).map((d) => d.id)).toEqual(['d3', 'd1']);
    expect(filterDeadLetters(letters, { ...all, error: ' boom ' }).map((d) => d.id)).toEqual(['d3', 'd1']);
    expect(filterDeadLetters(letters, { ...all, fromMs: Date.parse('2026-01-02T00:00:00Z') }).map((d) => d.id)).toEqual(['d3', 'd2']);
    expect(filterDeadLetters(letters, { ...all, toMs: Date.parse('2026-01-01T12:00:00Z') }).map((d) => d.id)).toEqual(['d1']);
    expect(filterDeadLetters(letters, { ...all, status: 'replayed' }).map((d) => d.id)).toEqual(['d1']);
  });

  it('replays all that match, or the selected ones still shown', () => {
    const shown = filterDeadLetters(letters, { ...NO_DEAD_LETTER_FILTER, trigger: 't1' });
    expect(replayIds(shown, 'all', new Set())).toEqual(['d3']);
    // d2 is selected but hidden by the filter: not replayed unseen.
    expect(replayIds(shown, 'selected', new Set(['d2', 'd3']))).toEqual(['d3']);
    expect(replayIds(letters, 'selected', new Set())).toEqual([]);
  });

  it('lists distinct triggers sorted', () => {
    expect(distinct(letters, (d) => d.trigger)).toEqual(['t1', 't2']);
  });
});

const inv = (id: number, over: Partial<Invocation> = {}): Invocation => ({
  id,
  script: 'handler',
  version: 1,
  source: 'trigger:t1',
  started_at: `2026-01-0${Math.min(id, 9)}T00:00:00Z`,
  duration_us: 10,
  operations: 0,
  outcome: 'ok',
  logs: [],
  ...over,
});

describe('invocations', () => {
  it('filters by script, source, outcome and time', () => {
    const list = [inv(3, { outcome: 'error' }), inv(2, { script: 'api', source: 'route:GET /x' }), inv(1)];
    expect(filterInvocations(list, NO_INVOCATION_FILTER)).toHaveLength(3);
    expect(filterInvocations(list, { ...NO_INVOCATION_FILTER, script: 'api' }).map((i) => i.id)).toEqual([2]);
    expect(filterInvocations(list, { ...NO_INVOCATION_FILTER, source: 'trigger:t1' }).map((i) => i.id)).toEqual([3, 1]);
    expect(filterInvocations(list, { ...NO_INVOCATION_FILTER, outcome: 'error' }).map((i) => i.id)).toEqual([3]);
    expect(filterInvocations(list, { ...NO_INVOCATION_FILTER, fromMs: Date.parse('2026-01-02T00:00:00Z') }).map((i) => i.id)).toEqual([3, 2]);
  });

  it('merges a poll newest first without duplicates, bounded', () => {
    const held = [inv(5), inv(4), inv(3)];
    const r = mergeNewest(held, [inv(7), inv(6), inv(5), inv(4)], 100);
    expect(r.list.map((i) => i.id)).toEqual([7, 6, 5, 4, 3]);
    expect(r.added).toBe(2);
    expect(r.dropped).toBe(0);
    expect(mergeNewest(r.list, [inv(7), inv(6)], 100).added).toBe(0);
    const capped = mergeNewest(held, [inv(6)], 3);
    expect(capped.list.map((i) => i.id)).toEqual([6, 5, 4]);
    expect(capped.dropped).toBe(1);
    // A duplicate inside one poll counts once.
    expect(mergeNewest([], [inv(2), inv(2)], 10).list.map((i) => i.id)).toEqual([2]);
  });

  it('appends an older page without duplicates', () => {
    expect(appendOlder([inv(5), inv(4)], [inv(4), inv(3)]).map((i) => i.id)).toEqual([5, 4, 3]);
  });

  it('reads log lines and formats durations', () => {
    expect(logLines([{ level: 'info', message: 'hi', at_ms: 3 }, 'odd'])).toEqual([
      { level: 'info', message: 'hi', at_ms: 3 },
      { level: '?', message: '"odd"', at_ms: null },
    ]);
    expect(micros(850)).toBe('850 µs');
    expect(micros(12_345)).toBe('12.3 ms');
    expect(micros(1_250_000)).toBe('1.25 s');
  });

  it('reads time inputs and ranges', () => {
    expect(localTimeMs('')).toBeNull();
    expect(localTimeMs('nonsense')).toBeNull();
    expect(localTimeMs('2026-01-02T03:04')).toBe(new Date('2026-01-02T03:04').getTime());
    expect(inRange('2026-01-02T00:00:00Z', null, null)).toBe(true);
    expect(inRange('2026-01-02T00:00:00Z', Date.parse('2026-01-03T00:00:00Z'), null)).toBe(false);
  });
});
