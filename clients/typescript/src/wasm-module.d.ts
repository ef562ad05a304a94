/** A `.wasm` file imported as its bytes (tsup's and vitest's binary loading, see tsup.config.ts). */
declare module '*.wasm' {
  const bytes: Uint8Array;
  export default bytes;
}
