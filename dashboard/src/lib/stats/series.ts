/**
 * The Overview's chart data: the stats stream's samples (a `history` frame, then one `stats` frame
 * a second), at most MAX_POINTS (5 minutes) kept. A `history` replaces what was kept (a reconnect
 * sends the whole window again, so nothing is doubled); a `stats` sample is appended unless it is
 * not newer than the last one. Pure.
 */
import type { Schemas } from '../api/client';

export type Sample = Schemas['StatsSample'];
export const MAX_POINTS = 300;

export function withHistory(samples: readonly Sample[], max = MAX_POINTS): Sample[] {
  return [...samples].sort((a, b) => a.at_ms - b.at_ms).slice(-max);
}

export function withSample(kept: readonly Sample[], s: Sample, max = MAX_POINTS): Sample[] {
  const last = kept.at(-1);
  if (last && s.at_ms <= last.at_ms) return kept as Sample[];
  const out = kept.length >= max ? kept.slice(kept.length - max + 1) : kept.slice();
  out.push(s);
  return out;
}

export type Metric = Exclude<keyof Sample, 'at_ms'>;

/** uPlot's columns: x in seconds, then one array per metric, in the order asked. */
export function columns(kept: readonly Sample[], metrics: readonly Metric[]): number[][] {
  return [kept.map((s) => s.at_ms / 1000), ...metrics.map((m) => kept.map((s) => s[m]))];
}
