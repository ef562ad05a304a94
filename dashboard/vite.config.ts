import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vitest/config';

// The build is committed and embedded in the picloud binary, served under /_/. Asset names carry no
// content hash so a rebuild rewrites the same files instead of adding new ones to git; the output
// is deterministic (same sources, same bytes), which `npm run build` twice + sha256sum verifies.
const target = process.env.PICLOUD_URL ?? 'http://localhost:8080';
const proxy = Object.fromEntries(['/api', '/readyz', '/healthz', '/health', '/realtime'].map((p) => [p, { target, changeOrigin: false }]));

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
    rollupOptions: {
      output: {
        // Libraries used by lazy pages get fixed chunk names (a shared chunk would otherwise be named
        // after whichever module rollup meets first, e.g. `index2.js`).
        manualChunks: (id) => (id.includes('/node_modules/uplot/') ? 'uplot' : /\/clients\/typescript\/|\/eventsource-parser\//.test(id) ? 'picloud-client' : undefined),
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
