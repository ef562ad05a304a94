/**
 * The topic settings form (PATCH /api/v1/apps/{app}/topics/{topic}, body `UpdateTopic`): its state
 * seeded from a topic, and the body that sends only what changed. `retention` replaces both limits,
 * so when either limit changed both are sent; an empty limit is no limit (`null`). The server
 * validates the values (description length, limits ≥ 1) and its refusal is shown verbatim. The
 * client event limit is checked here first: its two inputs make sense only together, which the
 * server cannot tell apart from a mistake once one of them is dropped.
 */
import type { Schemas } from './api/client';

export type AuthMode = 'public' | 'token';

export interface TopicForm {
  description: string;
  external: boolean;
  authMode: AuthMode;
  /** A number input's value: empty is `null` (or `undefined`), i.e. no limit. */
  maxMessages: number | null | undefined;
  maxAgeSecs: number | null | undefined;
  clientPublish: boolean;
  presence: boolean;
  /** The topic's own client event limit, `limitCount` per `limitPerSecs`: both empty is none. */
  limitCount: number | null | undefined;
  limitPerSecs: number | null | undefined;
}

type Topic = Pick<
  Schemas['TopicBody'],
  'description' | 'external_subscribable' | 'auth_mode' | 'retention' | 'client_publish' | 'presence' | 'client_event_limit'
>;
export type EventLimit = Schemas['RateLimitBody'];

/** The server's bounds (`RateLimit::validate`; both are `u32`). */
export const LIMIT_COUNT_MAX = 4_294_967_295;
export const LIMIT_PER_SECS_MAX = 86_400;

export function topicForm(t: Topic): TopicForm {
  return {
    description: t.description,
    external: t.external_subscribable,
    authMode: t.auth_mode === 'public' ? 'public' : 'token',
    maxMessages: t.retention.max_messages ?? null,
    maxAgeSecs: t.retention.max_age_secs ?? null,
    clientPublish: t.client_publish,
    presence: t.presence,
    limitCount: t.client_event_limit?.count ?? null,
    limitPerSecs: t.client_event_limit?.per_secs ?? null,
  };
}

/** An input's number, or `null` for empty (a number input gives `null`/`undefined`/NaN when empty). */
function limit(v: number | null | undefined): number | null {
  return typeof v === 'number' && !Number.isNaN(v) ? v : null;
}

const whole = (v: number | null, min: number, max: number) => v !== null && Number.isInteger(v) && v >= min && v <= max;

/**
 * The client event limit two inputs give: `null` when both are empty (the app's rate only), else
 * both must be whole numbers in the server's bounds. `error` says what to fix, in words for the form.
 */
export function eventLimit(count: number | null | undefined, perSecs: number | null | undefined): { ok: true; limit: EventLimit | null } | { ok: false; error: string } {
  const c = limit(count);
  const p = limit(perSecs);
  if (c === null && p === null) return { ok: true, limit: null };
  if (c === null || p === null) return { ok: false, error: 'Give both the number of events and the seconds, or neither for no limit of its own.' };
  if (!whole(c, 1, LIMIT_COUNT_MAX)) return { ok: false, error: `The number of events must be a whole number from 1 to ${LIMIT_COUNT_MAX.toLocaleString('en-US')}.` };
  if (!whole(p, 1, LIMIT_PER_SECS_MAX)) return { ok: false, error: `The seconds must be a whole number from 1 to ${LIMIT_PER_SECS_MAX.toLocaleString('en-US')} (a day).` };
  return { ok: true, limit: { count: c, per_secs: p } };
}

/** What the limit inputs say, for the line under them: the problem, or the limit they set. */
export function limitHint(r: ReturnType<typeof eventLimit>): string {
  if (!r.ok) return r.error;
  if (!r.limit) return "No limit of its own: the app's rate applies.";
  return `At most ${r.limit.count.toLocaleString('en-US')} client events per ${r.limit.per_secs.toLocaleString('en-US')} s on each connection, within the app's rate.`;
}

const sameLimit = (a: EventLimit | null | undefined, b: EventLimit | null) => (a ?? null) === b || (!!a && !!b && a.count === b.count && a.per_secs === b.per_secs);

/**
 * The PATCH body for what differs from the topic as loaded; empty when nothing changed. Call it
 * only with a valid limit (`eventLimit(…).ok`): it throws otherwise rather than drop the change.
 */
export function topicPatch(t: Topic, f: TopicForm): Schemas['UpdateTopic'] {
  const body: Schemas['UpdateTopic'] = {};
  const description = f.description.trim();
  if (description !== t.description) body.description = description;
  if (f.external !== t.external_subscribable) body.external_subscribable = f.external;
  if (f.authMode !== t.auth_mode) body.auth_mode = f.authMode;
  const max_messages = limit(f.maxMessages);
  const max_age_secs = limit(f.maxAgeSecs);
  if (max_messages !== (t.retention.max_messages ?? null) || max_age_secs !== (t.retention.max_age_secs ?? null)) {
    body.retention = { max_messages, max_age_secs };
  }
  if (f.clientPublish !== t.client_publish) body.client_publish = f.clientPublish;
  if (f.presence !== t.presence) body.presence = f.presence;
  const l = eventLimit(f.limitCount, f.limitPerSecs);
  if (!l.ok) throw new Error(l.error);
  // `null` removes the topic's own limit; leaving the field out keeps it.
  if (!sameLimit(t.client_event_limit, l.limit)) body.client_event_limit = l.limit;
  return body;
}

/** A topic's client events in words: off, or on with the app's rate or its own limit. */
export function describeClientEvents(t: Pick<Topic, 'client_publish' | 'client_event_limit'>): string {
  if (!t.client_publish) return 'not allowed';
  const l = t.client_event_limit;
  if (!l) return "allowed (the app's rate)";
  return `allowed (at most ${l.count.toLocaleString('en-US')} per ${l.per_secs === 1 ? 'second' : `${l.per_secs.toLocaleString('en-US')} s`} per connection)`;
}

/** Whether the change ends the topic's open streams (the server closes them when access tightens). */
export function tightens(body: Schemas['UpdateTopic']): boolean {
  return body.external_subscribable === false || body.auth_mode === 'token';
}

/** A topic's retention in words. */
export function describeRetention(r: Schemas['RetentionBody']): string {
  const parts: string[] = [];
  if (r.max_messages != null) parts.push(`at most ${r.max_messages.toLocaleString('en-US')} messages`);
  if (r.max_age_secs != null) parts.push(`at most ${r.max_age_secs.toLocaleString('en-US')} s`);
  return parts.length ? parts.join(', ') : 'no limit';
}
