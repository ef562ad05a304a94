/**
 * Calls to the app's script endpoints: `client.endpoint('/items').get({ query, validate })`.
 * JSON in and out; a non-2xx answer throws a PiCloudError with PiCloud's `{"error":{"code","message"}}`
 * (or code `http`). A 401 with a token provider fetches a fresh token and tries once more.
 */
import { httpError } from './transport/sse';
import type { Endpoint, FetchLike, RequestOptions } from './types';

export function endpoint(
  base: string,
  path: string,
  fetchFn: FetchLike,
  token: (fresh: boolean) => Promise<string | null>,
  refreshable: boolean,
): Endpoint {
  const call = async <T>(method: string, o: RequestOptions<T> = {}): Promise<T> => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(o.query ?? {}))
      for (const x of Array.isArray(v) ? v : v == null ? [] : [v]) q.append(k, String(x));
    const qs = q.toString();
    const url = base + (path.startsWith('/') ? '' : '/') + path + (qs ? (path.includes('?') ? '&' : '?') + qs : '');
    for (let retry = 0; ; retry++) {
      const headers: Record<string, string> = { accept: 'application/json', ...o.headers };
      const t = await token(retry > 0);
      if (t) headers.authorization = `Bearer ${t}`;
      const init: RequestInit = { method, headers };
      if (o.signal) init.signal = o.signal;
      if (o.body !== undefined) {
        headers['content-type'] = 'application/json';
        init.body = JSON.stringify(o.body);
      }
      const res = await fetchFn(url, init);
      if (res.status === 401 && refreshable && !retry) continue;
      if (!res.ok) throw await httpError(res);
      const text = await res.text();
      const data: unknown = !text ? undefined : /json/.test(res.headers.get('content-type') ?? '') ? JSON.parse(text) : text;
      return o.validate ? o.validate.parse(data) : (data as T);
    }
  };
  return {
    get: (o) => call('GET', o),
    post: (o) => call('POST', o),
    put: (o) => call('PUT', o),
    delete: (o) => call('DELETE', o),
  };
}
