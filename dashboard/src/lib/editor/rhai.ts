/**
 * Rhai highlighting for CodeMirror: a small stream parser (no grammar to ship), close enough to be
 * useful: keywords, `true`/`false`, numbers (hex, octal, binary, `_` separators, floats), strings
 * (`"…"` with escapes and `\` line continuations, `'c'` characters, backtick strings over several
 * lines with `${…}` interpolation that is highlighted as code), `//` and nested block comments,
 * `fn` names, calls, `#{` map literals. Pure: only CodeMirror's stream interface.
 */
import type { StreamParser, StringStream } from '@codemirror/language';

export const KEYWORDS = new Set([
  'let', 'const', 'fn', 'if', 'else', 'while', 'loop', 'for', 'in', 'return', 'throw', 'try', 'catch', 'switch',
  'break', 'continue', 'private', 'do', 'until', 'import', 'export', 'as', 'global', 'this',
]);
const ATOMS = new Set(['true', 'false']);

export interface RhaiState {
  /** Depth of the block comment we are in (Rhai's block comments nest); 0 outside. */
  comment: number;
  /** Inside a `"…"` string continued with `\` at a line's end. */
  quoted: boolean;
  /**
   * Backtick strings and their interpolations, innermost last: `'`'` while in a backtick string's
   * text, a number (open braces) while in a `${…}` of one.
   */
  stack: ('`' | number)[];
  /** The previous word was `fn`: the next one is a definition. */
  afterFn: boolean;
}

function blockComment(stream: StringStream, state: RhaiState): string {
  while (!stream.eol()) {
    if (stream.match('/*')) state.comment++;
    else if (stream.match('*/')) state.comment--;
    else stream.next();
    if (state.comment === 0) break;
  }
  return 'blockComment';
}

/** The rest of a `"…"` string; true when it closed. */
function quoted(stream: StringStream): boolean {
  let escaped = false;
  let ch: string | void;
  while ((ch = stream.next()) != null) {
    if (ch === '"' && !escaped) return true;
    escaped = !escaped && ch === '\\';
  }
  // A string goes on to the next line only after a `\`.
  return !escaped;
}

/** Backtick text up to `${`, the closing backtick or the line's end (the delimiters are tokens of their own). */
function backtick(stream: StringStream, state: RhaiState): string {
  if (stream.match('${')) {
    state.stack.push(0);
    return 'special(string)';
  }
  if (stream.eat('`')) {
    state.stack.pop();
    return 'string';
  }
  while (!stream.eol()) {
    if (stream.peek() === '`' || stream.match('${', false)) break;
    stream.next();
  }
  return 'string';
}

function code(stream: StringStream, state: RhaiState): string | null {
  if (stream.eatSpace()) return null;
  if (stream.match('//')) {
    stream.skipToEnd();
    return 'lineComment';
  }
  if (stream.match('/*')) {
    state.comment = 1;
    return blockComment(stream, state);
  }
  const top = state.stack[state.stack.length - 1];
  if (typeof top === 'number') {
    if (stream.peek() === '{') state.stack[state.stack.length - 1] = top + 1;
    else if (stream.peek() === '}') {
      if (top === 0) {
        stream.next();
        state.stack.pop();
        return 'special(string)';
      }
      state.stack[state.stack.length - 1] = top - 1;
    }
  }
  if (stream.eat('`')) {
    state.stack.push('`');
    return 'string';
  }
  if (stream.eat('"')) {
    state.quoted = !quoted(stream);
    return 'string';
  }
  if (stream.match(/^'(?:[^'\\]|\\.)+'/)) return 'character';
  if (stream.match(/^0x[0-9a-fA-F_]+|^0o[0-7_]+|^0b[01_]+/)) return 'number';
  if (stream.match(/^\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?/)) return 'number';
  if (stream.match('#{')) {
    // Opens a brace like `{`: an interpolation ends only at its own `}`.
    if (typeof top === 'number') state.stack[state.stack.length - 1] = top + 1;
    return 'brace';
  }
  if (stream.match(/^[A-Za-z_][A-Za-z0-9_]*/)) {
    const word = stream.current();
    const afterFn = state.afterFn;
    state.afterFn = word === 'fn';
    if (KEYWORDS.has(word)) return 'keyword';
    if (ATOMS.has(word)) return 'bool';
    if (afterFn) return 'definition(variableName)';
    if (stream.match(/^\s*\(/, false)) return 'function(variableName)';
    return 'variableName';
  }
  const ch = stream.next()!;
  if ('{}[]()'.includes(ch)) return 'bracket';
  if (/[+\-*/%=<>!&|^~?:.]/.test(ch)) {
    stream.eatWhile(/[+\-*/%=<>!&|^~?:.]/);
    return 'operator';
  }
  return 'punctuation';
}

export const rhai: StreamParser<RhaiState> = {
  name: 'rhai',
  startState: () => ({ comment: 0, quoted: false, stack: [], afterFn: false }),
  copyState: (s) => ({ ...s, stack: [...s.stack] }),
  token(stream, state) {
    if (state.comment > 0) return blockComment(stream, state);
    if (state.quoted) {
      state.quoted = !quoted(stream);
      return 'string';
    }
    if (state.stack[state.stack.length - 1] === '`') return backtick(stream, state);
    return code(stream, state);
  },
  languageData: { commentTokens: { line: '//', block: { open: '/*', close: '*/' } } },
};
