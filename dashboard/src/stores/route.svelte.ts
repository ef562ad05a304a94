/**
 * Navigation: the current route from `location.pathname` (history API, base `/_/`), same-origin
 * `<a href="/_/…">` clicks turned into pushState, and back/forward via popstate. Links stay real
 * links (open in a new tab, copy address all work).
 */
import { BASE, match, strip, type Match } from '../lib/router';

class Route {
  current = $state<Match>(match(strip(location.pathname) ?? '/'));
  path = $state<string>(strip(location.pathname) ?? '/');

  private sync(): void {
    this.path = strip(location.pathname) ?? '/';
    this.current = match(this.path);
  }

  /** Goes to an in-app path (`/apps/demo`); `replace` for redirects. */
  go(path: string, replace = false): void {
    const url = `${BASE}${path === '/' ? '/' : path}`;
    if (url !== location.pathname + location.search) (replace ? history.replaceState : history.pushState).call(history, null, '', url);
    this.sync();
    if (!replace) window.scrollTo(0, 0);
  }

  /** The in-app path in `?next=` (set when sign-in interrupted a deep link); never another origin. */
  next(): string | null {
    const n = new URLSearchParams(location.search).get('next');
    return n && n.startsWith('/') && !n.startsWith('//') && strip(`${BASE}${n}`) !== null ? n : null;
  }

  start(): void {
    window.addEventListener('popstate', () => this.sync());
    document.addEventListener('click', (ev) => {
      if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
      const a = (ev.target as Element | null)?.closest?.('a');
      if (!a || a.target || a.hasAttribute('download')) return;
      const url = new URL(a.href, location.href);
      if (url.origin !== location.origin) return;
      const p = strip(url.pathname);
      if (p === null) return;
      ev.preventDefault();
      this.go(p);
    });
  }
}

export const route = new Route();
