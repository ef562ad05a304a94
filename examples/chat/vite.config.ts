import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// The page is built into web/dist/, which is committed: `picloud app deploy examples/chat` uploads
// it as it is, so deploying needs no Node. File names carry no content hash (a rebuild rewrites
// the same files instead of adding new ones to git) and the output is deterministic, which
// test.sh checks by rebuilding and comparing with what is committed.
//
// `npm run dev` serves the page with Vite and sends /api and /realtime to a running PiCloud
// (PICLOUD_URL, default http://127.0.0.1:8080) under the app's Host (PICLOUD_APP_HOST, default
// chat.localhost:8080): Node does not resolve `*.localhost` names, so connect by address.
const target = process.env.PICLOUD_URL ?? 'http://127.0.0.1:8080';
const host = process.env.PICLOUD_APP_HOST ?? 'chat.localhost:8080';
const proxy = Object.fromEntries(['/api', '/realtime'].map((p) => [p, { target, headers: { host } }]));

export default defineConfig({
  root: 'web',
  base: '/',
  // The page's sources are under web/ (the root), its Svelte config beside this file (svelte-check reads it there too).
  plugins: [svelte({ configFile: fileURLToPath(new URL('./svelte.config.js', import.meta.url)) })],
  server: { proxy },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    cssCodeSplit: false,
    modulePreload: { polyfill: false },
    rollupOptions: {
      output: {
        entryFileNames: 'assets/index.js',
        chunkFileNames: 'assets/[name].js',
        // With cssCodeSplit off Vite calls the one stylesheet style.css; index.css pairs it with index.js.
        assetFileNames: (a) => (a.names.includes('style.css') ? 'assets/index.css' : 'assets/[name][extname]'),
      },
    },
  },
  test: {
    root: '.',
    // Files run one at a time: each e2e file starts its own server, and the machine is shared.
    fileParallelism: false,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['web/src/**/*.test.ts', 'test/unit/**/*.test.ts'], environment: 'node', testTimeout: 20_000 },
      },
      {
        extends: true,
        test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], environment: 'node', testTimeout: 120_000, hookTimeout: 120_000 },
      },
      {
        extends: true,
        test: { name: 'browser', include: ['test/browser/**/*.test.ts'], environment: 'node', testTimeout: 180_000, hookTimeout: 180_000 },
      },
    ],
  },
});
