/**
 * Resume positions (`id:` lines). One topic: a bare seq (`42`); several: `name=seq` pairs sorted
 * by name and joined by `,` (`a=2,b.x=1`). The server accepts the pair form for one topic too, so
 * this client always sends pairs; it reads both. Topic names cannot contain `=` or `,`.
 */
export function parsePosition(id: string | undefined, topics: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  if (!id) return out;
  if (/^\d+$/.test(id)) {
    if (topics.length === 1) out[topics[0]!] = +id;
    return out;
  }
  for (const pair of id.split(',')) {
    const i = pair.lastIndexOf('=');
    const seq = pair.slice(i + 1);
    if (i > 0 && /^\d+$/.test(seq) && topics.includes(pair.slice(0, i))) out[pair.slice(0, i)] = +seq;
  }
  return out;
}

export function formatPosition(pos: ReadonlyMap<string, number>, topics: Iterable<string>): string {
  return [...topics]
    .filter((t) => pos.has(t))
    .sort()
    .map((t) => `${t}=${pos.get(t)}`)
    .join(',');
}
