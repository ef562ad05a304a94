/**
 * The one admin API client: openapi-fetch over the types generated from docs/openapi.json
 * (schema.d.ts; `npm run gen:api`). Every request carries `Authorization: Bearer <admin key>`;
 * a 401 anywhere signs out with a message (the central error handler); `call` turns an error
 * answer into an ApiError holding the server's message verbatim.
 */
import createFetchClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema';

export type Schemas = components['schemas'];

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const UNAUTHORIZED_MESSAGE = 'The admin key was not accepted.';

interface Hooks {
  key: () => string | null;
  unauthorized: () => void;
}
let hooks: Hooks = { key: () => null, unauthorized: () => {} };

/** Wires the client to the auth store (done once in main.ts; kept here so this module has no UI imports). */
export function configureApi(h: Hooks): void {
  hooks = h;
}

export function authHeader(): Record<string, string> {
  const k = hooks.key();
  return k ? { authorization: `Bearer ${k}` } : {};
}

const auth: Middleware = {
  onRequest({ request }) {
    const k = hooks.key();
    // A call that names its own key (sign-in checking a new one) keeps it.
    if (k && !request.headers.has('authorization')) request.headers.set('authorization', `Bearer ${k}`);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401) hooks.unauthorized();
    return response;
  },
};

export const api = createFetchClient<paths>({ baseUrl: globalThis.location?.origin ?? '' });
api.use(auth);

/** Reads `{"error":{"code","message"}}` (or falls back to the status line). */
export function toApiError(status: number, body: unknown, statusText = ''): ApiError {
  const e = (body as { error?: { code?: unknown; message?: unknown } } | null | undefined)?.error;
  if (e && typeof e.message === 'string') return new ApiError(status, typeof e.code === 'string' ? e.code : 'error', e.message);
  return new ApiError(status, 'http_error', `HTTP ${status}${statusText ? ` ${statusText}` : ''}`);
}

/** Awaits an openapi-fetch call: the data, or throws an ApiError with the server's message. */
export async function call<T>(p: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let r: { data?: T; error?: unknown; response: Response };
  try {
    r = await p;
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(0, 'network', `The server could not be reached (${e instanceof Error ? e.message : String(e)}).`);
  }
  if (!r.response.ok) throw toApiError(r.response.status, r.error, r.response.statusText);
  return r.data as T;
}

/** A message for the page from anything thrown. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
