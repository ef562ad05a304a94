/**
 * One upstream SSE connection carrying a set of topics, and its state machine:
 *
 *   closed → connecting → open ⇄ reconnecting → … → closed (close(), pause, or a fatal answer)
 *
 * Every transition goes through `set`, which emits `{old, new, code}`. The connection keeps one
 * resume position per topic (from `id:` lines and message seqs) and sends it back as
 * `Last-Event-ID` on every reconnect, so the server's resume invariant (docs/protocol.md) gives
 * every message exactly once; a message at or below the position is dropped as a duplicate.
 *
 * Each (re)start bumps `gen`; an await that comes back to an older generation stops there, which is
 * how close() and re-opens cancel a loop without races.
 */
import { backoffDelay } from './backoff';
import { type ConnectionState, PiCloudError } from './codes';
import { formatPosition, parsePosition } from './position';
import type { FetchLike, RawMessage, ResyncEvent, Sink, StatusEvent } from './types';
import { networkError, readStream } from './transport/sse';

export interface ConnectionConfig {
  /** The stream URL for the current topics. */
  streamUrl: (topics: readonly string[]) => string;
  fetch: FetchLike;
  /** Current token (`fresh`: ask the provider for a new one); rejects if the provider threw. */
  token: (fresh: boolean) => Promise<string | null>;
  /** Whether a 401 can be cured by a new token. */
  refreshable: boolean;
  minMs: number;
  maxMs: number;
  idleMs: number;
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
}

export class Connection implements Source {
  state: ConnectionState = 'closed';
  readonly pos = new Map<string, number>();
  private topics: string[] = [];
  private gen = 0;
  private ctrl: AbortController | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private idle: ReturnType<typeof setTimeout> | undefined;
  /** The server's `retry:`; it replaces minMs as the backoff base. */
  private retryMs: number | undefined;
  /** Why the current stream is ending, when we know better than "it ended": an `event: error` code, or our own abort. */
  private why: string | undefined;
  private fresh = false;
  private paused = false;

  constructor(
    private readonly c: ConnectionConfig,
    private readonly sink: Sink,
  ) {}

  position(topic: string): number | undefined {
    return this.pos.get(topic);
  }

  update(topics: string[], from: Record<string, number> = {}, kick = false): void {
    let reopen = topics.some((t) => !this.topics.includes(t));
    for (const t of this.topics) if (!topics.includes(t)) this.pos.delete(t);
    for (const t of topics) {
      const p = from[t];
      const cur = this.pos.get(t);
      if (p !== undefined && (cur === undefined || p < cur)) {
        this.pos.set(t, p);
        reopen = true;
      }
    }
    // Fewer topics: keep the stream (messages of dropped topics are ignored); the next reconnect asks for fewer.
    this.topics = topics;
    if (!topics.length) this.close();
    else if (!this.paused && (reopen || (kick && this.state === 'closed'))) this.start();
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
      if (this.topics.length) this.start();
    }
  }

  close(): void {
    this.topics = [];
    this.pos.clear();
    this.paused = false;
    this.stop('closed');
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

  private start(): void {
    this.halt();
    this.set('connecting', this.state === 'closed' ? undefined : 'topics_changed');
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
        const headers: Record<string, string> = {};
        if (token) headers.authorization = `Bearer ${token}`;
        const id = formatPosition(this.pos, this.topics);
        if (id) headers['last-event-id'] = id;
        await readStream(this.c.fetch, this.c.streamUrl(this.topics), headers, ctrl.signal, {
          open: () => {
            if (gen !== this.gen) return;
            attempt = 0;
            this.set('open');
            this.arm(gen);
          },
          event: (e) => gen === this.gen && this.onEvent(e.event, e.data, e.id),
          retry: (ms) => {
            this.retryMs = ms;
          },
          data: () => this.arm(gen),
        });
        err = new PiCloudError('network', 'the stream ended');
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
      } else if (status && status < 500 && status !== 408 && status !== 429) {
        return this.fail(err, code);
      }
      this.set('reconnecting', code);
      // (When we know why the stream ended, e.g. `server_shutdown` or `idle`, that code replaces the
      // bare network error of the aborted read.)
      if (report) this.sink.error(new PiCloudError(code, this.why ? `the stream ended: ${code}` : err.message, status, false, err.body, err.cause));
      await new Promise((r) => {
        this.timer = setTimeout(r, delay);
      });
      if (gen !== this.gen) return;
    }
  }

  private fail(err: PiCloudError, code: string): void {
    this.stop(code);
    this.sink.error(new PiCloudError(code, err.message, err.status, true, err.body, err.cause));
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
    if (isMessage) {
      if (!this.topics.includes(topic)) return;
      const seq = typeof d.seq === 'number' ? d.seq : null;
      if (seq !== null) {
        const cur = this.pos.get(topic);
        if (cur !== undefined && seq <= cur) return; // already delivered
        this.pos.set(topic, seq);
      }
      this.absorb(id);
      const m: RawMessage = { topic, seq, message: d.message, publishedAt: d.published_at as string };
      if (seq !== null) m.id = formatPosition(this.pos, this.topics);
      this.sink.message(m);
    } else if (event === 'resync') {
      // The stream goes on from the topic's end, which the server sends as the frame's id
      // (absorbed above); without one, `to` is the best we know. Later seqs are new, even if
      // lower than ours.
      if (id === undefined && this.topics.includes(topic)) this.pos.set(topic, d.to as number);
      this.sink.resync(d as unknown as ResyncEvent);
    } else if (event === 'token_expiring') {
      this.sink.expiring({ expiresIn: typeof d.expires_in === 'number' ? d.expires_in : 0 });
      if (this.c.refreshable) this.abort('token_expiring');
    } else if (event === 'error') {
      this.why = d.code as string;
    }
  }
}
