/**
 * The tail's filter box. Two forms:
 *   - `path = <JSON value>`: the message's value at `path` equals the value, e.g. `user.name = "ann"`,
 *     `items[0].n = 3`, `ok = true`, `$.a.b = null`. Paths start at the published message (`$` optional).
 *   - anything else: a case-insensitive substring of the message's compact JSON (or its topic).
 * An empty box matches everything. Pure.
 */
export type Filter =
  | { kind: 'all' }
  | { kind: 'substring'; text: string }
  | { kind: 'path'; path: (string | number)[]; value: unknown };

const PATH = /^\s*(\$?(?:\.?[A-Za-z_$][\w$-]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])*)\s*={1,2}\s*(.+?)\s*$/s;

/** Splits `a.b[0]["x y"]` into `['a', 'b', 0, 'x y']`; null if it is not a path. */
export function parsePath(src: string): (string | number)[] | null {
  let s = src.trim();
  if (s.startsWith('$')) s = s.slice(1);
  const out: (string | number)[] = [];
  const re = /\.?([A-Za-z_$][\w$-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/y;
  let i = 0;
  while (i < s.length) {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) return null;
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(JSON.parse(m[3]!) as string);
    i = re.lastIndex;
  }
  return out.length ? out : null;
}

export function parseFilter(text: string): Filter {
  if (!text.trim()) return { kind: 'all' };
  const m = PATH.exec(text);
  if (m) {
    const path = parsePath(m[1]!);
    if (path) {
      try {
        return { kind: 'path', path, value: JSON.parse(m[2]!) as unknown };
      } catch {
        // not a JSON value: a plain substring search
      }
    }
  }
  return { kind: 'substring', text: text.trim().toLowerCase() };
}

export function valueAt(v: unknown, path: readonly (string | number)[]): unknown {
  let cur = v;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    if (typeof k === 'number') {
      if (!Array.isArray(cur)) return undefined;
      cur = cur[k];
    } else {
      if (Array.isArray(cur) || !Object.prototype.hasOwnProperty.call(cur, k)) return undefined;
      cur = (cur as Record<string, unknown>)[k];
    }
  }
  return cur;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return (
    ka.length === kb.length &&
    ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  );
}

/** What the filter needs of an entry. */
export interface Filterable {
  topic: string;
  message: unknown;
  raw: string;
}

export function matches(f: Filter, e: Filterable): boolean {
  switch (f.kind) {
    case 'all':
      return true;
    case 'substring':
      return e.raw.toLowerCase().includes(f.text) || e.topic.toLowerCase().includes(f.text);
    case 'path': {
      const v = valueAt(e.message, f.path);
      return v !== undefined && deepEqual(v, f.value);
    }
  }
}
