/**
 * Routes and triggers (the per-app wiring page): the create bodies, built and checked before
 * sending (a JSON filter must parse to an object, retry numbers must be whole and not negative).
 * What only the server checks (a cron expression, a path's syntax) is left to it. Pure.
 */
import type { Schemas } from './api/client';

export type Route = Schemas['RouteBody'];
export type Trigger = Schemas['TriggerBody'];
export type CreateRoute = Schemas['CreateRoute'];
export type CreateTrigger = Schemas['CreateTrigger'];
export type Retry = Schemas['RetryBody'];

export const ROUTE_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'ANY'] as const;
export const TRIGGER_KINDS = ['pubsub', 'kv', 'docs', 'files', 'cron', 'dead_letter'] as const;
export type TriggerKind = (typeof TRIGGER_KINDS)[number];

/** The server's default retry policy (docs/scripts.md). */
export const DEFAULT_RETRY: Retry = { max_attempts: 5, base_delay_ms: 1000, max_delay_ms: 60000 };

/** An example filter per kind (docs/scripts.md), shown as the textarea's starting text. */
export const FILTER_EXAMPLES: Record<TriggerKind, string> = {
  pubsub: '{"topic": "orders"}',
  kv: '{"prefix": "user:"}',
  docs: '{"collection": "orders"}',
  files: '{"prefix": "img/"}',
  cron: '{"schedule": "*/5 * * * *"}',
  dead_letter: '{}',
};

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };

/** A trigger filter from the textarea: a JSON object, or why not. */
export function parseFilter(text: string): Result<Record<string, unknown>> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `The filter is not valid JSON (${e instanceof Error ? e.message : String(e)}).` };
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return { ok: false, error: 'The filter must be a JSON object, e.g. {"topic": "orders"}.' };
  return { ok: true, value: v as Record<string, unknown> };
}

export function routeBody(method: string, path: string, script: string): Result<CreateRoute> {
  const p = path.trim();
  if (!(ROUTE_METHODS as readonly string[]).includes(method)) return { ok: false, error: `Choose a method (${ROUTE_METHODS.join(', ')}).` };
  if (!p.startsWith('/')) return { ok: false, error: 'The path must start with /.' };
  if (!script) return { ok: false, error: 'Choose a script.' };
  return { ok: true, value: { method, path: p, script } };
}

/** The retry fields as typed: all empty → the server's default (no `retry` sent). */
export interface RetryInput {
  max_attempts: string;
  base_delay_ms: string;
  max_delay_ms: string;
}

const whole = (s: string): number | null => (/^\d+$/.test(s.trim()) ? Number(s.trim()) : null);

export function parseRetry(r: RetryInput): Result<Retry | null> {
  const fields = [r.max_attempts, r.base_delay_ms, r.max_delay_ms];
  if (fields.every((f) => !f.trim())) return { ok: true, value: null };
  const [a, b, m] = fields.map((f) => (f.trim() ? whole(f) : null));
  const filled = (f: string, n: number | null, dflt: number) => (f.trim() ? n : dflt);
  const max_attempts = filled(r.max_attempts, a ?? null, DEFAULT_RETRY.max_attempts);
  const base_delay_ms = filled(r.base_delay_ms, b ?? null, DEFAULT_RETRY.base_delay_ms);
  const max_delay_ms = filled(r.max_delay_ms, m ?? null, DEFAULT_RETRY.max_delay_ms);
  if (max_attempts === null || base_delay_ms === null || max_delay_ms === null) return { ok: false, error: 'Retry values must be whole numbers, 0 or more.' };
  return { ok: true, value: { max_attempts, base_delay_ms, max_delay_ms } };
}

export interface TriggerInput {
  kind: string;
  script: string;
  filter: string;
  enabled: boolean;
  retry: RetryInput;
}

export function triggerBody(t: TriggerInput): Result<CreateTrigger> {
  if (!(TRIGGER_KINDS as readonly string[]).includes(t.kind)) return { ok: false, error: `Choose a kind (${TRIGGER_KINDS.join(', ')}).` };
  if (!t.script) return { ok: false, error: 'Choose a script.' };
  const filter = parseFilter(t.filter);
  if (!filter.ok) return filter;
  const retry = parseRetry(t.retry);
  if (!retry.ok) return retry;
  // The schema types `filter` as an object with no known keys; any JSON object is sent as typed.
  const body: CreateTrigger = { kind: t.kind, script: t.script, filter: filter.value as CreateTrigger['filter'], enabled: t.enabled };
  if (retry.value) body.retry = retry.value;
  return { ok: true, value: body };
}

/** A retry policy in words: `5 attempts, 1000–60000 ms`. */
export function retryText(r: Retry): string {
  return `${r.max_attempts} attempt${r.max_attempts === 1 ? '' : 's'}, ${r.base_delay_ms}–${r.max_delay_ms} ms`;
}

/** A filter on one line. */
export function filterText(f: unknown): string {
  return JSON.stringify(f ?? {});
}
