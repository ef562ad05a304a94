/**
 * One upstream connection carrying a set of topics, over SSE or WebSocket, and its state machine:
 *
 *   closed → connecting → open ⇄ reconnecting → … → closed (close(), pause, or a fatal answer)
 *
 * Every transition goes through `set`, which emits `{old, new, code}`. The connection keeps one
 * resume position per topic (from `id:` lines, `position` fields and message seqs) and sends it
 * back on every reconnect (SSE: `Last-Event-ID`; WebSocket: each `subscribe`'s `position`), so the
 * server's resume invariant (docs/protocol.md) gives every message exactly once; a message at or
 * below the position is dropped as a duplicate. An `auto` connection starts on SSE and moves to
 * WebSocket (`upgrade`) when presence or client events are used: the same positions carry over, so
 * the move loses and repeats nothing.
 *
 * Over WebSocket, topics are added and dropped on the open socket (no reconnect), requests wait
 * for it to open, and after every reconnect the connection subscribes again from its positions and
 * enters again the presence it holds (`Held`), by itself.
 *
 * Each (re)start bumps `gen`; an await that comes back to an older generation stops there, which is
 * how close() and re-opens cancel a loop without races.
 */
import { backoffDelay } from './backoff';
import { type ConnectionState, PiCloudError } from './codes';
import { Held, type PresenceOp } from './held';
import { formatPosition, parsePosition } from './position';
import type { FetchLike, PresenceEvent, RawMessage, ResyncEvent, Sink, StatusEvent, Transport } from './types';
import { httpError, networkError, readStream } from './transport/sse';
import { type Frame, type Link, runLink, type WebSocketConstructor } from './transport/ws';

export interface ConnectionConfig {
  /** The SSE stream URL for the current topics. */
  streamUrl: (topics: readonly string[]) => string;
  /** The WebSocket endpoint (`ws(s)://…/realtime/ws`). */
  wsUrl: string;
  fetch: FetchLike;
  /** The WebSocket constructor, looked up at connect time; undefined where there is none. */
  WebSocket: () => WebSocketConstructor | undefined;
  transport: Transport;
  /** Current token (`fresh`: ask the provider for a new one); rejects if the provider threw. */
  token: (fresh: boolean) => Promise<string | null>;
  /** Whether a 401 can be cured by a new token. */
  refreshable: boolean;
  minMs: number;
  maxMs: number;
  idleMs: number;
  /** WebSocket heartbeat: a `ping` every `pingMs`; no `pong` within `pongMs` is a dead connection. */
  pingMs: number;
  pongMs: number;
}

/** What a client needs from an upstream: a Connection, or a tab-shared one. */
export interface Source {
  readonly state: ConnectionState;
  /** Wanted topics; `from`: positions asked for by a new subscriber; `kick`: restart if closed. */
  update(topics: string[], from?: Record<string, number>, kick?: boolean): void;
  position(topic: string): number | undefined;
  pause(): void;
  resume(): void;
  close(): void;
  /** Presence or client events are used: an `auto` connection moves to WebSocket. */
  upgrade(): void;
  /** A request (`publish`, `presence.get`) over the WebSocket, sent once it is open; settles with its answer. */
  call(f: Frame): Promise<Frame>;
  /** A presence handle's (`owner`'s) enter, update or leave; settles when the server took it. */
  own(owner: string, topic: string, op: PresenceOp, data?: unknown): Promise<void>;
}

const unsupported = () => new PiCloudError('unsupported', 'no WebSocket (transport sse, or pass the WebSocket option)');

export class Connection implements Source {
  state: ConnectionState = 'closed';
  readonly pos = new Map<string, number>();
  readonly held = new Held();
  private topics: string[] = [];
  private gen = 0;
  private ctrl: AbortController | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private idle: ReturnType<typeof setTimeout> | undefined;
  /** The server's `retry:`; it replaces minMs as the backoff base. */
  private retryMs: number | undefined;
  /** Why the current connection is ending, when we know better than "it ended": an `error` frame's code, or our own abort. */
  private why: string | undefined;
  private fresh = false;
  private paused = false;
  /** On WebSocket: `transport: 'ws'`, or `auto` once presence or client events were used (never back). */
  private ws: boolean;
  /** The open WebSocket, if any. */
  private link: Link | undefined;
  /** Topics subscribed (or being subscribed) on `link`. */
  private readonly subs = new Set<string>();
  /** Topics the server refused on a WebSocket (`not_found`, `unauthorized`…): asked again only when a new subscription kicks. */
  private readonly failed = new Set<string>();
  /** Requests waiting for the WebSocket to open. */
  private readonly queue: [Frame, (f: Frame) => void, (e: PiCloudError) => void][] = [];
  /** Presence calls made while no WebSocket was open: settled when the connection has entered again. */
  private later: [string, () => void, (e: PiCloudError) => void][] = [];

  constructor(
    private readonly c: ConnectionConfig,
    private readonly sink: Sink,
  ) {
    this.ws = c.transport === 'ws';
  }

  position(topic: string): number | undefined {
    return this.pos.get(topic);
  }

  update(topics: string[], from: Record<string, number> = {}, kick = false): void {
    let reopen = topics.some((t) => !this.topics.includes(t));
    const lowered: string[] = [];
    for (const t of this.topics) if (!topics.includes(t)) this.pos.delete(t);
    for (const t of topics) {
      const p = from[t];
      const cur = this.pos.get(t);
      if (p !== undefined && (cur === undefined || p < cur)) {
        this.pos.set(t, p);
        lowered.push(t);
        reopen = true;
      }
    }
    // Fewer topics over SSE: keep the stream (messages of dropped topics are ignored); the next reconnect asks for fewer.
    this.topics = topics;
    if (kick) this.failed.clear();
    if (!topics.length && !this.held.m.size) this.close();
    else if (this.paused) return;
    else if (this.state === 'closed' ? reopen || kick : reopen && !this.ws) this.start();
    else if (this.link?.open) this.resubscribe(this.link, lowered);
  }

  pause(): void {
    if (this.state !== 'closed') {
      this.paused = true;
      this.stop('paused');
    }
  }

  resume(): void {
    if (this.paused) {
      this.paused = false;
      if (this.topics.length || this.held.m.size) this.start();
    }
  }

  close(): void {
    this.topics = [];
    this.pos.clear();
    this.held.m.clear();
    this.paused = false;
    this.stop('closed');
    this.reject(new PiCloudError('closed', 'closed'));
  }

  /** Fails every request and presence call still waiting for a connection (it will not come). */
  private reject(e: PiCloudError): void {
    for (const q of this.queue.splice(0)) q[2](e);
    this.settle(undefined, e);
  }

  upgrade(): void {
    if (this.ws || this.c.transport === 'sse' || !this.c.WebSocket()) return;
    this.ws = true;
    if (this.state !== 'closed') this.start('upgrade');
  }

  call(f: Frame): Promise<Frame> {
    this.upgrade();
    if (!this.ws) return Promise.reject(unsupported());
    return new Promise((resolve, reject) => {
      this.queue.push([f, resolve, reject]);
      if (this.link?.open) this.flush(this.link);
      else this.wake();
    });
  }

  own(owner: string, topic: string, op: PresenceOp, data?: unknown): Promise<void> {
    this.upgrade();
    if (!this.ws) return Promise.reject(unsupported());
    let f: Frame | undefined;
    let undo: () => void;
    try {
      [f, undo] = this.held.apply(owner, topic, op, data);
    } catch (e) {
      return Promise.reject(e);
    }
    // Not open (or gone meanwhile): the connection enters what it holds when it opens; a leave is
    // done by the server when a connection goes.
    const after = () => (f?.type === 'presence.leave' ? undefined : new Promise<void>((res, rej) => this.later.push([topic, res, rej])));
    const link = this.link;
    if (!f) return Promise.resolve();
    if (!link?.open) {
      // A leave while not connected: nothing to wait for (a waiting enter of the topic included).
      if (f.type === 'presence.leave') this.settle(topic);
      this.wake();
      return Promise.resolve(after());
    }
    return link.request(f).then(
      () => {},
      (e: PiCloudError) => {
        if (!link.open) return after();
        undo();
        throw e;
      },
    );
  }

  /** Drops the presence of every owner whose id starts with `prefix` (a tab that went). */
  drop(prefix: string): void {
    for (const [topic, held] of this.held.m) for (const o of held.keys()) if (o.startsWith(prefix)) this.own(o, topic, 'leave').catch(() => {});
  }

  /** Starts a connection that is closed (not paused): requests and presence need one even without topics. */
  private wake(): void {
    if (this.state === 'closed' && !this.paused) this.start();
  }

  /** Cancels whatever runs (stream, backoff timer) without a state change. */
  private halt(): void {
    this.gen++;
    this.ctrl?.abort();
    clearTimeout(this.timer);
    clearTimeout(this.idle);
  }

  private stop(code: string): void {
    this.halt();
    this.set('closed', code);
  }

  private start(code = 'topics_changed'): void {
    this.halt();
    this.set('connecting', this.state === 'closed' ? undefined : code);
    void this.loop(this.gen);
  }

  private set(s: ConnectionState, code?: string): void {
    if (s === this.state) return;
    const e: StatusEvent = { old: this.state, new: s };
    if (code) e.code = code;
    this.state = s;
    this.sink.status(e);
  }

  private async loop(gen: number): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const ctrl = (this.ctrl = new AbortController());
      this.why = undefined;
      let err: PiCloudError;
      try {
        let token: string | null;
        try {
          token = await this.c.token(this.fresh);
        } catch (e) {
          throw new PiCloudError('token_provider', String(e), undefined, false, undefined, e);
        }
        this.fresh = false;
        if (gen !== this.gen) return;
        const ready = () => {
          if (gen !== this.gen) return;
          attempt = 0;
          this.set('open');
        };
        err = await (this.ws ? this.runWs(gen, token, ctrl.signal, ready) : this.runSse(gen, token, ctrl.signal, ready));
      } catch (e) {
        err = e instanceof PiCloudError ? e : networkError(e);
      }
      clearTimeout(this.idle);
      if (gen !== this.gen) return;
      const code = this.why ?? err.code;
      const status = err.status;
      let delay = backoffDelay(attempt, this.retryMs ?? this.c.minMs, this.c.maxMs);
      // Every failed attempt is reported (non-fatal) while the loop retries: a retry that is
      // never cured (a name that does not resolve, a refused port) must not be silent.
      let report = true;
      if (
        code === 'unauthorized' ||
        code === 'token_expired' ||
        code === 'token_revoked' ||
        code === 'token_expiring' ||
        status === 401
      ) {
        if (!this.c.refreshable) return this.fail(err, code);
        this.fresh = true;
        // A refresh is the cure: try it at once, and report only when a fresh token failed too.
        if (!attempt) delay = 0;
        report = attempt > 0;
      } else if ((status && status < 500 && status !== 408 && status !== 429) || code === 'unsupported') {
        return this.fail(err, code);
      }
      this.set('reconnecting', code);
      // (When we know why the connection ended, e.g. `server_shutdown` or `idle`, that code replaces
      // the bare network error of the aborted read.)
      if (report) this.sink.error(new PiCloudError(code, this.why ? `the stream ended: ${code}` : err.message, status, false, err.body, err.cause));
      await new Promise((r) => {
        this.timer = setTimeout(r, delay);
      });
      if (gen !== this.gen) return;
    }
  }

  private async runSse(gen: number, token: string | null, signal: AbortSignal, ready: () => void): Promise<PiCloudError> {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    const id = formatPosition(this.pos, this.topics);
    if (id) headers['last-event-id'] = id;
    await readStream(this.c.fetch, this.c.streamUrl(this.topics), headers, signal, {
      open: () => {
        ready();
        this.arm(gen);
      },
      event: (e) => gen === this.gen && this.onEvent(e.event, e.data, e.id),
      retry: (ms) => {
        this.retryMs = ms;
      },
      data: () => this.arm(gen),
    });
    return new PiCloudError('network', 'the stream ended');
  }

  private async runWs(gen: number, token: string | null, signal: AbortSignal, ready: () => void): Promise<PiCloudError> {
    const Ctor = this.c.WebSocket();
    if (!Ctor) throw unsupported();
    let mine: Link | undefined;
    let beat: ReturnType<typeof setInterval> | undefined;
    const err = await runLink(Ctor, this.c.wsUrl + (token ? `?token=${encodeURIComponent(token)}` : ''), signal, {
      open: (link) => {
        mine = link;
        if (gen !== this.gen) return;
        // Browsers answer the server's pings without showing them: liveness needs our own.
        beat = setInterval(() => {
          const t = setTimeout(() => gen === this.gen && this.abort('idle'), this.c.pongMs);
          link.request({ type: 'ping' }).finally(() => clearTimeout(t)).catch(() => {});
        }, this.c.pingMs);
        this.opened(link, ready);
      },
      frame: (f, link) => gen === this.gen && this.frame(f, link),
    });
    clearInterval(beat);
    if (this.link === mine) this.link = undefined;
    // A refused upgrade is a bare close in browsers (no status): the SSE endpoint gives the same
    // answers (401, 404, 429…) for the same topics and token, so ask it what the refusal was.
    if (!mine && gen === this.gen && this.topics.length) {
      try {
        const res = await this.c.fetch(this.c.streamUrl(this.topics), { headers: token ? { authorization: `Bearer ${token}` } : {}, signal });
        if (!res.ok) return await httpError(res);
        res.body?.cancel().catch(() => {});
      } catch {
        // unreachable too: the close says enough
      }
    }
    return err;
  }

  /** A WebSocket opened: subscribe from the positions, enter the presence held, send what waited. `open` once every topic is answered. */
  private opened(link: Link, ready: () => void): void {
    this.link = link;
    this.subs.clear();
    const subs = this.topics.filter((t) => !this.failed.has(t)).map((t) => this.sub(link, t));
    for (const topic of this.held.m.keys()) {
      const enter = (): unknown =>
        link.request({ type: 'presence.enter', topic, data: this.held.data(topic) }).then(
          () => this.settle(topic),
          (e: PiCloudError) => {
            if (!link.open) return;
            if (e.code === 'rate_limited') return setTimeout(enter, e.retryAfterMs ?? 1000);
            this.held.m.delete(topic);
            this.settle(topic, e);
            this.sink.error(e, topic);
          },
        );
      enter();
    }
    this.flush(link);
    void Promise.all(subs).then(() => link.open && ready());
  }

  /** Settles the presence calls of `topic` (all without one) that waited for the connection to enter. */
  private settle(topic?: string, e?: PiCloudError): void {
    this.later = this.later.filter(([t, res, rej]) => {
      if (topic !== undefined && t !== topic) return true;
      if (e) rej(e);
      else res();
      return false;
    });
  }

  private flush(link: Link): void {
    for (const [f, res, rej] of this.queue.splice(0)) link.request(f).then(res, rej);
  }

  private sub(link: Link, topic: string, again = false): Promise<void> {
    this.subs.add(topic);
    const p = this.pos.get(topic);
    return link.request(p === undefined ? { type: 'subscribe', topic } : { type: 'subscribe', topic, position: String(p) }).then(
      (a) => {
        if (this.subs.has(topic)) this.at(topic, a.position, true);
      },
      async (e: PiCloudError) => {
        if (!link.open || e.code === 'already_subscribed') return;
        this.subs.delete(topic);
        if (e.code === 'unauthorized' && this.c.refreshable && !again && (await this.refresh(link))) return this.sub(link, topic, true);
        // Only this topic stops (the connection serves the others): fatal for its subscriptions.
        this.failed.add(topic);
        this.sink.error(new PiCloudError(e.code, e.message, undefined, true), topic);
      },
    );
  }

  /** Topics changed on an open WebSocket: unsubscribe the dropped (and the lowered), subscribe the new (and the lowered, from their new position). */
  private resubscribe(link: Link, lowered: string[]): void {
    for (const t of this.subs)
      if (!this.topics.includes(t) || lowered.includes(t)) {
        this.subs.delete(t);
        link.request({ type: 'unsubscribe', topic: t }).catch(() => {});
      }
    for (const t of this.topics) if (!this.subs.has(t) && !this.failed.has(t)) void this.sub(link, t);
  }

  /** A fresh token for the open WebSocket (`refresh`), instead of reconnecting; false if that failed. */
  private async refresh(link: Link): Promise<boolean> {
    try {
      const token = await this.c.token(true);
      if (token) await link.request({ type: 'refresh', token });
      return true;
    } catch (e) {
      if (link.open) this.sink.error(e instanceof PiCloudError ? e : new PiCloudError('token_provider', String(e), undefined, false, undefined, e));
      return false;
    }
  }

  private fail(err: PiCloudError, code: string): void {
    this.stop(code);
    const e = new PiCloudError(code, err.message, err.status, true, err.body, err.cause);
    this.sink.error(e);
    this.reject(e);
  }

  /** Reconnect when the server went silent longer than its heartbeat allows (a dead TCP path). */
  private arm(gen: number): void {
    clearTimeout(this.idle);
    if (this.c.idleMs > 0)
      this.idle = setTimeout(() => {
        if (gen === this.gen) this.abort('idle');
      }, this.c.idleMs);
  }

  private abort(why: string): void {
    this.why = why;
    this.ctrl?.abort();
  }

  /** Takes every topic's position from an `id:` line (bare seq for one topic, or `name=seq` pairs). */
  private absorb(id: string | undefined): Record<string, number> {
    const at = parsePosition(id, this.topics);
    for (const t in at) this.pos.set(t, at[t]!);
    return at;
  }

  /** Takes one topic's position from a WebSocket `position` (the topic's seq, as a string); `announce`: tell the subscribers. */
  private at(topic: string, position: unknown, announce?: boolean): void {
    const p = parsePosition(position as string | undefined, [topic])[topic];
    if (p === undefined || !this.topics.includes(topic)) return;
    this.pos.set(topic, p);
    if (announce) this.sink.position({ topic, position: p });
  }

  /** A message of either transport: dropped at or below the position, else it moves the position (`at`: positions the frame carries). */
  private deliver(d: Record<string, unknown>, at: Record<string, number>): void {
    const topic = d.topic as string;
    if (!this.topics.includes(topic)) return;
    const seq = typeof d.seq === 'number' ? d.seq : null;
    if (seq !== null) {
      const cur = this.pos.get(topic);
      if (cur !== undefined && seq <= cur) return; // already delivered
      this.pos.set(topic, seq);
    }
    for (const t in at) this.pos.set(t, at[t]!);
    const m: RawMessage = { topic, seq, message: d.message, publishedAt: d.published_at as string };
    if (seq !== null) m.id = formatPosition(this.pos, this.topics);
    this.sink.message(m);
  }

  private presence(d: Record<string, unknown>): void {
    if (this.topics.includes(d.topic as string)) this.sink.presence({ topic: d.topic, event: d.event, member: d.member } as PresenceEvent);
  }

  private expiring(d: Record<string, unknown>, refresh: () => void): void {
    this.sink.expiring({ expiresIn: typeof d.expires_in === 'number' ? d.expires_in : 0 });
    if (this.c.refreshable) refresh();
  }

  private frame(f: Frame, link: Link): void {
    const topic = f.topic as string;
    if (f.type === 'message') this.deliver(f, parsePosition(f.position as string | undefined, [topic]));
    else if (f.type === 'presence') this.presence(f);
    else if (f.type === 'resync') {
      if (!this.topics.includes(topic)) return;
      this.at(topic, f.position ?? f.to);
      this.sink.resync({ topic, from: f.from, to: f.to, reason: f.reason } as ResyncEvent);
    } else if (f.type === 'unsubscribed') {
      if (!this.subs.delete(topic)) return;
      this.sink.error(new PiCloudError(f.code as string, `${topic}: ${f.code as string}`), topic);
      // As over SSE: ask again after a backoff (if still wanted); a topic that is gone for good then answers `not_found`.
      setTimeout(() => link === this.link && this.resubscribe(link, []), backoffDelay(1, this.retryMs ?? this.c.minMs, this.c.maxMs));
    } else if (f.type === 'token_expiring') this.expiring(f, () => void this.refresh(link));
    else if (f.type === 'error') this.why = f.code as string;
  }

  private onEvent(event: string | undefined, data: string, id: string | undefined): void {
    const isMessage = event === 'message' || event === undefined;
    // Any other event carrying an id (e.g. a server that announces its starting position) moves
    // the position too, so a reconnect before the first message still resumes.
    const at = isMessage ? {} : this.absorb(id);
    if (event === 'position') {
      for (const topic in at) this.sink.position({ topic, position: at[topic]! });
      return;
    }
    let d: Record<string, unknown>;
    try {
      d = JSON.parse(data) as Record<string, unknown>;
    } catch {
      return; // `data:` is always compact JSON; anything else is not ours
    }
    if (d === null || typeof d !== 'object') return; // e.g. `event: position` carries `null`
    const topic = d.topic as string;
    if (isMessage) this.deliver(d, parsePosition(id, this.topics));
    else if (event === 'presence') this.presence(d);
    else if (event === 'resync') {
      // The stream goes on from the topic's end, which the server sends as the frame's id
      // (absorbed above); without one, `to` is the best we know. Later seqs are new, even if
      // lower than ours.
      if (id === undefined && this.topics.includes(topic)) this.pos.set(topic, d.to as number);
      this.sink.resync(d as unknown as ResyncEvent);
    } else if (event === 'token_expiring') this.expiring(d, () => this.abort('token_expiring'));
    else if (event === 'error') this.why = d.code as string;
  }
}
