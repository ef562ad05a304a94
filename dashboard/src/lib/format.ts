/** Display formats. */

/** A date-time as `2026-01-02 03:04:05` in local time, or '—'. */
export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A duration in seconds as `3 d 4 h 5 min`, `2 h 5 min 9 s`, `4 min 7 s` or `12 s` (seconds shown below a day, so an uptime visibly ticks). */
export function duration(secs: number): string {
  const s = Math.max(0, Math.floor(secs));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${h} h ${m} min`;
  if (h) return `${h} h ${m} min ${s % 60} s`;
  if (m) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

/** How long ago an instant was, at `nowMs`: `just now`, `5 min ago`, `3 h ago`, `2 d ago`; '—' when unknown. */
export function ago(iso: string | null | undefined, nowMs: number): string {
  if (!iso) return '—';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  const s = Math.floor((nowMs - t) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

const SIZE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** A size in bytes as `512 B`, `8.1 KiB`, `143 MiB`, `1.2 GiB` (binary units; one decimal below 100). */
export function size(bytes: number): string {
  let v = Math.max(0, Math.floor(bytes));
  let i = 0;
  while (i < SIZE_UNITS.length - 1 && v >= 1024) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${v} B`;
  let text = v.toFixed(v < 100 ? 1 : 0);
  // 1023.6 KiB would round to "1024 KiB": say 1.0 MiB instead.
  if (Number(text) >= 1024 && i < SIZE_UNITS.length - 1) {
    i++;
    text = (v / 1024).toFixed(1);
  }
  return `${text} ${SIZE_UNITS[i]}`;
}
