/**
 * One WebSocket to `/realtime/ws` (subprotocol `picloud.v1`) carrying compact JSON text frames
 * (docs/protocol.md, "WebSocket"). A request gets a numeric `id`; the frame echoing that id (its
 * answer, or `{"type":"error"}`) settles it. Frames without an id go to the caller.
 */
import { PiCloudError } from '../codes';
import { networkError } from './sse';

/**
 * The part of the WebSocket API this library uses: the browser's, Node 22's global one, or the
 * `ws` package's. (`never` parameters so that every one of those assigns to it.)
 */
export interface WebSocketLike {
  onopen: ((e: never) => void) | null;
  onmessage: ((e: never) => void) | null;
  onclose: ((e: never) => void) | null;
  onerror: ((e: never) => void) | null;
  send(data: string): void;
  close(code?: number): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** A frame of either direction. */
export interface Frame {
  type: string;
  id?: number | string;
  topic?: string;
  [k: string]: unknown;
}

export class Link {
  /** True from the socket's `open` until it ends; a request's rejection while false means the connection went. */
  open = false;
  private n = 0;
  private readonly waiting = new Map<number, [(f: Frame) => void, (e: PiCloudError) => void]>();

  constructor(private readonly ws: WebSocketLike) {}

  request(f: Frame): Promise<Frame> {
    // (A request on a connection that went would wait for an answer that cannot come.)
    if (!this.open) return Promise.reject(new PiCloudError('network', 'not open'));
    const id = ++this.n;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, [resolve, reject]);
      this.ws.send(JSON.stringify({ ...f, id }));
    });
  }

  /** Settles the request `f` answers; false when `f` answers none. */
  settle(f: Frame): boolean {
    const w = this.waiting.get(f.id as number);
    if (!w) return false;
    this.waiting.delete(f.id as number);
    if (f.type === 'error') {
      // `{"type":"error","id","code","message","retry_after_ms"?}`
      const e = new PiCloudError(f.code as string, f.message as string);
      if (typeof f.retry_after_ms === 'number') e.retryAfterMs = f.retry_after_ms;
      w[1](e);
    } else w[0](f);
    return true;
  }

  /** The connection ended: every request still waiting fails with `e`. */
  end(e: PiCloudError): void {
    this.open = false;
    for (const [, reject] of this.waiting.values()) reject(e);
    this.waiting.clear();
  }
}

export interface LinkHandlers {
  open(link: Link): void;
  frame(f: Frame, link: Link): void;
}

/**
 * Runs one WebSocket to its end: resolves with why it ended (a `network` error naming the close
 * code) when the server closes it, it breaks, or `signal` aborts (then it is closed with 1000).
 * A failed upgrade looks the same: browsers do not show the HTTP answer of a refused upgrade.
 */
export function runLink(Ctor: WebSocketConstructor, url: string, signal: AbortSignal, h: LinkHandlers): Promise<PiCloudError> {
  return new Promise((resolve) => {
    let ws: WebSocketLike;
    try {
      ws = new Ctor(url, 'picloud.v1');
    } catch (e) {
      resolve(networkError(e));
      return;
    }
    const link = new Link(ws);
    // A close follows every error. The listener stays for the socket's life: the `ws` package
    // reports closing a socket that is still connecting as an `error` event, which Node throws
    // when nobody listens.
    ws.onerror = () => {};
    const end = (e: PiCloudError) => {
      ws.onopen = ws.onmessage = ws.onclose = null;
      link.end(e);
      resolve(e);
    };
    const stop = () => {
      try {
        ws.close(1000);
      } catch {
        // not open yet in some implementations: the socket is dropped anyway
      }
      end(new PiCloudError('network', 'closed'));
    };
    signal.addEventListener('abort', stop, { once: true });
    ws.onopen = () => {
      link.open = true;
      h.open(link);
    };
    ws.onmessage = (e: { data: unknown }) => {
      let f: unknown;
      try {
        f = JSON.parse(e.data as string);
      } catch {
        return; // a text frame is always one JSON object; anything else is not ours
      }
      if (f && typeof f === 'object' && !link.settle(f as Frame)) h.frame(f as Frame, link);
    };
    ws.onclose = (e: { code: number; reason?: string }) => {
      signal.removeEventListener('abort', stop);
      end(new PiCloudError('network', `WebSocket closed: ${e.code} ${e.reason ?? ''}`));
    };
  });
}
