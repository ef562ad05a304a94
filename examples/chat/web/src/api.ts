/**
 * The app's own script endpoints (picloud.toml's routes), on the Host that served the page.
 * `fetchFn` is injectable so Node (tests) can reach `chat.localhost` the way a browser does.
 */
import type { FetchLike } from '@picloud/client';

export interface Outgoing {
  room: string;
  name: string;
  text: string;
}

const browserFetch: FetchLike = (input, init) => fetch(input, init);

/** The message of a refusal: the scripts answer PiCloud's `{"error": {"code", "message"}}`. */
async function refusal(r: Response): Promise<Error> {
  let message = `the server answered ${r.status}`;
  try {
    const body = (await r.json()) as { error?: { message?: unknown } };
    if (typeof body.error?.message === 'string') message = body.error.message;
  } catch {
    // Not JSON (a proxy's error page, say): the status says enough.
  }
  return new Error(message);
}

/** `POST /api/messages` (scripts/send.rhai): resolves with the message's seq in its room. */
export async function sendMessage(base: string, m: Outgoing, fetchFn: FetchLike = browserFetch): Promise<number> {
  const r = await fetchFn(`${base}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(m),
  });
  if (!r.ok) throw await refusal(r);
  const { seq } = (await r.json()) as { seq?: unknown };
  if (typeof seq !== 'number') throw new Error('the server did not say where the message went');
  return seq;
}

/** `GET /api/token` (scripts/token.rhai): a subscriber token for one room, named after the reader. */
export async function fetchToken(base: string, room: string, name: string, fetchFn: FetchLike = browserFetch): Promise<string> {
  const r = await fetchFn(`${base}/api/token?${new URLSearchParams({ room, name })}`);
  if (!r.ok) throw await refusal(r);
  const { token } = (await r.json()) as { token?: unknown };
  if (typeof token !== 'string') throw new Error('the server sent no token');
  return token;
}

/** `GET /api/stats` (scripts/stats.rhai): messages per room, as the `count` trigger counted them. */
export async function fetchStats(base: string, fetchFn: FetchLike = browserFetch): Promise<Record<string, number>> {
  const r = await fetchFn(`${base}/api/stats`);
  if (!r.ok) throw await refusal(r);
  return ((await r.json()) as { rooms: Record<string, number> }).rooms;
}
