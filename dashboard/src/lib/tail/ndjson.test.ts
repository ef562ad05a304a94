// Shows the NDJSON export: one parseable line per message, ephemeral as seq null, non-messages
// left out, and the byte size used for the size column.
import { describe, expect, it } from 'vitest';
import type { TailEntry } from './buffer';
import { toNdjson, utf8Bytes } from './ndjson';

const m = (n: number, seq: number | null, message: unknown): TailEntry => {
  const raw = JSON.stringify(message);
  return { kind: 'message', n, topic: 'chat', seq, id: seq === null ? undefined : String(seq), publishedAt: '2026-01-01T00:00:00.000Z', message, raw, size: utf8Bytes(raw) };
};

describe('toNdjson', () => {
  it('writes one line per message, oldest first, ephemeral with seq null', () => {
    const text = toNdjson([
      m(1, 1, { text: 'a\nb' }),
      { kind: 'resync', n: 2, topic: 'chat', from: 2, to: 5, reason: 'retention', at: 'x' },
      { kind: 'position', n: 7, topic: 'chat', position: 5, at: 'x' },
      { kind: 'status', n: 3, text: 'open', at: 'x' },
      m(4, null, [1, 'é']),
    ]);
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      { topic: 'chat', seq: 1, published_at: '2026-01-01T00:00:00.000Z', message: { text: 'a\nb' } },
      { topic: 'chat', seq: null, published_at: '2026-01-01T00:00:00.000Z', message: [1, 'é'] },
    ]);
  });

  it('is empty for no messages', () => {
    expect(toNdjson([])).toBe('');
  });
});

describe('utf8Bytes', () => {
  it('counts UTF-8 bytes like TextEncoder', () => {
    for (const s of ['', 'abc', 'é', '日本', '🎉', 'a\ud800b']) expect(utf8Bytes(s)).toBe(new TextEncoder().encode(s).length);
  });
});
