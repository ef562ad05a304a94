/* tslint:disable */
/* eslint-disable */

/**
 * What a deploy under `limits` (JSON overrides as the app's runtime settings hold them,
 * or empty for the defaults) would refuse: `{"ok": [diagnostic…]}`, empty when it would
 * deploy.
 */
export function checkScript(source: string, limits: string): string;

/**
 * The next `n` (at most [`MAX_CRON_TIMES`]) fire times of a cron trigger's schedule
 * after `from_millis`, in epoch milliseconds UTC. The clock is the caller's: wasm has none.
 */
export function cronNext(expression: string, from_millis: number, n: number): string;

/**
 * Whether a token's or trigger's topic pattern (`chat`, `chat.*`) covers `topic`.
 */
export function topicPatternMatches(pattern: string, topic: string): string;

/**
 * `{"ok": null}` when `name` is a valid topic name.
 */
export function validateTopic(name: string): string;

/**
 * `{"ok": null}` when `filter` (JSON text) is a valid filter for a trigger of `kind`, as
 * creating the trigger would judge it.
 */
export function validateTriggerFilter(kind: string, filter: string): string;

export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

export interface InitOutput {
    readonly memory: WebAssembly.Memory;
    readonly checkScript: (a: number, b: number, c: number, d: number) => [number, number];
    readonly cronNext: (a: number, b: number, c: number, d: number) => [number, number];
    readonly topicPatternMatches: (a: number, b: number, c: number, d: number) => [number, number];
    readonly validateTopic: (a: number, b: number) => [number, number];
    readonly validateTriggerFilter: (a: number, b: number, c: number, d: number) => [number, number];
    readonly __wbindgen_exn_store: (a: number) => void;
    readonly __externref_table_alloc: () => number;
    readonly __wbindgen_externrefs: WebAssembly.Table;
    readonly __wbindgen_malloc: (a: number, b: number) => number;
    readonly __wbindgen_realloc: (a: number, b: number, c: number, d: number) => number;
    readonly __wbindgen_free: (a: number, b: number, c: number) => void;
    readonly __wbindgen_start: () => void;
}

export type SyncInitInput = BufferSource | WebAssembly.Module;

/**
 * Instantiates the given `module`, which can either be bytes or
 * a precompiled `WebAssembly.Module`.
 *
 * @param {{ module: SyncInitInput }} module - Passing `SyncInitInput` directly is deprecated.
 *
 * @returns {InitOutput}
 */
export function initSync(module: { module: SyncInitInput } | SyncInitInput): InitOutput;

/**
 * If `module_or_path` is {RequestInfo} or {URL}, makes a request and
 * for everything else, calls `WebAssembly.instantiate` directly.
 *
 * @param {{ module_or_path: InitInput | Promise<InitInput> }} module_or_path - Passing `InitInput` directly is deprecated.
 *
 * @returns {Promise<InitOutput>}
 */
export default function __wbg_init (module_or_path?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>): Promise<InitOutput>;
