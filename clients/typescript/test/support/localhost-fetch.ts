// The README's Node recipe for `*.localhost` URLs, verbatim between the markers (with
// '@picloud/client' for '../../src/index'; test/unit/readme.test.ts checks that they match). Every
// e2e test connects through it, so the recipe the README shows is the one that is run.
// --- README: node-localhost ---
import { lookup } from 'node:dns';
import { Agent, fetch } from 'undici'; // npm install undici@6 (what the tests run; Node 18+)
import type { FetchLike } from '../../src/index';

// Node does not resolve `*.localhost` (browsers do): connect those names to 127.0.0.1. The URL,
// and so the Host header, stay `demo.localhost:<port>`.
const dispatcher = new Agent({
  connect: { lookup: (host, options, cb) => lookup(host.endsWith('.localhost') ? '127.0.0.1' : host, options, cb) },
});
// (undici's Request/Response types are its own, not the DOM's that FetchLike uses: hence the cast.)
export const localhostFetch = ((url: string, init?: object) => fetch(url, { ...init, dispatcher })) as unknown as FetchLike;
// --- end ---
