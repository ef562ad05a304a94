import { describe, expect, it } from 'vitest';
import { scriptNameError, versionsNewest } from './scriptVersions';

describe('scriptNameError', () => {
  it('takes the names a deploy takes', () => {
    for (const n of ['hello', 'on-order', 'a.b_c-9', 'x'.repeat(64)]) expect(scriptNameError(n), n).toBeNull();
  });
  it('refuses empty, long, odd characters and the reserved name', () => {
    expect(scriptNameError('')).toMatch(/Name/);
    expect(scriptNameError('x'.repeat(65))).toMatch(/64/);
    expect(scriptNameError('a b')).toMatch(/letters/);
    expect(scriptNameError('a/b')).toMatch(/letters/);
    expect(scriptNameError('check')).toMatch(/reserved/);
  });
});

describe('versionsNewest', () => {
  it('sorts newest first without changing the input', () => {
    const v = (version: number) => ({ version, name: 's', source: '', created_at: '2026-01-01T00:00:00Z' });
    const list = [v(1), v(3), v(2)];
    expect(versionsNewest(list).map((x) => x.version)).toEqual([3, 2, 1]);
    expect(list.map((x) => x.version)).toEqual([1, 3, 2]);
  });
});
