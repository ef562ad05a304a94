'use strict';

var eventsourceParser = require('eventsource-parser');

// src/codes.ts
var ErrorCode = {
  // Answers before the stream (HTTP status in brackets).
  InvalidTopic: "invalid_topic",
  // 400
  TooManyTopics: "too_many_topics",
  // 400
  InvalidLastEventId: "invalid_last_event_id",
  // 400
  UnknownHost: "unknown_host",
  // 404
  NotFound: "not_found",
  // 404: missing or not external_subscribable
  Unauthorized: "unauthorized",
  // 401
  // Final `event: error` codes (Unavailable also answers 503 before the stream).
  TokenExpired: "token_expired",
  TopicClosed: "topic_closed",
  ServerShutdown: "server_shutdown",
  SlowConsumer: "slow_consumer",
  Unavailable: "unavailable",
  // The client's own.
  Network: "network",
  // fetch failed or the stream broke
  Idle: "idle",
  // no byte (not even a keepalive) for `idleTimeoutMs`
  Http: "http",
  // an unexpected answer (no PiCloud error body)
  InvalidMessage: "invalid_message",
  // `validate` rejected a message
  TokenProvider: "token_provider",
  // getToken() threw
  TokenExpiring: "token_expiring",
  // reconnecting with a fresh token before expiry
  TopicsChanged: "topics_changed",
  // re-opened to add topics
  Paused: "paused",
  // closed while the page is hidden
  Closed: "closed"
  // closed by the application
};
var PiCloudError = class extends Error {
  constructor(code, message, status, fatal = false, body) {
    super(message);
    this.name = "PiCloudError";
    this.code = code;
    this.status = status;
    this.fatal = fatal;
    this.body = body;
  }
};

// src/backoff.ts
function backoffDelay(attempt, base, max, random = Math.random) {
  return Math.floor(random() * Math.min(max, base * 2 ** Math.min(attempt, 31)));
}

// src/position.ts
function parsePosition(id, topics) {
  const out = {};
  if (!id) return out;
  if (/^\d+$/.test(id)) {
    if (topics.length === 1) out[topics[0]] = +id;
    return out;
  }
  for (const pair of id.split(",")) {
    const i = pair.lastIndexOf("=");
    const seq = pair.slice(i + 1);
    if (i > 0 && /^\d+$/.test(seq) && topics.includes(pair.slice(0, i))) out[pair.slice(0, i)] = +seq;
  }
  return out;
}
function formatPosition(pos, topics) {
  return [...topics].filter((t) => pos.has(t)).sort().map((t) => `${t}=${pos.get(t)}`).join(",");
}
async function readStream(fetchFn, url, headers, signal, h) {
  let res;
  try {
    res = await fetchFn(url, { headers: { accept: "text/event-stream", ...headers }, signal, cache: "no-store" });
  } catch (e) {
    throw new PiCloudError("network", String(e));
  }
  if (!res.ok || !res.body || !/^text\/event-stream/.test(res.headers.get("content-type") ?? "")) {
    throw await httpError(res);
  }
  h.open();
  const parser = eventsourceParser.createParser({ onEvent: h.event, onRetry: h.retry });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (; ; ) {
      const { done, value } = await reader.read();
      if (done) break;
      h.data();
      parser.feed(decoder.decode(value, { stream: true }));
    }
  } catch (e) {
    throw new PiCloudError("network", String(e));
  } finally {
    reader.cancel().catch(() => {
    });
  }
}
async function httpError(res) {
  let body;
  try {
    const text = await res.text();
    body = text ? JSON.parse(text) : void 0;
  } catch {
  }
  const err = body?.error;
  return new PiCloudError(
    typeof err?.code === "string" ? err.code : "http",
    typeof err?.message === "string" ? err.message : `HTTP ${res.status}`,
    res.status,
    false,
    body
  );
}

// src/connection.ts
var Connection = class {
  constructor(c, sink) {
    this.c = c;
    this.sink = sink;
    this.state = "closed";
    this.pos = /* @__PURE__ */ new Map();
    this.topics = [];
    this.gen = 0;
    this.fresh = false;
    this.paused = false;
  }
  position(topic) {
    return this.pos.get(topic);
  }
  update(topics, from = {}, kick = false) {
    let reopen = topics.some((t) => !this.topics.includes(t));
    for (const t of this.topics) if (!topics.includes(t)) this.pos.delete(t);
    for (const t of topics) {
      const p = from[t];
      const cur = this.pos.get(t);
      if (p !== void 0 && (cur === void 0 || p < cur)) {
        this.pos.set(t, p);
        reopen = true;
      }
    }
    this.topics = topics;
    if (!topics.length) this.close();
    else if (!this.paused && (reopen || kick && this.state === "closed")) this.start();
  }
  pause() {
    if (this.state !== "closed") {
      this.paused = true;
      this.stop("paused");
    }
  }
  resume() {
    if (this.paused) {
      this.paused = false;
      if (this.topics.length) this.start();
    }
  }
  close() {
    this.topics = [];
    this.pos.clear();
    this.paused = false;
    this.stop("closed");
  }
  /** Cancels whatever runs (stream, backoff timer) without a state change. */
  halt() {
    this.gen++;
    this.ctrl?.abort();
    clearTimeout(this.timer);
    clearTimeout(this.idle);
  }
  stop(code) {
    this.halt();
    this.set("closed", code);
  }
  start() {
    this.halt();
    this.set("connecting", this.state === "closed" ? void 0 : "topics_changed");
    void this.loop(this.gen);
  }
  set(s, code) {
    if (s === this.state) return;
    const e = { old: this.state, new: s };
    if (code) e.code = code;
    this.state = s;
    this.sink.status(e);
  }
  async loop(gen) {
    for (let attempt = 0; ; attempt++) {
      const ctrl = this.ctrl = new AbortController();
      this.why = void 0;
      let err;
      try {
        let token;
        try {
          token = await this.c.token(this.fresh);
        } catch (e) {
          throw new PiCloudError("token_provider", String(e));
        }
        this.fresh = false;
        if (gen !== this.gen) return;
        const headers = {};
        if (token) headers.authorization = `Bearer ${token}`;
        const id = formatPosition(this.pos, this.topics);
        if (id) headers["last-event-id"] = id;
        const url = `${this.c.url}/realtime?${this.topics.map((t) => `topic=${encodeURIComponent(t)}`).join("&")}`;
        await readStream(this.c.fetch, url, headers, ctrl.signal, {
          open: () => {
            if (gen !== this.gen) return;
            attempt = 0;
            this.set("open");
            this.arm(gen);
          },
          event: (e) => gen === this.gen && this.onEvent(e.event, e.data, e.id),
          retry: (ms) => {
            this.retryMs = ms;
          },
          data: () => this.arm(gen)
        });
        err = new PiCloudError("network", "the stream ended");
      } catch (e) {
        err = e instanceof PiCloudError ? e : new PiCloudError("network", String(e));
      }
      clearTimeout(this.idle);
      if (gen !== this.gen) return;
      const code = this.why ?? err.code;
      const status = err.status;
      let delay = backoffDelay(attempt, this.retryMs ?? this.c.minMs, this.c.maxMs);
      if (code === "unauthorized" || code === "token_expired" || code === "token_expiring" || status === 401) {
        if (!this.c.refreshable) return this.fail(err, code);
        this.fresh = true;
        if (!attempt) delay = 0;
      } else if (code === "token_provider") {
        this.sink.error(err);
      } else if (status && status < 500 && status !== 408 && status !== 429) {
        return this.fail(err, code);
      }
      this.set("reconnecting", code);
      await new Promise((r) => {
        this.timer = setTimeout(r, delay);
      });
      if (gen !== this.gen) return;
    }
  }
  fail(err, code) {
    this.stop(code);
    this.sink.error(new PiCloudError(code, err.message, err.status, true, err.body));
  }
  /** Reconnect when the server went silent longer than its heartbeat allows (a dead TCP path). */
  arm(gen) {
    clearTimeout(this.idle);
    if (this.c.idleMs > 0)
      this.idle = setTimeout(() => {
        if (gen === this.gen) this.abort("idle");
      }, this.c.idleMs);
  }
  abort(why) {
    this.why = why;
    this.ctrl?.abort();
  }
  onEvent(event, data, id) {
    let d;
    try {
      d = JSON.parse(data);
    } catch {
      return;
    }
    const topic = d.topic;
    if (event === "message" || event === void 0) {
      if (!this.topics.includes(topic)) return;
      const seq = typeof d.seq === "number" ? d.seq : null;
      if (seq !== null) {
        const cur = this.pos.get(topic);
        if (cur !== void 0 && seq <= cur) return;
        this.pos.set(topic, seq);
      }
      const at = parsePosition(id, this.topics);
      for (const t in at) if (this.topics.includes(t)) this.pos.set(t, at[t]);
      const m = { topic, seq, message: d.message, publishedAt: d.published_at };
      if (seq !== null) m.id = formatPosition(this.pos, this.topics);
      this.sink.message(m);
    } else if (event === "resync") {
      if (this.topics.includes(topic)) this.pos.set(topic, d.to);
      this.sink.resync(d);
    } else if (event === "token_expiring") {
      if (this.c.refreshable) this.abort("token_expiring");
    } else if (event === "error") {
      this.why = d.code;
    }
  }
};

// src/endpoint.ts
function endpoint(base, path, fetchFn, token, refreshable) {
  const call = async (method, o = {}) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(o.query ?? {}))
      for (const x of Array.isArray(v) ? v : v == null ? [] : [v]) q.append(k, String(x));
    const qs = q.toString();
    const url = base + (path.startsWith("/") ? "" : "/") + path + (qs ? (path.includes("?") ? "&" : "?") + qs : "");
    for (let retry = 0; ; retry++) {
      const headers = { accept: "application/json", ...o.headers };
      const t = await token(retry > 0);
      if (t) headers.authorization = `Bearer ${t}`;
      const init = { method, headers };
      if (o.signal) init.signal = o.signal;
      if (o.body !== void 0) {
        headers["content-type"] = "application/json";
        init.body = JSON.stringify(o.body);
      }
      const res = await fetchFn(url, init);
      if (res.status === 401 && refreshable && !retry) continue;
      if (!res.ok) throw await httpError(res);
      const text = await res.text();
      const data = !text ? void 0 : /json/.test(res.headers.get("content-type") ?? "") ? JSON.parse(text) : text;
      return o.validate ? o.validate.parse(data) : data;
    }
  };
  return {
    get: (o) => call("GET", o),
    post: (o) => call("POST", o),
    put: (o) => call("PUT", o),
    delete: (o) => call("DELETE", o)
  };
}

// src/shared.ts
function shared(key, make, local) {
  const g = globalThis;
  const locks = g.navigator?.locks;
  if (!locks || typeof BroadcastChannel === "undefined") return void 0;
  const name = `picloud:${key}`;
  const tab = Math.random().toString(36).slice(2);
  const tabs = /* @__PURE__ */ new Map();
  const pos = /* @__PURE__ */ new Map();
  let mine = [];
  let ch;
  let conn;
  let release;
  let abort;
  let state = "closed";
  const post = (m) => ch?.postMessage(m);
  const union = () => [.../* @__PURE__ */ new Set([...mine, ...[...tabs.values()].flat()])];
  const setState = (next, code) => {
    if (next === state) return;
    const e = { old: state, new: next };
    if (code) e.code = code;
    state = next;
    local.status(e);
  };
  const track = (m) => {
    if (m.seq !== null) pos.set(m.topic, m.seq);
    const at = parsePosition(m.id, [...union(), m.topic]);
    for (const t in at) pos.set(t, at[t]);
  };
  const announce = (from) => post({ t: "want", tab, topics: mine, from });
  const fan = {
    message(m) {
      track(m);
      local.message(m);
      post({ t: "m", m });
    },
    resync(r) {
      local.resync(r);
      post({ t: "r", r });
    },
    status(s) {
      if (!conn) return;
      setState(s.new, s.code);
      post({ t: "s", s });
    },
    error(e) {
      local.error(e);
      post({ t: "e", code: e.code, message: e.message, status: e.status, fatal: e.fatal });
    }
  };
  const lead = () => {
    if (!mine.length) return release?.();
    conn = make(fan);
    const from = {};
    for (const [t, p] of pos) from[t] = p;
    conn.update(union(), from, true);
    post({ t: "hello" });
  };
  const onMessage = ({ data: d }) => {
    if (d.t === "want") tabs.set(d.tab, d.topics);
    if (d.t === "bye") tabs.delete(d.tab);
    if (conn) {
      if (d.t === "want" || d.t === "bye") conn.update(union(), d.t === "want" ? d.from : void 0, true);
      if (d.t === "want") post({ t: "s", s: { old: conn.state, new: conn.state } });
    } else if (d.t === "hello") announce();
    else if (d.t === "m") {
      track(d.m);
      local.message(d.m);
    } else if (d.t === "r") local.resync(d.r);
    else if (d.t === "s") setState(d.s.new, d.s.code);
    else if (d.t === "e") local.error(new PiCloudError(d.code, d.message, d.status, d.fatal));
  };
  const join = () => {
    ch = new BroadcastChannel(name);
    ch.onmessage = onMessage;
    abort = new AbortController();
    locks.request(name, { signal: abort.signal }, () => new Promise((r) => (release = r, lead()))).catch(() => {
    });
    setState("connecting");
  };
  const leave = () => {
    post({ t: "bye", tab });
    const c = conn;
    conn = void 0;
    c?.close();
    release?.();
    abort?.abort();
    ch?.close();
    ch = release = abort = void 0;
    tabs.clear();
    pos.clear();
    setState("closed", "closed");
  };
  g.addEventListener?.("pagehide", () => post({ t: "bye", tab }));
  g.addEventListener?.("pageshow", () => mine.length && announce());
  return {
    get state() {
      return state;
    },
    position: (t) => conn ? conn.position(t) : pos.get(t),
    update(topics, from, kick) {
      mine = topics;
      if (!topics.length) return leave();
      if (!ch) join();
      if (conn) conn.update(union(), from, kick);
      else announce(from);
    },
    pause() {
    },
    resume() {
    },
    close: () => ch && (mine = [], leave())
  };
}

// src/client.ts
var safe = (f) => {
  try {
    f();
  } catch (e) {
    setTimeout(() => {
      throw e;
    });
  }
};
function createClient(options) {
  const o = options;
  const url = o.url.replace(/\/+$/, "");
  const fetchFn = o.fetch ?? ((i, init) => fetch(i, init));
  const refreshable = !!o.getToken;
  let cached;
  const token = (fresh) => {
    if (!o.getToken) return Promise.resolve(o.token ?? null);
    if (fresh || !cached) {
      const p = cached = Promise.resolve().then(o.getToken).then((t) => t ?? null);
      p.catch(() => cached === p && (cached = void 0));
    }
    return cached;
  };
  const listeners = /* @__PURE__ */ new Set();
  const each = (f, topic) => {
    for (const l of listeners) if (topic === void 0 || l.topics.includes(topic)) safe(() => f(l));
  };
  const sink = {
    message: (m) => each((l) => {
      if (m.seq !== null) {
        const s = l.seen.get(m.topic);
        if (s !== void 0 && m.seq <= s) return;
        l.seen.set(m.topic, m.seq);
      }
      let message = m.message;
      if (l.o.validate) {
        try {
          message = l.o.validate.parse(message);
        } catch (e) {
          l.o.onError?.(new PiCloudError("invalid_message", String(e)));
          return;
        }
      }
      l.cb({ ...m, message });
    }, m.topic),
    resync: (e) => each((l) => {
      l.seen.set(e.topic, e.to);
      l.o.onResync?.(e);
    }, e.topic),
    status: (e) => each((l) => l.o.onStatus?.(e)),
    error: (e) => each((l) => l.o.onError?.(e))
  };
  const make = (s) => new Connection(
    {
      url,
      fetch: fetchFn,
      token,
      refreshable,
      minMs: o.backoff?.minMs ?? 500,
      maxMs: o.backoff?.maxMs ?? 3e4,
      idleMs: o.idleTimeoutMs ?? 45e3
    },
    s
  );
  let h = 0;
  for (const c of `${url}
${o.token ?? ""}
${o.shareKey ?? ""}`) h = h * 31 + c.charCodeAt(0) | 0;
  const source = o.shareAcrossTabs !== false && shared(h.toString(36), make, sink) || make(sink);
  const sync = (from, kick) => source.update([...new Set([...listeners].flatMap((l) => l.topics))], from, kick);
  const doc = globalThis.document;
  if (o.pauseWhenHidden && doc) {
    let t;
    doc.addEventListener("visibilitychange", () => {
      clearTimeout(t);
      if (!doc.hidden) source.resume();
      else t = setTimeout(() => source.pause(), o.pauseWhenHidden === true ? 5e3 : +o.pauseWhenHidden);
    });
  }
  let closing;
  return {
    url,
    get state() {
      return source.state;
    },
    subscribe(topics, onMessage, so = {}) {
      const list = [...new Set(typeof topics === "string" ? [topics] : topics)];
      const from = parsePosition(so.lastEventId, list);
      const l = { topics: list, seen: /* @__PURE__ */ new Map(), cb: onMessage, o: so };
      for (const t of list) {
        const p = from[t] ?? source.position(t);
        if (p !== void 0) l.seen.set(t, p);
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
    close() {
      listeners.clear();
      source.close();
    }
  };
}

exports.ErrorCode = ErrorCode;
exports.PiCloudError = PiCloudError;
exports.backoffDelay = backoffDelay;
exports.createClient = createClient;
//# sourceMappingURL=index.cjs.map
//# sourceMappingURL=index.cjs.map