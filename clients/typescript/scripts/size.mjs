// Measures the built entries minified + gzipped (what an app bundler ships) and enforces the
// core budget: ≤ 8 KB (8192 bytes) min+gzip for `@picloud/client` without eventsource-parser.
// Usage: node scripts/size.mjs [--json]
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';

const BUDGET = 8192;
async function measure(entry, external) {
  const r = await build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    format: 'esm',
    write: false,
    platform: 'browser',
    external,
    logLevel: 'silent',
  });
  const code = r.outputFiles[0].contents;
  return { min: code.length, gzip: gzipSync(code, { level: 9 }).length };
}
const peers = ['react', 'svelte', 'svelte/store', 'eventsource-parser'];
const rows = {
  'core (dist/index.js)': await measure('dist/index.js', peers),
  'core + eventsource-parser': await measure('dist/index.js', peers.filter((p) => p !== 'eventsource-parser')),
  'react (dist/react.js)': await measure('dist/react.js', peers),
  'svelte (dist/svelte.js)': await measure('dist/svelte.js', peers),
  // The checker: the .wasm inlined as base64. Reported, no budget; only pages that import it pay.
  'wasm (dist/wasm.js)': await measure('dist/wasm.js', peers),
};
if (process.argv.includes('--json')) console.log(JSON.stringify(rows));
else for (const [k, v] of Object.entries(rows)) console.log(`${k.padEnd(28)} min ${String(v.min).padStart(6)} B   min+gzip ${String(v.gzip).padStart(5)} B`);
const core = rows['core (dist/index.js)'].gzip;
if (core > BUDGET) {
  console.error(`core entry is ${core} B min+gzip, over the ${BUDGET} B budget`);
  process.exit(1);
}
console.log(`core budget: ${core} B ≤ ${BUDGET} B`);
