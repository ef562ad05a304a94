// Shows the display formats of durations (uptime), of "how long ago" (keys' last use) and of sizes (backups).
import { describe, expect, it } from 'vitest';
import { ago, duration, size } from './format';

describe('format', () => {
  it('writes durations, with seconds below a day', () => {
    expect([duration(0), duration(59.9), duration(61), duration(3600 + 5 * 60 + 3), duration(3 * 86400 + 4 * 3600 + 7)]).toEqual([
      '0 s',
      '59 s',
      '1 min 1 s',
      '1 h 5 min 3 s',
      '3 d 4 h 0 min',
    ]);
  });

  it('says how long ago', () => {
    const now = Date.parse('2026-01-02T00:00:00Z');
    expect(ago(null, now)).toBe('—');
    expect(ago('2026-01-01T23:59:30Z', now)).toBe('just now');
    expect(ago('2026-01-01T23:55:00Z', now)).toBe('5 min ago');
    expect(ago('2026-01-01T21:00:00Z', now)).toBe('3 h ago');
    expect(ago('2025-12-30T00:00:00Z', now)).toBe('3 d ago');
  });

  it('writes sizes in binary units, one decimal below 100, never 1024 of a unit', () => {
    expect([size(0), size(1), size(1023), size(1024), size(8339), size(100 * 1024), size(1024 * 1024 - 1), size(1.5 * 1024 ** 3), size(5 * 1024 ** 4)]).toEqual([
      '0 B',
      '1 B',
      '1023 B',
      '1.0 KiB',
      '8.1 KiB',
      '100 KiB',
      '1.0 MiB',
      '1.5 GiB',
      '5.0 TiB',
    ]);
    expect(size(-3)).toBe('0 B');
  });
});
