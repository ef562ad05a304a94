// Shows that the README's Install section works (issue 25: `npm install @picloud/client` failed,
// the package is not in a registry, and `dist/` is not committed). On a copy of the package as a
// clone has it (no dist/), with its dependencies in place (a symlink to ours stands in for the
// `npm ci` the README asks for, to stay offline and fast):
// - `npm pack` runs `prepare`, which builds dist/, and the tarball carries it;
// - `npm install <tarball>` in an app gives a package that loads from CommonJS and ESM, including
//   the `@picloud/client/wasm` subpath, with its dependency installed in the app;
// - `npm install <folder>` links the folder (a symlink, not a copy) and loads the same way.
// Real npm and node processes; npm is asked to use its cache first (`--prefer-offline`).
import { execFile } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const PKG = resolve(__dirname, '../..');
const NPM = ['--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];
const env = { ...process.env, npm_config_update_notifier: 'false' };

let tmp: string;
let copy: string;
let tarball: string;

const sh = async (cmd: string, args: string[], cwd: string) => (await run(cmd, args, { cwd, env, timeout: 50_000 })).stdout;

/** A fresh app project with only a package.json. */
function app(name: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }));
  return dir;
}

/** What a user's code sees: both module systems, the core entry and the wasm subpath. */
async function loads(dir: string): Promise<void> {
  const cjs = await sh(
    'node',
    ['-e', "const c = require('@picloud/client'); const w = require('@picloud/client/wasm'); console.log(typeof c.createClient, typeof c.PiCloudError, typeof w.checkScript)"],
    dir,
  );
  expect(cjs.trim()).toBe('function function function');
  const esm = await sh(
    'node',
    [
      '--input-type=module',
      '-e',
      "import { createClient } from '@picloud/client'; import { checkScript } from '@picloud/client/wasm'; console.log(typeof createClient, typeof checkScript, createClient({ url: 'http://demo.localhost:1/' }).url)",
    ],
    dir,
  );
  expect(esm.trim()).toBe('function function http://demo.localhost:1');
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'picloud-install-'));
  copy = join(tmp, 'client');
  // What a clone holds: sources and config, no dist/, no node_modules, no tarballs.
  cpSync(PKG, copy, {
    recursive: true,
    filter: (src) => !/^(node_modules|dist|test)(\/|$)|\.tgz$/.test(relative(PKG, src)),
  });
  expect(existsSync(join(copy, 'dist'))).toBe(false);
  symlinkSync(join(PKG, 'node_modules'), join(copy, 'node_modules'), 'dir');
  const out = await sh('npm', ['pack', '--json', '--loglevel=error', '--pack-destination', tmp], copy);
  const [info] = JSON.parse(out.slice(out.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  tarball = join(tmp, info!.filename);
  const files = info!.files.map((f) => f.path);
  expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/wasm.js', 'dist/wasm.cjs', 'wasm/package.json']));
}, 60_000);
afterAll(() => tmp && rmSync(tmp, { recursive: true, force: true }));

describe('install as the README says', () => {
  it('npm pack builds dist/ through prepare', () => {
    expect(readdirSync(join(copy, 'dist'))).toEqual(expect.arrayContaining(['index.js', 'index.cjs', 'react.js', 'svelte.js', 'wasm.js']));
    expect(existsSync(tarball)).toBe(true);
  });

  it('installs the tarball into an app: a copy with its dependency', async () => {
    const dir = app('tarball-app');
    await sh('npm', ['install', ...NPM, tarball], dir);
    const installed = join(dir, 'node_modules/@picloud/client');
    expect(lstatSync(installed).isSymbolicLink()).toBe(false);
    expect(existsSync(join(dir, 'node_modules/eventsource-parser/package.json'))).toBe(true);
    await loads(dir);
  });

  it('installs the folder into an app: a link to the built folder', async () => {
    const dir = app('folder-app');
    await sh('npm', ['install', ...NPM, copy], dir);
    const installed = join(dir, 'node_modules/@picloud/client');
    expect(lstatSync(installed).isSymbolicLink()).toBe(true);
    expect(realpathSync(installed)).toBe(realpathSync(copy));
    await loads(dir);
  });
});
