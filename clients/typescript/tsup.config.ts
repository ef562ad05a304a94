import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', react: 'src/react.ts', svelte: 'src/svelte.ts', wasm: 'src/wasm.ts' },
  // The checker's .wasm is inlined as bytes: the wasm entry instantiates it synchronously.
  loader: { '.wasm': 'binary' },
  // Neutral: the inlined bytes are decoded without Node's Buffer, so the same file works in
  // browsers (the other entries use no platform API either).
  platform: 'neutral',
  // wasm-bindgen's async loader (unused: the entry instantiates synchronously) names its file
  // by import.meta.url, which CJS lacks and bundlers warn about.
  define: { 'import.meta.url': 'undefined' },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'es2020',
  splitting: false,
  treeshake: true,
  external: ['react', 'svelte', 'svelte/store', 'eventsource-parser'],
});
