/* tslint:disable */
/* eslint-disable */
export const memory: WebAssembly.Memory;
export const checkScript: (a: number, b: number, c: number, d: number) => [number, number];
export const cronNext: (a: number, b: number, c: number, d: number) => [number, number];
export const topicPatternMatches: (a: number, b: number, c: number, d: number) => [number, number];
export const validateTopic: (a: number, b: number) => [number, number];
export const validateTriggerFilter: (a: number, b: number, c: number, d: number) => [number, number];
export const __wbindgen_exn_store: (a: number) => void;
export const __externref_table_alloc: () => number;
export const __wbindgen_externrefs: WebAssembly.Table;
export const __wbindgen_malloc: (a: number, b: number) => number;
export const __wbindgen_realloc: (a: number, b: number, c: number, d: number) => number;
export const __wbindgen_free: (a: number, b: number, c: number) => void;
export const __wbindgen_start: () => void;
