import { describe, expect, it } from 'vitest';
import { diagnosticRange, diagnosticText, sortDiagnostics } from './diagnostics';

describe('diagnosticText', () => {
  it('says where, 1-based as given', () => {
    expect(diagnosticText({ line: 3, column: 5, message: "Expecting ';'" })).toBe("Line 3, column 5: Expecting ';'");
    expect(diagnosticText({ line: 2, column: 0, message: 'x' })).toBe('Line 2: x');
    expect(diagnosticText({ line: 0, column: 0, message: 'too long' })).toBe('too long');
  });
});

describe('sortDiagnostics', () => {
  it('orders by line then column, without changing the input', () => {
    const list = [
      { line: 3, column: 1 },
      { line: 1, column: 9 },
      { line: 1, column: 2 },
      { line: 0, column: 0 },
    ];
    expect(sortDiagnostics(list)).toEqual([
      { line: 0, column: 0 },
      { line: 1, column: 2 },
      { line: 1, column: 9 },
      { line: 3, column: 1 },
    ]);
    expect(list[0]).toEqual({ line: 3, column: 1 });
  });
});

describe('diagnosticRange', () => {
  const src = 'let a = 1;\nlet bee = ;\n';
  it('marks the word at the column', () => {
    expect(diagnosticRange(src, { line: 2, column: 5 })).toEqual({ from: 15, to: 18 });
    expect(src.slice(15, 18)).toBe('bee');
  });
  it('marks one character where no word starts', () => {
    const r = diagnosticRange(src, { line: 2, column: 11 });
    expect(src.slice(r.from, r.to)).toBe(';');
  });
  it('counts columns in characters, not UTF-16 units', () => {
    const s = 'let s = "😀"; oops';
    const r = diagnosticRange(s, { line: 1, column: 14 });
    expect(s.slice(r.from, r.to)).toBe('oops');
  });
  it('clamps past the end of a line and of the document', () => {
    expect(diagnosticRange('abc', { line: 1, column: 40 })).toEqual({ from: 2, to: 3 });
    expect(diagnosticRange('abc', { line: 7, column: 1 })).toEqual({ from: 3, to: 3 });
    expect(diagnosticRange('abc\n', { line: 2, column: 1 })).toEqual({ from: 4, to: 4 });
  });
  it('marks the first line when there is no position', () => {
    expect(diagnosticRange('first\nsecond', { line: 0, column: 0 })).toEqual({ from: 0, to: 5 });
  });
});
