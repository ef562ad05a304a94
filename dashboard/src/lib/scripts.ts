/**
 * Dead letters and invocation records (the per-app scripts pages): client-side filters, which dead
 * letters a "replay all that match" takes, and merging polled invocation records. Pure.
 */
import type { Schemas } from './api/client';

export type DeadLetter = Schemas['DeadLetterBody'];
export type Invocation = Schemas['InvocationBody'];

/** `datetime-local` input text (local time) as epoch ms, or null when empty or invalid. */
export function localTimeMs(s: string): number | null {
  if (!s.trim()) return null;
  const t = new Date(s).getTime();
  return Number.isNaN(t) ? null : t;
}

/** Whether an ISO instant lies in [fromMs, toMs] (either bound may be null: open). */
export function inRange(iso: string, fromMs: number | null, toMs: number | null): boolean {
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return fromMs === null && toMs === null;
  return (fromMs === null || t >= fromMs) && (toMs === null || t <= toMs);
}

export interface DeadLetterFilter {
  /** A trigger id, or '' for every trigger. */
  trigger: string;
  /** Substring of the error, case-insensitive ('' for any). */
  error: string;
  fromMs: number | null;
  toMs: number | null;
  /** `waiting`: not replayed yet; `replayed`; `all`. */
  status: 'waiting' | 'replayed' | 'all';
}

export const NO_DEAD_LETTER_FILTER: DeadLetterFilter = { trigger: '', error: '', fromMs: null, toMs: null, status: 'waiting' };

export function filterDeadLetters(list: readonly DeadLetter[], f: DeadLetterFilter): DeadLetter[] {
  const q = f.error.trim().toLowerCase();
  return list.filter(
    (d) =>
      (!f.trigger || d.trigger === f.trigger) &&
      (!q || d.last_error.toLowerCase().includes(q)) &&
      inRange(d.created_at, f.fromMs, f.toMs) &&
      (f.status === 'all' || (f.status === 'replayed') === !!d.replayed_at),
  );
}

/**
 * The ids a replay takes: `all` every shown (filtered) letter; `selected` the selected ones that
 * are still shown (a selection hidden by a later filter is not replayed unseen).
 */
export function replayIds(shown: readonly DeadLetter[], which: 'all' | 'selected', selected: ReadonlySet<string>): string[] {
  return shown.filter((d) => which === 'all' || selected.has(d.id)).map((d) => d.id);
}

/** The distinct values of a field, sorted (the filters' choices). */
export function distinct<T>(list: readonly T[], get: (x: T) => string): string[] {
  return [...new Set(list.map(get))].sort((a, b) => a.localeCompare(b, 'en'));
}

export interface InvocationFilter {
  script: string;
  /** An invocation's `source` exactly (`trigger:<id>`, `route:GET /x`), or '' for any. */
  source: string;
  outcome: '' | 'ok' | 'error';
  fromMs: number | null;
  toMs: number | null;
}

export const NO_INVOCATION_FILTER: InvocationFilter = { script: '', source: '', outcome: '', fromMs: null, toMs: null };

export function filterInvocations(list: readonly Invocation[], f: InvocationFilter): Invocation[] {
  return list.filter(
    (i) =>
      (!f.script || i.script === f.script) &&
      (!f.source || i.source === f.source) &&
      (!f.outcome || i.outcome === f.outcome) &&
      inRange(i.started_at, f.fromMs, f.toMs),
  );
}

/**
 * Newest first: `fresh` (a poll of the newest page) merged into `held`, no id twice, at most `max`
 * kept (the oldest dropped). `added`: how many were new; `dropped`: how many fell off the end.
 */
export function mergeNewest(held: readonly Invocation[], fresh: readonly Invocation[], max: number): { list: Invocation[]; added: number; dropped: number } {
  const seen = new Set(held.map((i) => i.id));
  const added = fresh.filter((i) => !seen.has(i.id) && (seen.add(i.id), true));
  const all = [...added, ...held].sort((a, b) => b.id - a.id);
  return { list: all.slice(0, max), added: added.length, dropped: Math.max(0, all.length - max) };
}

/** Older records (a "load older" page) appended after `held`, no id twice. */
export function appendOlder(held: readonly Invocation[], older: readonly Invocation[]): Invocation[] {
  const seen = new Set(held.map((i) => i.id));
  return [...held, ...older.filter((i) => !seen.has(i.id))];
}

/** A log line of an invocation record (`[{level, message, at_ms}]`; anything else shown as JSON). */
export interface LogLine {
  level: string;
  message: string;
  at_ms: number | null;
}

export function logLines(raw: readonly unknown[]): LogLine[] {
  return raw.map((r) => {
    const o = (r ?? {}) as Record<string, unknown>;
    return {
      level: typeof o.level === 'string' ? o.level : '?',
      message: typeof o.message === 'string' ? o.message : JSON.stringify(r),
      at_ms: typeof o.at_ms === 'number' ? o.at_ms : null,
    };
  });
}

/** A duration in microseconds: `850 µs`, `12.3 ms`, `1.25 s`. */
export function micros(us: number): string {
  if (us < 1000) return `${us} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}
