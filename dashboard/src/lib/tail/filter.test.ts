// Shows the tail filter: JSON path equals (nested keys, indexes, quoted keys, any JSON value,
// deep equality), substring otherwise, and that an empty box matches all.
import { describe, expect, it } from 'vitest';
import { matches, parseFilter, parsePath } from './filter';

const entry = (message: unknown, topic = 'chat') => ({ topic, message, raw: JSON.stringify(message) });

describe('parseFilter', () => {
  it('reads `path = value` with a JSON value', () => {
    expect(parseFilter('user.name = "ann"')).toEqual({ kind: 'path', path: ['user', 'name'], value: 'ann' });
    expect(parseFilter('$.items[1].n==3')).toEqual({ kind: 'path', path: ['items', 1, 'n'], value: 3 });
    expect(parseFilter('["a b"].c = {"x":[1]}')).toEqual({ kind: 'path', path: ['a b', 'c'], value: { x: [1] } });
    expect(parseFilter('ok = null')).toEqual({ kind: 'path', path: ['ok'], value: null });
  });

  it('falls back to a case-insensitive substring', () => {
    expect(parseFilter('  Hello ')).toEqual({ kind: 'substring', text: 'hello' });
    expect(parseFilter('user.name = ann')).toEqual({ kind: 'substring', text: 'user.name = ann' });
    expect(parseFilter('a b = 1')).toEqual({ kind: 'substring', text: 'a b = 1' });
    expect(parseFilter('   ')).toEqual({ kind: 'all' });
  });

  it('parses paths', () => {
    expect(parsePath('a.b[0]')).toEqual(['a', 'b', 0]);
    expect(parsePath('$')).toBeNull();
    expect(parsePath('a..b')).toBeNull();
  });
});

describe('matches', () => {
  it('compares the value at the path by deep equality', () => {
    const f = parseFilter('user.name = "ann"');
    expect(matches(f, entry({ user: { name: 'ann' } }))).toBe(true);
    expect(matches(f, entry({ user: { name: 'bob' } }))).toBe(false);
    expect(matches(f, entry({ user: 'ann' }))).toBe(false);
    expect(matches(f, entry('ann'))).toBe(false);
    expect(matches(parseFilter('tags = ["a",{"b":1}]'), entry({ tags: ['a', { b: 1 }] }))).toBe(true);
    expect(matches(parseFilter('tags = ["a"]'), entry({ tags: ['a', 'b'] }))).toBe(false);
    expect(matches(parseFilter('items[1] = 2'), entry({ items: [1, 2] }))).toBe(true);
    expect(matches(parseFilter('n = 1'), entry({ n: '1' }))).toBe(false);
  });

  it('a missing key never equals, not even null', () => {
    expect(matches(parseFilter('a = null'), entry({}))).toBe(false);
    expect(matches(parseFilter('a = null'), entry({ a: null }))).toBe(true);
    expect(matches(parseFilter('length = 0'), entry([]))).toBe(false);
  });

  it('substring looks in the compact JSON and the topic', () => {
    expect(matches(parseFilter('HELLO'), entry({ text: 'hello world' }))).toBe(true);
    expect(matches(parseFilter('"text":'), entry({ text: 1 }))).toBe(true);
    expect(matches(parseFilter('room'), entry({}, 'room.1'))).toBe(true);
    expect(matches(parseFilter('zzz'), entry({ text: 'hello' }))).toBe(false);
    expect(matches(parseFilter(''), entry({}))).toBe(true);
  });
});
