/**
 * `@picloud/client/wasm`: the server's own checks, compiled to WebAssembly from the Rust the
 * server runs (crates/picloud-wasm), for tenants' tooling: lint a script before deploying it,
 * validate a topic name or a trigger filter in a form, preview a cron schedule. Same verdicts
 * as the server, no network.
 *
 * The module is bundled into this entry and instantiated synchronously on the first call (one
 * compile per page or process), so it works the same from ESM and CJS, in Node and browsers.
 * A page with a Content-Security-Policy needs `script-src 'wasm-unsafe-eval'`. The core entry
 * never imports this one.
 */
import bytes from './wasm/picloud_wasm_bg.wasm';
import * as glue from './wasm/picloud_wasm.js';

/** A problem a deploy would refuse, at a 1-based line and column (0 when there is no position). */
export interface Diagnostic {
  line: number;
  column: number;
  message: string;
  severity: 'error';
}

/** An app's script limits, as its runtime settings hold them (`GET …/runtime`'s `effective_limits`). */
export interface ScriptLimits {
  max_operations?: number;
  max_call_depth?: number;
  max_expr_depth?: number;
  max_string_bytes?: number;
  max_array_len?: number;
  max_map_len?: number;
  timeout_ms?: number;
  max_log_lines?: number;
}

/** Why a value is invalid: the field, and a message fit to show. */
export interface Invalid {
  field: string;
  message: string;
}

type Envelope<T> = { ok: T } | { error: Invalid };

let ready = false;
function exports(): typeof glue {
  if (!ready) {
    glue.initSync({ module: bytes });
    ready = true;
  }
  return glue;
}

function open<T>(answer: string): Envelope<T> {
  return JSON.parse(answer) as Envelope<T>;
}

/** The value, or an `Error` carrying the message (its `field` on the error as `field`). */
function unwrap<T>(answer: string): T {
  const e = open<T>(answer);
  if ('ok' in e) return e.ok;
  throw Object.assign(new Error(`${e.error.field}: ${e.error.message}`), { field: e.error.field });
}

/** null when valid, else why not. */
function verdict(answer: string): Invalid | null {
  const e = open<null>(answer);
  return 'ok' in e ? null : e.error;
}

/**
 * What a deploy of `source` under `limits` (default: the server's defaults) would refuse: empty
 * when it would deploy. Throws on invalid limits.
 */
export function checkScript(source: string, limits?: ScriptLimits): Diagnostic[] {
  return unwrap<Diagnostic[]>(exports().checkScript(source, limits ? JSON.stringify(limits) : ''));
}

/** null when `name` is a valid topic name. */
export function validateTopic(name: string): Invalid | null {
  return verdict(exports().validateTopic(name));
}

/** Whether a token's or trigger's topic pattern (`chat`, `chat.*`) covers `topic`. Throws on an invalid pattern. */
export function topicPatternMatches(pattern: string, topic: string): boolean {
  return unwrap<boolean>(exports().topicPatternMatches(pattern, topic));
}

/**
 * The next `n` (≤ 100) fire times of a cron schedule (5 fields, or 6 with seconds; UTC) after
 * `fromMillis`, as epoch milliseconds. Throws on an invalid expression.
 */
export function cronNext(expression: string, fromMillis: number, n: number): number[] {
  return unwrap<number[]>(exports().cronNext(expression, fromMillis, n));
}

/** null when `filter` is valid for a trigger of `kind` (`kv`, `docs`, `files`, `cron`, `pubsub`, `dead_letter`). */
export function validateTriggerFilter(kind: string, filter: unknown): Invalid | null {
  return verdict(exports().validateTriggerFilter(kind, JSON.stringify(filter ?? null)));
}
