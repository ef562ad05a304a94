/**
 * The topic settings form (PATCH /api/v1/apps/{app}/topics/{topic}, body `UpdateTopic`): its state
 * seeded from a topic, and the body that sends only what changed. `retention` replaces both limits,
 * so when either limit changed both are sent; an empty limit is no limit (`null`). The server
 * validates the values (description length, limits ≥ 1) and its refusal is shown verbatim.
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
}

type Topic = Pick<Schemas['TopicBody'], 'description' | 'external_subscribable' | 'auth_mode' | 'retention'>;

export function topicForm(t: Topic): TopicForm {
  return {
    description: t.description,
    external: t.external_subscribable,
    authMode: t.auth_mode === 'public' ? 'public' : 'token',
    maxMessages: t.retention.max_messages ?? null,
    maxAgeSecs: t.retention.max_age_secs ?? null,
  };
}

/** An input's number, or `null` for empty (a number input gives `null`/`undefined`/NaN when empty). */
function limit(v: number | null | undefined): number | null {
  return typeof v === 'number' && !Number.isNaN(v) ? v : null;
}

/** The PATCH body for what differs from the topic as loaded; empty when nothing changed. */
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
  return body;
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
