/**
 * Script diagnostics (the wasm checker's and the server's `POST …/scripts/check`, same shape) for
 * the editor: as text for the accessible list under it, and as document ranges for its lint marks.
 * Pure.
 */
import type { Diagnostic } from './checker';

/** `Line 3, column 5: message`; a diagnostic without a position (line 0) is its message alone. */
export function diagnosticText(d: Pick<Diagnostic, 'line' | 'column' | 'message'>): string {
  if (d.line <= 0) return d.message;
  return d.column > 0 ? `Line ${d.line}, column ${d.column}: ${d.message}` : `Line ${d.line}: ${d.message}`;
}

/** In document order (no position first), a copy. */
export function sortDiagnostics<T extends Pick<Diagnostic, 'line' | 'column'>>(list: readonly T[]): T[] {
  return [...list].sort((a, b) => a.line - b.line || a.column - b.column);
}

/**
 * The range `[from, to)` in `source` (UTF-16 offsets, as the editor counts) a diagnostic marks: from
 * its column (counted in characters, as Rhai counts them) to the end of the word there, at least
 * one character, clamped to the line; the whole first line when it has no position; past the end
 * of a too-short document, its end.
 */
export function diagnosticRange(source: string, d: Pick<Diagnostic, 'line' | 'column'>): { from: number; to: number } {
  const lines = source.split('\n');
  if (d.line <= 0) return { from: 0, to: lines[0]!.length };
  if (d.line > lines.length) return { from: source.length, to: source.length };
  let start = 0;
  for (let i = 0; i < d.line - 1; i++) start += lines[i]!.length + 1;
  const text = lines[d.line - 1]!;
  // Characters to UTF-16 units: walk the line by code point.
  let col = 0;
  let unit = 0;
  for (const ch of text) {
    if (col >= Math.max(0, d.column - 1)) break;
    col++;
    unit += ch.length;
  }
  const word = /^[\p{L}\p{N}_]+/u.exec(text.slice(unit));
  const len = word ? word[0].length : Math.min(1, text.length - unit);
  if (unit >= text.length) return { from: start + Math.max(0, text.length - 1), to: start + text.length };
  return { from: start + unit, to: start + unit + Math.max(1, len) };
}
