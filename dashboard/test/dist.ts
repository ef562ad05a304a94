// DASHBOARD_DIST=<dir> (optional, for the browser test and the screenshots): the browser loads the
// dashboard's files from that build instead of the binary's embedded copy, under the headers the
// binary answers with (its CSP included); everything else still goes to the binary. To try a build
// before a binary embedding it exists. Unset, nothing changes.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import type { BrowserContext } from 'playwright-core';

export const DIST = process.env.DASHBOARD_DIST ? resolve(process.env.DASHBOARD_DIST) : null;

/**
 * Chromium flags for DASHBOARD_DIST: a page fulfilled by the test has no address of its own, so
 * Chromium would treat the binary's loopback `*.localhost` data plane as a more private network and
 * refuse the subscriber view's stream.
 */
export const DIST_ARGS = DIST ? ['--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights'] : [];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** Serves DIST's files for `<admin>/_/…` in `ctx` (nothing when DASHBOARD_DIST is unset). */
export async function serveDist(ctx: BrowserContext, admin: string): Promise<void> {
  const dir = DIST;
  if (!dir) return;
  const prefix = `${admin}/_/`;
  await ctx.route(
    (u) => u.href.startsWith(prefix),
    async (route) => {
      // Without the browser's validator: a 304 would carry no headers worth keeping.
      const { 'if-none-match': _validator, ...asked } = route.request().headers();
      const real = await route.fetch({ headers: asked });
      const rel = decodeURIComponent(new URL(route.request().url()).pathname.slice('/_/'.length));
      const file = join(dir, rel);
      const isFile = rel !== '' && !rel.includes('..') && existsSync(file) && statSync(file).isFile();
      const html = (real.headers()['content-type'] ?? '').startsWith('text/html');
      // A file of the build; the page for the app's own routes; anything else (a 404) as the binary answers.
      const path = isFile ? file : html ? join(dir, 'index.html') : null;
      if (!path) return route.fulfill({ response: real });
      const headers: Record<string, string> = { ...real.headers(), 'content-type': TYPES[extname(path)] ?? 'application/octet-stream', 'cache-control': 'no-store' };
      delete headers.etag;
      delete headers['content-length'];
      await route.fulfill({ status: 200, headers, body: readFileSync(path) });
    },
  );
}
