/**
 * The in-browser script checker: `@picloud/client/wasm` (the server's own checks compiled to
 * WebAssembly), loaded once, on first use, by the pages that need it (Scripts, Routes & triggers):
 * a dynamic import, so neither the shell nor any other page carries it. Every use goes through
 * here.
 */

// Types only: nothing of the module reaches the chunk that imports this file.
import type * as Wasm from '@picloud/client/wasm';

export type { Diagnostic, Invalid, ScriptLimits } from '@picloud/client/wasm';

/** What the pages use of the module. */
export type Checker = Pick<typeof Wasm, 'checkScript' | 'validateTopic' | 'topicPatternMatches' | 'cronNext' | 'validateTriggerFilter'>;

type Importer = () => Promise<Checker>;

// The module compiles its WebAssembly synchronously on its first call (the CSP allows
// 'wasm-unsafe-eval' for that); the import is kept, not redone.
const importWasm: Importer = () => import('./wasm');

let loading: Promise<Checker> | null = null;

/** The checker, imported on the first call; a failed import is retried by the next call. */
export function loadChecker(importer: Importer = importWasm): Promise<Checker> {
  loading ??= importer().catch((e: unknown) => {
    loading = null;
    throw e;
  });
  return loading;
}

/** Forgets the loaded module (tests). */
export function resetChecker(): void {
  loading = null;
}
