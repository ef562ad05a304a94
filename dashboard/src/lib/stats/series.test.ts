// Shows the chart data stays bounded and ordered: history replaces (sorted, at most 300), samples
// append only when newer, the oldest falls out at the bound, and columns are seconds + metrics.
import { describe, expect, it } from 'vitest';
import { MAX_POINTS, type Sample, columns, withHistory, withSample } from './series';

const s = (sec: number, n = sec): Sample => ({ at_ms: sec * 1000, connections: n, subscribers: n * 2, publishes_per_sec: n / 2, deliveries_per_sec: n, slow_consumer_disconnects: 0 });

describe('stats series', () => {
  it('takes a history sorted and bounded', () => {
    expect(withHistory([s(3), s(1), s(2)]).map((x) => x.at_ms)).toEqual([1000, 2000, 3000]);
    const long = Array.from({ length: 400 }, (_, i) => s(i));
    const kept = withHistory(long);
    expect(kept).toHaveLength(MAX_POINTS);
    expect(kept[0]!.at_ms).toBe(100_000);
  });

  it('appends newer samples only and drops the oldest at the bound', () => {
    let kept = withHistory([s(1), s(2)]);
    kept = withSample(kept, s(2, 99));
    expect(kept.map((x) => x.connections)).toEqual([1, 2]);
    kept = withSample(kept, s(3));
    expect(kept.map((x) => x.at_ms)).toEqual([1000, 2000, 3000]);
    let full = withHistory(Array.from({ length: MAX_POINTS }, (_, i) => s(i)));
    full = withSample(full, s(MAX_POINTS));
    expect(full).toHaveLength(MAX_POINTS);
    expect([full[0]!.at_ms, full.at(-1)!.at_ms]).toEqual([1000, MAX_POINTS * 1000]);
  });

  it('makes uPlot columns in seconds', () => {
    expect(columns([s(1), s(2)], ['connections', 'subscribers'])).toEqual([
      [1, 2],
      [1, 2],
      [2, 4],
    ]);
  });
});
