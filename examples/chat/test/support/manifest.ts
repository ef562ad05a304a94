// picloud.toml as the tests read it, and the example deployed to a test server with the real
// `picloud app deploy`.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'smol-toml';
import { BIN, type PiCloud } from '../../../../clients/typescript/test/support/picloud';

/** examples/chat/ */
export const EXAMPLE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface Manifest {
  slug: string;
  name: string;
  static: string;
  spa: boolean;
  topics: {
    name: string;
    auth_mode: 'public' | 'token';
    external_subscribable: boolean;
    description: string;
    retention: { max_messages?: number; max_age_secs?: number };
  }[];
  /** Script name → path of its source, relative to the manifest. */
  scripts: Record<string, string>;
  routes: { method: string; path: string; script: string }[];
  triggers: { kind: string; script: string; filter: Record<string, unknown>; enabled: boolean }[];
}

export function readManifest(dir = EXAMPLE_DIR): Manifest {
  return parse(readFileSync(join(dir, 'picloud.toml'), 'utf8')) as unknown as Manifest;
}

/** The source of each script, by name. */
export function scriptSources(m: Manifest, dir = EXAMPLE_DIR): Record<string, string> {
  return Object.fromEntries(Object.entries(m.scripts).map(([name, path]) => [name, readFileSync(join(dir, path), 'utf8')]));
}

/**
 * `picloud app deploy DIR` against a test server, as the README says to run it: the app, its
 * topics, scripts, routes, trigger and the built page as its static files. Returns the manifest
 * and what the command printed.
 */
export function deploy(pc: PiCloud, dir = EXAMPLE_DIR): { manifest: Manifest; printed: string } {
  const printed = execFileSync(BIN, ['app', 'deploy', dir], {
    env: { PATH: process.env.PATH ?? '', PICLOUD_URL: pc.admin, PICLOUD_ADMIN_KEY: pc.key },
    encoding: 'utf8',
  });
  return { manifest: readManifest(dir), printed };
}

/** Every file under `dir`, as paths relative to it with `/` separators, sorted. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p).split('\\').join('/'));
    }
  };
  walk(dir);
  return out.sort();
}
