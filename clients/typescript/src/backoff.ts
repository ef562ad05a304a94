/**
 * Full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff And Jitter"):
 * the delay before attempt `n` (0-based) is uniform in `[0, min(max, base * 2^n))`. Jitter spreads
 * a crowd of clients that lost the same server instead of having them all return at once.
 */
export interface BackoffOptions {
  /** Base delay in ms before the server sent `retry:` (default 500). The server's `retry:` replaces it. */
  minMs?: number | undefined;
  /** Cap in ms (default 30000). */
  maxMs?: number | undefined;
}

export function backoffDelay(attempt: number, base: number, max: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(max, base * 2 ** Math.min(attempt, 31)));
}
