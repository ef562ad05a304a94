/**
 * `createClient`: the subscription registry in front of one upstream (a Connection, or a tab-shared
 * one). Every subscription is a listener with its topics and its own per-topic position; the
 * upstream carries the union of all listeners' topics, and each message is handed to the
 * listeners of its topic whose position it passes (so a replay asked for by one listener is not
 * seen twice by another).
 */
import { type ConnectionState, PiCloudError } from './codes';
import { Connection, type Source } from './connection';
import { endpoint } from './endpoint';
import { parsePosition } from './position';
import { presence } from './presence';
import { safe } from './safe';
import { shared } from './shared';
import type { WebSocketConstructor } from './transport/ws';
import type { ClientOptions, FetchLike, PiCloudClient, RawMessage, Sink, SubscribeOptions } from './types';

interface Listener {
  topics: string[];
  seen: Map<string, number>;
  cb: (m: RawMessage) => void;
  o: SubscribeOptions<unknown>;
}


export function createClient(options: ClientOptions): PiCloudClient {
  const o = options;
  const url = o.url.replace(/\/+$/, '');
  const fetchFn: FetchLike = o.fetch ?? ((i, init) => fetch(i, init));
  const refreshable = !!o.getToken;
  let cached: Promise<string | null> | undefined;
  const token = (fresh: boolean): Promise<string | null> => {
    if (!o.getToken) return Promise.resolve(o.token ?? null);
    if (fresh || !cached) {
      const p = (cached = Promise.resolve().then(o.getToken).then((t) => t ?? null));
      p.catch(() => cached === p && (cached = undefined));
    }
    return cached;
  };

  const listeners = new Set<Listener>();
  const each = (f: (l: Listener) => void, topic?: string) => {
    for (const l of listeners) if (topic === undefined || l.topics.includes(topic)) safe(() => f(l));
  };
  const sink: Sink = {
    message: (m) =>
      each((l) => {
        if (m.seq !== null) {
          const s = l.seen.get(m.topic);
          if (s !== undefined && m.seq <= s) return;
          l.seen.set(m.topic, m.seq);
        }
        let message = m.message;
        if (l.o.validate) {
          try {
            message = l.o.validate.parse(message);
          } catch (e) {
            l.o.onError?.(new PiCloudError('invalid_message', String(e)));
            return;
          }
        }
        l.cb({ ...m, message });
      }, m.topic),
    resync: (e) =>
      each((l) => {
        l.seen.set(e.topic, e.to);
        l.o.onResync?.(e);
      }, e.topic),
    status: (e) => each((l) => l.o.onStatus?.(e)),
    error: (e, topic) => each((l) => l.o.onError?.(e), topic),
    // A subscription without a position starts where its stream started: a replay another one
    // (or another tab) asks for later is not shown to it.
    position: (e) =>
      each((l) => {
        if (!l.seen.has(e.topic)) l.seen.set(e.topic, e.position);
        l.o.onPosition?.(e);
      }, e.topic),
    expiring: (e) => each((l) => l.o.onTokenExpiring?.(e)),
    presence: (e) => each((l) => l.o.onPresence?.(e), e.topic),
  };

  const make = (s: Sink) =>
    new Connection(
      {
        streamUrl: o.streamUrl ?? ((topics) => `${url}/realtime?${topics.map((t) => `topic=${encodeURIComponent(t)}`).join('&')}`),
        wsUrl: `${url.replace(/^http/, 'ws')}/realtime/ws`,
        fetch: fetchFn,
        WebSocket: () => o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket,
        transport: o.transport ?? 'auto',
        pingMs: 25000,
        pongMs: 10000,
        token,
        refreshable,
        minMs: o.backoff?.minMs ?? 500,
        maxMs: o.backoff?.maxMs ?? 30000,
        idleMs: o.idleTimeoutMs ?? 45000,
      },
      s,
    );
  let h = 0;
  for (const c of `${url}\n${o.token ?? ''}\n${o.shareKey ?? ''}\n${o.transport ?? ''}`) h = (h * 31 + c.charCodeAt(0)) | 0;
  // Pausing a shared stream would starve the visible tabs it serves: pauseWhenHidden means one per tab.
  const share = o.shareAcrossTabs !== false && !o.pauseWhenHidden;
  /** This client's id: its presence handles are `<tab>:<n>` (a tab's own, also to a leader in another tab). */
  const tab = Math.random().toString(36).slice(2);
  let handles = 0;
  const source: Source = (share && shared(h.toString(36), tab, make, sink)) || make(sink);

  const sync = (from?: Record<string, number>, kick?: boolean) =>
    source.update([...new Set([...listeners].flatMap((l) => l.topics))], from, kick);

  // Page visibility: close while hidden (after a grace period), resume from the same position.
  const doc = (globalThis as { document?: Document }).document;
  if (o.pauseWhenHidden && doc) {
    let t: ReturnType<typeof setTimeout> | undefined;
    doc.addEventListener('visibilitychange', () => {
      clearTimeout(t);
      if (!doc.hidden) source.resume();
      else t = setTimeout(() => source.pause(), o.pauseWhenHidden === true ? 5000 : +o.pauseWhenHidden!);
    });
  }

  // Closing is deferred by a tick so an unsubscribe/subscribe pair (React StrictMode) keeps the stream.
  let closing: ReturnType<typeof setTimeout> | undefined;
  const client: PiCloudClient = {
    url,
    get state(): ConnectionState {
      return source.state;
    },
    subscribe(topics, onMessage, so = {}) {
      const list = [...new Set(typeof topics === 'string' ? [topics] : topics)];
      const from = parsePosition(so.lastEventId, list);
      const l: Listener = { topics: list, seen: new Map(), cb: onMessage as (m: RawMessage) => void, o: so as SubscribeOptions<unknown> };
      for (const t of list) {
        const p = from[t] ?? source.position(t);
        if (p !== undefined) l.seen.set(t, p);
      }
      listeners.add(l);
      clearTimeout(closing);
      sync(from, true);
      return () => {
        if (!listeners.delete(l)) return;
        if (listeners.size) sync();
        else closing = setTimeout(() => listeners.size || source.close());
      };
    },
    endpoint: (path) => endpoint(url, path, fetchFn, token, refreshable),
    publish: (topic, data) => source.call({ type: 'publish', topic, data }).then(() => {}),
    presence(topic) {
      // Before subscribing: an `auto` client that is not connected yet opens on WebSocket at once.
      source.upgrade();
      return presence(topic, `${tab}:${++handles}`, source, (t, so) => client.subscribe(t, () => {}, so));
    },
    close() {
      listeners.clear();
      source.close();
    },
  };
  return client;
}
