import { describe, expect, it } from 'vitest';
import { loadName, saveName } from './name';

describe('the remembered name', () => {
  it('round-trips through storage', () => {
    const m = new Map<string, string>();
    const storage = { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v) };
    expect(loadName(storage)).toBe('');
    saveName('Ann', storage);
    expect(loadName(storage)).toBe('Ann');
  });

  it('does without storage that refuses', () => {
    const refuses = {
      getItem: () => {
        throw new Error('SecurityError');
      },
      setItem: () => {
        throw new Error('QuotaExceededError');
      },
    };
    expect(loadName(refuses)).toBe('');
    expect(() => saveName('Ann', refuses)).not.toThrow();
    expect(loadName(undefined)).toBe('');
  });
});
