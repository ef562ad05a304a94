// Starts the real `picloud` binary (PICLOUD_BIN, else ~/.cache/picloud/target/debug/picloud) on a
// free port with a fresh data dir, and talks to its admin API. Node does not resolve
// `*.localhost`, so `appFetch` (the README's recipe, ./localhost-fetch.ts) is a fetch whose
// connections go to 127.0.0.1 while the URL (and so the Host header) stays
// `http://demo.localhost:<port>`: a real socket to the real server.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FetchLike } from '../../src/types';
import { localhostFetch } from './localhost-fetch';
import { LocalhostWebSocket } from './localhost-ws';

export const BIN = process.env.PICLOUD_BIN || join(homedir(), '.cache/picloud/target/debug/picloud');

/** fetch for `*.localhost` URLs (what a browser does natively): the README's Node recipe. */
export const appFetch: FetchLike = localhostFetch;
/** A WebSocket for `*.localhost` URLs (Node 20 has no global WebSocket). */
export const AppWebSocket = LocalhostWebSocket;

/** Topic settings of the WebSocket features (docs/protocol.md, "WebSocket"). */
export interface TopicSettings {
  auth_mode?: 'public' | 'token';
  client_publish?: boolean;
  presence?: boolean;
  client_event_limit?: { count: number; per_secs: number } | null;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `f` until it returns a truthy value (or stops throwing); generous for a loaded machine. */
export async function until<T>(f: () => T | Promise<T>, what: string, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(50);
  }
}

export class PiCloud {
  key = '';
  proc: ChildProcess | undefined;
  private log = '';

  private constructor(
    readonly port: number,
    readonly dataDir: string,
  ) {}

  static async start(): Promise<PiCloud> {
    if (!existsSync(BIN)) throw new Error(`picloud binary not found at ${BIN} (set PICLOUD_BIN)`);
    const s = new PiCloud(await freePort(), mkdtempSync(join(tmpdir(), 'picloud-ts-')));
    await s.boot();
    return s;
  }

  get admin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The app's base URL, as a browser would use it. */
  appUrl(slug = 'demo'): string {
    return `http://${slug}.localhost:${this.port}`;
  }

  /** (Re)starts the binary on the same port and data dir; retries if the binary is being replaced. */
  async boot(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.spawnOnce();
        return;
      } catch (e) {
        if (attempt >= 10) throw e;
        await sleep(2000);
      }
    }
  }

  private async spawnOnce(): Promise<void> {
    this.log = '';
    const p = spawn(BIN, ['serve'], {
      env: {
        ...process.env,
        PICLOUD_LISTEN: `127.0.0.1:${this.port}`,
        PICLOUD_DATA_DIR: this.dataDir,
        PICLOUD_SHUTDOWN_GRACE_SECS: '2',
        RUST_LOG: process.env.RUST_LOG ?? 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = p;
    let exited = false;
    p.once('exit', () => (exited = true));
    p.once('error', (e) => {
      exited = true;
      this.log += `spawn error: ${String(e)}\n`;
    });
    p.stdout!.on('data', (d: Buffer) => {
      this.log += d.toString();
      const k = /^(pk_\S+)$/m.exec(this.log);
      if (k && !this.key) this.key = k[1]!;
    });
    p.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    await until(
      async () => {
        if (exited) throw new Error(`picloud exited: ${this.log}`);
        const r = await fetch(`${this.admin}/readyz`);
        return r.ok && this.key !== '';
      },
      'picloud to be ready',
      60_000,
    ).catch((e: Error) => {
      p.kill('SIGKILL');
      throw e;
    });
  }

  /** SIGTERM and wait for the exit (the server ends streams with `server_shutdown`). */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 15_000);
    await gone;
    clearTimeout(t);
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  async api<T = Record<string, unknown>>(method: string, path: string, body?: unknown, expect = [200, 201, 202, 204]): Promise<T> {
    const r = await fetch(`${this.admin}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${this.key}`, 'content-type': 'application/json' },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await r.text();
    if (!expect.includes(r.status)) throw new Error(`${method} ${path} → ${r.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  createApp(slug = 'demo') {
    return this.api<{ id: string }>('POST', '/apps', { slug });
  }

  createTopic(name: string, auth_mode: 'public' | 'token' = 'public', app = 'demo') {
    return this.api('POST', `/apps/${app}/topics`, { name, external_subscribable: true, auth_mode });
  }

  /** Creates an external topic with the WebSocket settings. */
  topic(name: string, settings: TopicSettings = {}, app = 'demo') {
    return this.api('POST', `/apps/${app}/topics`, { name, external_subscribable: true, auth_mode: 'public', ...settings });
  }

  patchTopic(name: string, settings: TopicSettings, app = 'demo') {
    return this.api('PATCH', `/apps/${app}/topics/${encodeURIComponent(name)}`, settings);
  }

  /** Mints a token with a `sub` (the presence member) and a `publish` claim (client events). */
  async token(o: { topics: string[]; subject?: string; publish?: string[]; ttl_secs?: number }, app = 'demo'): Promise<string> {
    return (await this.api<{ token: string }>('POST', `/apps/${app}/tokens`, { ttl_secs: 600, ...o })).token;
  }

  /** Sets the app's quota overrides (the bootstrap key is an InstanceAdmin); absent fields: the default. */
  quotas(q: Partial<Record<'connections' | 'topics_per_connection' | 'publishes_per_sec' | 'ephemeral_per_sec' | 'client_events_per_sec' | 'presence_per_sec', number>>, app = 'demo') {
    const all = { connections: null, topics_per_connection: null, publishes_per_sec: null, ephemeral_per_sec: null, client_events_per_sec: null, presence_per_sec: null };
    return this.api('PUT', `/apps/${app}/quotas`, { ...all, ...q });
  }

  /** The topic's members as the admin API sees them. */
  async members(topic: string, app = 'demo'): Promise<{ sub: string; data: unknown; connections: number }[]> {
    return (await this.api<{ members: { sub: string; data: unknown; connections: number }[] }>('GET', `/apps/${app}/topics/${encodeURIComponent(topic)}/presence`)).members;
  }

  publish(topic: string, message: unknown, app = 'demo') {
    return this.api<{ topic: string; seq: number; published_at: string }>('POST', `/apps/${app}/topics/${encodeURIComponent(topic)}/publish`, message);
  }

  async mint(topics: string[], ttl_secs: number, app = 'demo'): Promise<string> {
    return (await this.api<{ token: string }>('POST', `/apps/${app}/tokens`, { topics, ttl_secs })).token;
  }

  async realtimeHealth(): Promise<{ connections: number; subscribers: number; [k: string]: number }> {
    const r = await fetch(`${this.admin}/health/realtime`);
    return (await r.json()) as { connections: number; subscribers: number };
  }

  /** Waits until the server counts exactly `n` realtime connections. */
  connections(n: number, timeoutMs = 30_000) {
    return until(async () => (await this.realtimeHealth()).connections === n, `${n} realtime connection(s)`, timeoutMs);
  }
}
