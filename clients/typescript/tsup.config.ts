import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', react: 'src/react.ts', svelte: 'src/svelte.ts', wasm: 'src/wasm.ts' },
  // The checker's .wasm is inlined as bytes: the wasm entry instantiates it synchronously.
  loader: { '.wasm': 'binary' },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'es2020',
  splitting: false,
  treeshake: true,
  external: ['react', 'svelte', 'svelte/store', 'eventsource-parser'],
});
