/** Search and sort for tables (the topics table first). Pure. */
export type SortDir = 'asc' | 'desc';

export interface Sort<K extends string> {
  key: K;
  dir: SortDir;
}

/** Clicking a column: the same column flips direction, another starts ascending. */
export function toggleSort<K extends string>(cur: Sort<K>, key: K): Sort<K> {
  return cur.key === key ? { key, dir: cur.dir === 'asc' ? 'desc' : 'asc' } : { key, dir: 'asc' };
}

const cmp = (a: unknown, b: unknown): number => {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  return String(a).localeCompare(String(b), 'en');
};

/** Rows whose `searchKey` holds `query` (case-insensitive), sorted stably by `sort`. */
export function searchSort<R, K extends string & keyof R>(rows: readonly R[], query: string, searchKey: keyof R, sort: Sort<K>): R[] {
  const q = query.trim().toLowerCase();
  const kept = q ? rows.filter((r) => String(r[searchKey]).toLowerCase().includes(q)) : [...rows];
  const sign = sort.dir === 'asc' ? 1 : -1;
  return kept
    .map((r, i) => [r, i] as const)
    .sort(([a, i], [b, j]) => sign * cmp(a[sort.key], b[sort.key]) || i - j)
    .map(([r]) => r);
}
