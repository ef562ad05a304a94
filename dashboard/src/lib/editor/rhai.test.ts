import { StringStream } from '@codemirror/language';
import { describe, expect, it } from 'vitest';
import { rhai, type RhaiState } from './rhai';

/** Every non-space token of `source` as `[text, style]`, line by line, the state carried over. */
function tokens(source: string): [string, string | null][] {
  const state: RhaiState = rhai.startState!(2);
  const out: [string, string | null][] = [];
  for (const line of source.split('\n')) {
    const stream = new StringStream(line, 4, 2);
    while (!stream.eol()) {
      const style = rhai.token(stream, state);
      const text = stream.current();
      if (text.trim()) out.push([text, style]);
      stream.start = stream.pos;
    }
  }
  return out;
}

describe('rhai stream parser', () => {
  it('keywords, atoms, numbers, definitions and calls', () => {
    expect(tokens('fn add(a, b) { return a + 0x1F; }\nlet ok = true;')).toEqual([
      ['fn', 'keyword'],
      ['add', 'definition(variableName)'],
      ['(', 'bracket'],
      ['a', 'variableName'],
      [',', 'punctuation'],
      ['b', 'variableName'],
      [')', 'bracket'],
      ['{', 'bracket'],
      ['return', 'keyword'],
      ['a', 'variableName'],
      ['+', 'operator'],
      ['0x1F', 'number'],
      [';', 'punctuation'],
      ['}', 'bracket'],
      ['let', 'keyword'],
      ['ok', 'variableName'],
      ['=', 'operator'],
      ['true', 'bool'],
      [';', 'punctuation'],
    ]);
    expect(tokens('log::info(1_000.5e3)').map((t) => t[1])).toEqual(['variableName', 'operator', 'function(variableName)', 'bracket', 'number', 'bracket']);
  });

  it('every keyword of the language', () => {
    const words = 'let const fn if else while loop for in return throw try catch switch break continue true false private'.split(' ');
    for (const w of words) expect(tokens(w)[0]![1], w).toMatch(/keyword|bool/);
  });

  it('comments: line, and nested blocks over lines', () => {
    expect(tokens('x // note "not a string"')).toEqual([
      ['x', 'variableName'],
      ['// note "not a string"', 'lineComment'],
    ]);
    expect(tokens('/* a /* b */ still\n comment */ y')).toEqual([
      ['/* a /* b */ still', 'blockComment'],
      [' comment */', 'blockComment'],
      ['y', 'variableName'],
    ]);
  });

  it('strings with escapes and line continuations, characters', () => {
    expect(tokens('"a \\" b" c')).toEqual([
      ['"a \\" b"', 'string'],
      ['c', 'variableName'],
    ]);
    expect(tokens('"one \\\ntwo" z')).toEqual([
      ['"one \\', 'string'],
      ['two"', 'string'],
      ['z', 'variableName'],
    ]);
    expect(tokens("'x'")).toEqual([["'x'", 'character']]);
  });

  it('backtick strings over lines, with interpolated code', () => {
    expect(tokens('`got ${n + f(#{a: 1})} and\n more` ok')).toEqual([
      ['`', 'string'],
      ['got ', 'string'],
      ['${', 'special(string)'],
      ['n', 'variableName'],
      ['+', 'operator'],
      ['f', 'function(variableName)'],
      ['(', 'bracket'],
      ['#{', 'brace'],
      ['a', 'variableName'],
      [':', 'operator'],
      ['1', 'number'],
      ['}', 'bracket'],
      [')', 'bracket'],
      ['}', 'special(string)'],
      [' and', 'string'],
      [' more', 'string'],
      ['`', 'string'],
      ['ok', 'variableName'],
    ]);
  });
});
