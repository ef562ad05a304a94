/**
 * One SSE request over streaming `fetch` (so headers such as `Authorization` and `Last-Event-ID`
 * can be sent, which `EventSource` cannot). Frames are parsed by `eventsource-parser`; bytes are
 * decoded with a streaming `TextDecoder`, so a UTF-8 character split across chunks is kept whole.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { PiCloudError } from '../codes';
import type { FetchLike } from '../types';

export interface StreamHandlers {
  /** The server answered 200 with an event stream. */
  open?(): void;
  /** One frame: `{ event?, data, id? }` (`data` as sent, not parsed). */
  event(e: EventSourceMessage): void;
  /** The server's `retry:` in ms. */
  retry?(ms: number): void;
  /** Any bytes arrived (keepalive comments included): for idle detection. */
  data?(): void;
}

/**
 * Reads one SSE response to its end (exported as `readEventStream`): the low-level reader the
 * client's subscriptions use, for PiCloud's other event streams (e.g. the admin stats stream).
 * No reconnect, no positions: the caller decides. Resolves when the server ends the stream;
 * rejects with a {@link PiCloudError} for a non-200 answer (code from the
 * `{"error":{"code","message"}}` body) or a broken connection (abort the signal to stop).
 */
export async function readStream(
  fetchFn: FetchLike,
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  h: StreamHandlers,
): Promise<void> {
  let res: Response;
  try {
    res = await fetchFn(url, { headers: { accept: 'text/event-stream', ...headers }, signal });
  } catch (e) {
    throw networkError(e);
  }
  if (!res.ok || !res.body || !/^text\/event-stream/.test(res.headers.get('content-type') ?? '')) {
    throw await httpError(res);
  }
  h.open?.();
  const parser = createParser({ onEvent: h.event, onRetry: h.retry });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      h.data?.();
      parser.feed(decoder.decode(value, { stream: true }));
    }
  } catch (e) {
    throw networkError(e);
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * A failed `fetch` or a broken stream, keeping the original error as `cause`. Node's fetch says
 * only "fetch failed" and hides why (DNS, refused, reset) in its own `cause`: that goes into the
 * message, so a log line shows it.
 */
export function networkError(e: unknown): PiCloudError {
  const why = (e as { cause?: unknown } | null)?.cause;
  const detail = why instanceof Error ? why.message : why;
  return new PiCloudError('network', String(e) + (detail ? ` (${String(detail)})` : ''), undefined, false, undefined, e);
}

/** Turns an error answer into a PiCloudError, reading PiCloud's `{"error":{"code","message"}}` body. */
export async function httpError(res: Response): Promise<PiCloudError> {
  let body: unknown;
  try {
    const text = await res.text();
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the status only
  }
  const err = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  return new PiCloudError(
    typeof err?.code === 'string' ? err.code : 'http',
    typeof err?.message === 'string' ? err.message : `HTTP ${res.status}`,
    res.status,
    false,
    body,
  );
}
