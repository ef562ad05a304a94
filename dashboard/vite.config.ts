import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vitest/config';

// The build is committed and embedded in the picloud binary, served under /_/. Asset names carry no
// content hash so a rebuild rewrites the same files instead of adding new ones to git; the output
// is deterministic (same sources, same bytes), which `npm run build` twice + sha256sum verifies.
const target = process.env.PICLOUD_URL ?? 'http://localhost:8080';
const proxy = Object.fromEntries(['/api', '/readyz', '/healthz', '/health', '/realtime'].map((p) => [p, { target, changeOrigin: false }]));

/**
 * Libraries used by lazy pages get fixed chunk names (a shared chunk would otherwise be named after
 * whichever module rollup meets first, e.g. `index2.js`). The script editor is three: `codemirror`
 * (the editor and its Rhai mode), `codemirror-merge` (the diff view, loaded when one is opened) and
 * `checker-wasm` (the wasm script checker, loaded by the pages that check scripts or triggers).
 */
function manualChunks(id: string): string | undefined {
  if (id.includes('/node_modules/uplot/')) return 'uplot';
  if (/\/clients\/typescript\/dist\/wasm|\/src\/lib\/wasm\.ts$/.test(id)) return 'checker-wasm';
  if (/\/clients\/typescript\/|\/eventsource-parser\//.test(id)) return 'picloud-client';
  if (/\/node_modules\/@codemirror\/merge\/|\/src\/lib\/editor\/diff\.ts$/.test(id)) return 'codemirror-merge';
  if (/\/node_modules\/(@codemirror|@lezer|style-mod|w3c-keyname|crelt|@marijn)\/|\/src\/lib\/editor\//.test(id)) return 'codemirror';
  return undefined;
}

export default defineConfig({
  base: '/_/',
  plugins: [svelte()],
  server: { proxy },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    cssCodeSplit: false,
    modulePreload: { polyfill: false },
    // The checker chunk holds the script checker's WebAssembly inlined (~1.9 MB, ~0.6 MB gzipped),
    // loaded only by the pages that check scripts or triggers: not a warning for the shell.
    chunkSizeWarningLimit: 2000,
    rollupOptions: {
      output: {
        manualChunks,
        entryFileNames: 'assets/[name].js',
        chunkFileNames: 'assets/[name].js',
        // With cssCodeSplit off Vite calls the one stylesheet style.css; index.css pairs it with index.js.
        assetFileNames: (a) => (a.names.includes('style.css') ? 'assets/index.css' : 'assets/[name][extname]'),
      },
    },
  },
  // Component tests mount Svelte in a DOM: resolve Svelte's browser build under Vitest.
  resolve: process.env.VITEST ? { conditions: ['browser'] } : {},
  test: { include: ['src/**/*.test.ts'], environment: 'node' },
});
