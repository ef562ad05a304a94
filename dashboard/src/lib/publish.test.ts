// Shows the Publish form's rules: invalid JSON is never sent (an error instead), single sends the
// value as is (arrays too), batch needs an array of 1–1,000 and targets the topic per element.
import { describe, expect, it } from 'vitest';
import { describeSeqs, parsePublish } from './publish';

describe('parsePublish', () => {
  it('refuses invalid or empty JSON', () => {
    const r = parsePublish('{"a":', 'single', 't');
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/^Invalid JSON/);
    expect(parsePublish('  ', 'batch', 't')).toEqual({ ok: false, error: 'Enter a JSON value.' });
  });

  it('single: any JSON value, arrays included', () => {
    expect(parsePublish('{"text":"hi"}', 'single', 't')).toEqual({ ok: true, kind: 'single', message: { text: 'hi' } });
    expect(parsePublish('[1,2]', 'single', 't')).toEqual({ ok: true, kind: 'single', message: [1, 2] });
    expect(parsePublish('null', 'single', 't')).toEqual({ ok: true, kind: 'single', message: null });
  });

  it('batch: an array, one message per element on the topic', () => {
    expect(parsePublish('[{"n":1}, 2]', 'batch', 'chat')).toEqual({
      ok: true,
      kind: 'batch',
      messages: [
        { topic: 'chat', data: { n: 1 } },
        { topic: 'chat', data: 2 },
      ],
    });
    expect(parsePublish('{"n":1}', 'batch', 'chat').ok).toBe(false);
    expect(parsePublish('[]', 'batch', 'chat').ok).toBe(false);
    expect(parsePublish(JSON.stringify(new Array(1001).fill(0)), 'batch', 'chat').ok).toBe(false);
    expect(parsePublish(JSON.stringify(new Array(1000).fill(0)), 'batch', 'chat').ok).toBe(true);
  });
});

describe('describeSeqs', () => {
  it('says what was published', () => {
    expect(describeSeqs([7])).toBe('Published: seq 7.');
    expect(describeSeqs([3, 4, 5])).toBe('Published 3 messages: seq 3–5.');
    expect(describeSeqs([3, 5])).toBe('Published 2 messages: seq 3, 5.');
    expect(describeSeqs([undefined])).toBe('Published (ephemeral, no seq).');
    expect(describeSeqs([null, null])).toBe('Published 2 messages (ephemeral, no seqs).');
  });
});
