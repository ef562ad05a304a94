import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Checker, Diagnostic } from './checker';
import { LiveCheck } from './liveCheck.svelte';

const d = (line: number, column: number, message = 'bad'): Diagnostic => ({ line, column, message, severity: 'error' });

function fakeChecker(check: (s: string) => Diagnostic[]): Checker {
  return { checkScript: vi.fn(check), validateTopic: () => null, topicPatternMatches: () => true, cronNext: () => [], validateTriggerFilter: () => null };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('LiveCheck', () => {
  it('checks once the source has been still for the delay, the latest source only', async () => {
    const checker = fakeChecker((s) => (s.includes('oops') ? [d(2, 5), d(1, 1)] : []));
    const live = new LiveCheck(async () => checker, 250);
    live.update('let a');
    await vi.advanceTimersByTimeAsync(100);
    live.update('let a = 1;\noops');
    await vi.advanceTimersByTimeAsync(249);
    expect(checker.checkScript).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(checker.checkScript).toHaveBeenCalledTimes(1);
    expect(checker.checkScript).toHaveBeenCalledWith('let a = 1;\noops', undefined);
    expect(live.diagnostics).toEqual([d(1, 1), d(2, 5)]);
    expect(live.isCurrent('let a = 1;\noops')).toBe(true);
    expect(live.isCurrent('let a = 1;')).toBe(false);
    expect(live.ms).toBeGreaterThanOrEqual(0);
  });

  it('passes the app limits', async () => {
    const checker = fakeChecker(() => []);
    const live = new LiveCheck(async () => checker);
    live.limits = { max_operations: 10 };
    await live.run('x');
    expect(checker.checkScript).toHaveBeenCalledWith('x', { max_operations: 10 });
  });

  it('drops a run a newer one overtook', async () => {
    let release!: (c: Checker) => void;
    const slow = new Promise<Checker>((r) => (release = r));
    const checker = fakeChecker((s) => (s === 'old' ? [d(1, 1)] : []));
    let first = true;
    const live = new LiveCheck(() => (first ? ((first = false), slow) : Promise.resolve(checker)));
    const a = live.run('old');
    await live.run('new');
    release(checker);
    await a;
    expect(live.checked).toBe('new');
    expect(live.diagnostics).toEqual([]);
  });

  it('says when the checker cannot load', async () => {
    const live = new LiveCheck(async () => {
      throw new Error('no wasm');
    });
    await live.run('x');
    expect(live.error).toMatch(/not available \(no wasm\).*server still checks/);
    expect(live.checked).toBeNull();
  });

  it('dispose stops a pending check', async () => {
    const checker = fakeChecker(() => []);
    const live = new LiveCheck(async () => checker);
    live.update('x');
    live.dispose();
    await vi.advanceTimersByTimeAsync(1000);
    expect(checker.checkScript).not.toHaveBeenCalled();
  });
});
