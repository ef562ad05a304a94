/**
 * The "Try it" panel: a request to the app's script endpoints built from the form (`POST
 * …/apps/{app}/try` sends it as a client on the app's Host would), checked before sending. Headers
 * are typed one per line as `Name: value`; the query without `?` (a leading one is dropped). Pure.
 */
import type { Schemas } from './api/client';
import type { Result } from './wiring';

export const TRY_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

export interface TryInput {
  method: string;
  path: string;
  query: string;
  headers: string;
  body: string;
}

export type TryRequest = Schemas['TryRequest'];

// An HTTP header name: RFC 9110's token.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** `Name: value` lines (blank ones skipped) as a map; a repeated name keeps the last value. */
export function parseHeaders(text: string): Result<Record<string, string>> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : '';
    if (!name || !TOKEN.test(name)) return { ok: false, error: `Header line ${i + 1}: write it as Name: value.` };
    out[name] = line.slice(colon + 1).trim();
  }
  return { ok: true, value: out };
}

export function tryRequest(input: TryInput): Result<TryRequest> {
  const method = input.method.trim().toUpperCase();
  if (!(TRY_METHODS as readonly string[]).includes(method)) return { ok: false, error: `Choose a method (${TRY_METHODS.join(', ')}).` };
  const path = input.path.trim();
  if (!path.startsWith('/')) return { ok: false, error: 'The path must start with /.' };
  if (path.includes('?')) return { ok: false, error: 'Put the query in the Query field.' };
  const headers = parseHeaders(input.headers);
  if (!headers.ok) return headers;
  return { ok: true, value: { method, path, query: input.query.trim().replace(/^\?/, ''), headers: headers.value, body: input.body } };
}

/** A body for display: pretty JSON when it parses as JSON, else as it came. */
export function prettyBody(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}
