/**
 * The route table and path matching: one URL per page, under the base `/_/` (history API, no
 * hash). Pure: the navigation side (pushState, link clicks) lives in stores/route.svelte.ts.
 */
export type RouteName = 'signIn' | 'overview' | 'apps' | 'app' | 'topics' | 'topic' | 'deadLetters' | 'scripts' | 'script' | 'logs' | 'wiring' | 'keys' | 'secrets' | 'notFound';

export interface Match {
  name: RouteName;
  params: Record<string, string>;
}

const TABLE: [RouteName, string][] = [
  ['signIn', '/sign-in'],
  ['overview', '/'],
  ['apps', '/apps'],
  ['app', '/apps/:app'],
  ['topics', '/apps/:app/topics'],
  ['topic', '/apps/:app/topics/:topic'],
  ['secrets', '/apps/:app/secrets'],
  ['deadLetters', '/apps/:app/dead-letters'],
  ['scripts', '/apps/:app/scripts'],
  ['script', '/apps/:app/scripts/:script'],
  ['logs', '/apps/:app/logs'],
  ['wiring', '/apps/:app/wiring'],
  ['keys', '/keys'],
];

export const BASE = '/_';

/** Matches an in-app path (without the base, e.g. `/apps/demo/topics`). */
export function match(path: string): Match {
  const parts = path.replace(/\/+$/, '').split('/').filter(Boolean);
  for (const [name, pattern] of TABLE) {
    const want = pattern.split('/').filter(Boolean);
    if (want.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < want.length; i++) {
      const w = want[i]!;
      const p = parts[i]!;
      if (w.startsWith(':')) {
        try {
          params[w.slice(1)] = decodeURIComponent(p);
        } catch {
          ok = false;
        }
      } else if (w !== p) ok = false;
      if (!ok) break;
    }
    if (ok) return { name, params };
  }
  return { name: 'notFound', params: {} };
}

/** The in-app path of a browser pathname (`/_/apps` → `/apps`), or null when outside the base. */
export function strip(pathname: string): string | null {
  if (pathname === BASE || pathname === `${BASE}/`) return '/';
  if (!pathname.startsWith(`${BASE}/`)) return null;
  return pathname.slice(BASE.length);
}

/** Builds an href from path segments, encoding each: `href('apps', slug, 'topics')` → `/_/apps/demo/topics`. */
export function href(...segments: string[]): string {
  return `${BASE}/${segments.map(encodeURIComponent).join('/')}`;
}
