/**
 * One upstream connection per browser, SSE or WebSocket. Tabs of an origin whose clients have the
 * same configuration key elect a leader with the Web Locks API (the lock is released when the
 * leader's tab closes, and the next waiting tab takes over) and talk over a BroadcastChannel:
 *
 *   want {tab, topics, from?, ws, ents}  a tab's topics, whether it uses the WebSocket, and the
 *                              presence it holds (every tab keeps every tab's topics, so a new leader
 *                              knows the union; a new leader enters the presence again)
 *   bye {tab}                  a tab stopped (no subscriber left, or the page is going away)
 *   hello                      a new leader: tabs announce themselves again
 *   q {tab, n, q} / a {tab, n} a follower's request (publish, presence.get, presence enter/update/leave)
 *                              and the leader's answer: followers use the leader's connection
 *   m / r / s / e / p / x / v  the leader's messages, resyncs, status changes, errors, positions,
 *                              token warnings and presence events
 *
 * Every tab tracks the stream positions it sees, so a new leader resumes where the old one stopped
 * and nothing is lost across a change of leader. A position a subscription asks for (`lastEventId`)
 * lowers its own tab's (as in a Connection), and a tab that does not lead keeps the ones other tabs
 * announce until the stream serves them, so a leader starts from every position asked for, its own
 * and its followers', as an unshared client would. Presence is held by the leader's one connection
 * for every tab (owners are `<tab>:<n>`), so three tabs of one user are one member; a tab that goes
 * drops what it held. Without `navigator.locks` or `BroadcastChannel` (Node, old browsers)
 * `shared()` returns undefined and the client keeps its own connection.
 */
import { type ConnectionState, PiCloudError } from './codes';
import type { Connection, Source } from './connection';
import type { PresenceOp } from './held';
import { parsePosition } from './position';
import type { Frame } from './transport/ws';
import type { PositionEvent, PresenceEvent, RawMessage, ResyncEvent, Sink, StatusEvent, TokenExpiringEvent } from './types';

/** A request: a frame to send (`call`), or a presence operation (`own`). */
type Req = [Frame] | [owner: string, topic: string, op: PresenceOp, data?: unknown];
/** Presence a tab holds: owner, topic, data. */
type Ent = [string, string, unknown];

type Msg =
  | { t: 'want'; tab: string; topics: string[]; from?: Record<string, number> | undefined; ws: boolean; ents: Ent[] }
  | { t: 'bye'; tab: string }
  | { t: 'hello' }
  | { t: 'q'; tab: string; n: number; q: Req }
  | { t: 'a'; tab: string; n: number; ok?: Frame | undefined; err?: [string, string, number | undefined] }
  | { t: 'm'; m: RawMessage }
  | { t: 'r'; r: ResyncEvent }
  | { t: 's'; s: StatusEvent }
  | { t: 'e'; code: string; message: string; status: number | undefined; fatal: boolean; topic: string | undefined }
  | { t: 'p'; p: PositionEvent }
  | { t: 'x'; x: TokenExpiringEvent }
  | { t: 'v'; v: PresenceEvent };

interface Locks {
  request(name: string, opts: { signal: AbortSignal }, cb: () => Promise<void>): Promise<unknown>;
}

const toError = ([code, message, retry]: [string, string, number | undefined]) => {
  const e = new PiCloudError(code, message);
  if (retry !== undefined) e.retryAfterMs = retry;
  return e;
};

export function shared(key: string, tab: string, make: (sink: Sink) => Connection, local: Sink): Source | undefined {
  const g = globalThis as { navigator?: { locks?: Locks }; addEventListener?: typeof addEventListener };
  const locks = g.navigator?.locks;
  if (!locks || typeof BroadcastChannel === 'undefined') return undefined;
  const name = `picloud:${key}`;
  const tabs = new Map<string, string[]>();
  const pos = new Map<string, number>();
  /** Positions other tabs asked for (`want.from`) while this tab did not lead; a relayed message of the topic serves them. */
  const asks = new Map<string, number>();
  /** This tab's presence, announced to every new leader. */
  const ents = new Map<string, [string, unknown]>();
  /** This tab's requests waiting for the leader's answer. */
  const pending = new Map<number, [Req, (a: Frame | undefined) => void, (e: PiCloudError) => void]>();
  let n = 0;
  let mine: string[] = [];
  /** This tab used the WebSocket (presence or client events); `wsSeen`: some tab did, so a new leader starts on it. */
  let ws = false;
  let wsSeen = false;
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
  const announce = (from?: Record<string, number>) =>
    post({ t: 'want', tab, topics: mine, from, ws, ents: [...ents].map(([o, [t, d]]) => [o, t, d]) });
  /** Runs a request on this tab's (leading) connection. */
  const run = (q: Req): Promise<Frame | undefined> => (q.length === 1 ? conn!.call(q[0]) : conn!.own(...q).then(() => undefined));
  /** Requests that may not have reached a leader (it changed): run or re-send them. Not a publish: it may have been sent. */
  const redo = () => {
    for (const [k, [q, res, rej]] of pending) {
      if (q.length === 1 && q[0].type === 'publish') {
        pending.delete(k);
        rej(new PiCloudError('network', 'the leading tab changed; maybe not sent'));
      } else if (conn) {
        pending.delete(k);
        run(q).then(res, rej);
      } else post({ t: 'q', tab, n: k, q });
    }
  };

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
    error(e, topic) {
      local.error(e, topic);
      post({ t: 'e', code: e.code, message: e.message, status: e.status, fatal: e.fatal, topic });
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
    presence(v) {
      local.presence(v);
      post({ t: 'v', v });
    },
  };

  const lead = () => {
    if (!mine.length && !ws) return release?.();
    conn = make(fan);
    if (ws || wsSeen) conn.upgrade();
    for (const [o, [t, d]] of ents) conn.own(o, t, 'enter', d).catch(() => {});
    lower(pos, Object.fromEntries(asks));
    asks.clear();
    conn.update(union(), Object.fromEntries(pos), true);
    redo();
    post({ t: 'hello' });
  };

  const onMessage = ({ data: d }: MessageEvent<Msg>) => {
    if (d.t === 'want') {
      tabs.set(d.tab, d.topics);
      wsSeen ||= d.ws;
      if (!conn) lower(asks, d.from);
    }
    if (d.t === 'bye') tabs.delete(d.tab);
    if (conn) {
      if (d.t === 'want') {
        if (d.ws) conn.upgrade();
        for (const [o, t, data] of d.ents) conn.own(o, t, 'enter', data).catch(() => {});
        conn.update(union(), d.from, true);
        post({ t: 's', s: { old: conn.state, new: conn.state } });
      } else if (d.t === 'bye') {
        conn.drop(`${d.tab}:`);
        conn.update(union(), undefined, true);
      } else if (d.t === 'q') {
        const { tab: to, n: k } = d;
        run(d.q).then(
          (ok) => post({ t: 'a', tab: to, n: k, ok }),
          (e: PiCloudError) => post({ t: 'a', tab: to, n: k, err: [e.code, e.message, e.retryAfterMs] }),
        );
      }
    } else if (d.t === 'hello') {
      announce();
      redo();
    } else if (d.t === 'a') {
      const p = d.tab === tab && pending.get(d.n);
      if (p) {
        pending.delete(d.n);
        if (d.err) p[2](toError(d.err));
        else p[1](d.ok);
      }
    } else if (d.t === 'm') {
      track(d.m);
      local.message(d.m);
    } else if (d.t === 'r') local.resync(d.r);
    else if (d.t === 's') setState(d.s.new, d.s.code);
    else if (d.t === 'e') local.error(new PiCloudError(d.code, d.message, d.status, d.fatal), d.topic);
    else if (d.t === 'p') {
      asks.delete(d.p.topic);
      pos.set(d.p.topic, d.p.position);
      local.position(d.p);
    } else if (d.t === 'x') local.expiring(d.x);
    else if (d.t === 'v') local.presence(d.v);
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
    ents.clear();
    const e = new PiCloudError('closed', 'closed');
    for (const [, , rej] of pending.values()) rej(e);
    pending.clear();
    ws = false;
    setState('closed', 'closed');
  };

  /** A request: on this tab's connection if it leads, else through the leader's. Presence a tab holds is remembered for the next leader. */
  const ask = (q: Req): Promise<Frame | undefined> => {
    if (!ch) join();
    const p = conn
      ? run(q)
      : new Promise<Frame | undefined>((res, rej) => {
          pending.set(++n, [q, res, rej]);
          post({ t: 'q', tab, n, q });
        });
    return p.then((a) => {
      if (q.length > 1) {
        const [o, t, op, d] = q as [string, string, PresenceOp, unknown];
        if (op === 'leave') ents.delete(o);
        else ents.set(o, [t, d]);
      }
      return a;
    });
  };

  // A closing page says goodbye so the others stop streaming its topics; bfcache may bring it back.
  g.addEventListener?.('pagehide', () => post({ t: 'bye', tab }));
  g.addEventListener?.('pageshow', () => (mine.length || ws) && announce());

  return {
    get state() {
      return state;
    },
    position: (t) => (conn ? conn.position(t) : pos.get(t)),
    update(topics, from, kick) {
      mine = topics;
      if (!topics.length && !ws) return leave();
      if (!ch) join();
      // This tab's own ask: its start if it leads (now or later), like a Connection's position.
      lower(pos, from);
      if (conn) conn.update(union(), from, kick);
      else announce(from);
    },
    pause() {},
    resume() {},
    close: () => ch && ((mine = []), (ws = false), leave()),
    upgrade() {
      if (ws) return;
      ws = true;
      if (!ch) join();
      else if (conn) conn.upgrade();
      else announce();
    },
    call: (f) => ask([f]) as Promise<Frame>,
    own: (owner, topic, op, data) => ask([owner, topic, op, data]).then(() => {}),
  };
}
