/**
 * One upstream stream per browser. Tabs of an origin whose clients have the same configuration
 * key elect a leader with the Web Locks API (the lock is released when the leader's tab closes, and
 * the next waiting tab takes over) and talk over a BroadcastChannel:
 *
 *   want {tab, topics, from?}  a tab's topics (every tab keeps every tab's, so a new leader knows the union)
 *   bye {tab}                  a tab stopped (no subscriber left, or the page is going away)
 *   hello                      a new leader: tabs announce their topics again
 *   m / r / s / e / p / x      the leader's messages, resyncs, status changes, errors, positions and token warnings
 *
 * Every tab tracks the stream positions it sees, so a new leader resumes where the old one stopped
 * and nothing is lost across a change of leader. A position a subscription asks for (`lastEventId`)
 * lowers its own tab's (as in a Connection), and a tab that does not lead keeps the ones other tabs
 * announce until the stream serves them, so a leader starts from every position asked for, its own
 * and its followers', as an unshared client would. Without `navigator.locks` or `BroadcastChannel`
 * (Node, old browsers) `shared()` returns undefined and the client keeps its own connection.
 */
import { type ConnectionState, PiCloudError } from './codes';
import type { Connection, Source } from './connection';
import { parsePosition } from './position';
import type { PositionEvent, RawMessage, ResyncEvent, Sink, StatusEvent, TokenExpiringEvent } from './types';

type Msg =
  | { t: 'want'; tab: string; topics: string[]; from?: Record<string, number> | undefined }
  | { t: 'bye'; tab: string }
  | { t: 'hello' }
  | { t: 'm'; m: RawMessage }
  | { t: 'r'; r: ResyncEvent }
  | { t: 's'; s: StatusEvent }
  | { t: 'e'; code: string; message: string; status: number | undefined; fatal: boolean }
  | { t: 'p'; p: PositionEvent }
  | { t: 'x'; x: TokenExpiringEvent };

interface Locks {
  request(name: string, opts: { signal: AbortSignal }, cb: () => Promise<void>): Promise<unknown>;
}

export function shared(key: string, make: (sink: Sink) => Connection, local: Sink): Source | undefined {
  const g = globalThis as { navigator?: { locks?: Locks }; addEventListener?: typeof addEventListener };
  const locks = g.navigator?.locks;
  if (!locks || typeof BroadcastChannel === 'undefined') return undefined;
  const name = `picloud:${key}`;
  const tab = Math.random().toString(36).slice(2);
  const tabs = new Map<string, string[]>();
  const pos = new Map<string, number>();
  /** Positions other tabs asked for (`want.from`) while this tab did not lead; a relayed message of the topic serves them. */
  const asks = new Map<string, number>();
  let mine: string[] = [];
  let ch: BroadcastChannel | undefined;
  let conn: Connection | undefined;
  let release: (() => void) | undefined;
  let abort: AbortController | undefined;
  let state: ConnectionState = 'closed';

  const post = (m: Msg) => ch?.postMessage(m);
  /** Lowers `m`'s positions to `from`'s (an earlier position means a replay from there). */
  const lower = (m: Map<string, number>, from: Record<string, number> = {}) => {
    for (const t in from) if (!(m.get(t)! <= from[t]!)) m.set(t, from[t]!);
  };
  const union = () => [...new Set([...mine, ...[...tabs.values()].flat()])];
  const setState = (next: ConnectionState, code?: string) => {
    if (next === state) return;
    const e: StatusEvent = { old: state, new: next };
    if (code) e.code = code;
    state = next;
    local.status(e);
  };
  const track = (m: RawMessage) => {
    asks.delete(m.topic);
    if (m.seq !== null) pos.set(m.topic, m.seq);
    const at = parsePosition(m.id, [...union(), m.topic]);
    for (const t in at) pos.set(t, at[t]!);
  };
  const announce = (from?: Record<string, number>) => post({ t: 'want', tab, topics: mine, from });

  // The leader's connection reports here: to this tab and to the others.
  const fan: Sink = {
    message(m) {
      track(m);
      local.message(m);
      post({ t: 'm', m });
    },
    resync(r) {
      local.resync(r);
      post({ t: 'r', r });
    },
    status(s) {
      if (!conn) return; // stepping down: the next leader reports
      setState(s.new, s.code);
      post({ t: 's', s });
    },
    error(e) {
      local.error(e);
      post({ t: 'e', code: e.code, message: e.message, status: e.status, fatal: e.fatal });
    },
    position(p) {
      pos.set(p.topic, p.position);
      local.position(p);
      post({ t: 'p', p });
    },
    expiring(x) {
      local.expiring(x);
      post({ t: 'x', x });
    },
  };

  const lead = () => {
    if (!mine.length) return release?.();
    conn = make(fan);
    lower(pos, Object.fromEntries(asks));
    asks.clear();
    conn.update(union(), Object.fromEntries(pos), true);
    post({ t: 'hello' });
  };

  const onMessage = ({ data: d }: MessageEvent<Msg>) => {
    if (d.t === 'want') {
      tabs.set(d.tab, d.topics);
      if (!conn) lower(asks, d.from);
    }
    if (d.t === 'bye') tabs.delete(d.tab);
    if (conn) {
      if (d.t === 'want' || d.t === 'bye') conn.update(union(), d.t === 'want' ? d.from : undefined, true);
      if (d.t === 'want') post({ t: 's', s: { old: conn.state, new: conn.state } });
    } else if (d.t === 'hello') announce();
    else if (d.t === 'm') {
      track(d.m);
      local.message(d.m);
    } else if (d.t === 'r') local.resync(d.r);
    else if (d.t === 's') setState(d.s.new, d.s.code);
    else if (d.t === 'e') local.error(new PiCloudError(d.code, d.message, d.status, d.fatal));
    else if (d.t === 'p') {
      asks.delete(d.p.topic);
      pos.set(d.p.topic, d.p.position);
      local.position(d.p);
    } else if (d.t === 'x') local.expiring(d.x);
  };

  const join = () => {
    ch = new BroadcastChannel(name);
    ch.onmessage = onMessage;
    abort = new AbortController();
    locks
      .request(name, { signal: abort.signal }, () => new Promise<void>((r) => ((release = r), lead())))
      .catch(() => {});
    setState('connecting');
  };

  const leave = () => {
    post({ t: 'bye', tab });
    const c = conn;
    conn = undefined;
    c?.close();
    release?.();
    abort?.abort();
    ch?.close();
    ch = release = abort = undefined;
    tabs.clear();
    pos.clear();
    asks.clear();
    setState('closed', 'closed');
  };

  // A closing page says goodbye so the others stop streaming its topics; bfcache may bring it back.
  g.addEventListener?.('pagehide', () => post({ t: 'bye', tab }));
  g.addEventListener?.('pageshow', () => mine.length && announce());

  return {
    get state() {
      return state;
    },
    position: (t) => (conn ? conn.position(t) : pos.get(t)),
    update(topics, from, kick) {
      mine = topics;
      if (!topics.length) return leave();
      if (!ch) join();
      // This tab's own ask: its start if it leads (now or later), like a Connection's position.
      lower(pos, from);
      if (conn) conn.update(union(), from, kick);
      else announce(from);
    },
    pause() {},
    resume() {},
    close: () => ch && ((mine = []), leave()),
  };
}
