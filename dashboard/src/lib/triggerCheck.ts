/**
 * The trigger form's live checks with the wasm checker (the server's own rules): the filter for its
 * kind (`validateTriggerFilter`), and for a cron trigger the next fire times of its schedule
 * (`cronNext`) or why the expression is refused. Pure given the checker.
 */
import type { Checker } from './checker';
import { when } from './format';
import { parseFilter } from './wiring';

export const CRON_PREVIEW = 5;

export interface FireTime {
  ms: number;
  /** Local time, `2026-01-02 03:04:05`. */
  local: string;
  /** UTC, ISO 8601. */
  iso: string;
}

export interface TriggerCheck {
  /** Why the server would refuse the filter (null: it would take it, or the JSON does not parse — said elsewhere). */
  filterError: string | null;
  /** A cron trigger's schedule: its next fire times, or why not; null for other kinds or no schedule. */
  cron: { times: FireTime[] } | { error: string } | null;
}

export function fireTimes(ms: readonly number[]): FireTime[] {
  return ms.map((t) => {
    const iso = new Date(t).toISOString();
    return { ms: t, local: when(iso), iso };
  });
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

export function checkTrigger(checker: Checker, kind: string, filterText: string, nowMs: number): TriggerCheck {
  const parsed = parseFilter(filterText);
  if (!parsed.ok) return { filterError: null, cron: null };
  let filterError: string | null = null;
  try {
    const invalid = checker.validateTriggerFilter(kind, parsed.value);
    if (invalid) filterError = invalid.field && !invalid.message.startsWith(invalid.field) ? `${invalid.field}: ${invalid.message}` : invalid.message;
  } catch (e) {
    filterError = message(e);
  }
  let cron: TriggerCheck['cron'] = null;
  const schedule = parsed.value.schedule;
  if (kind === 'cron' && typeof schedule === 'string') {
    try {
      cron = { times: fireTimes(checker.cronNext(schedule, nowMs, CRON_PREVIEW)) };
    } catch (e) {
      cron = { error: message(e) };
    }
  }
  return { filterError, cron };
}
