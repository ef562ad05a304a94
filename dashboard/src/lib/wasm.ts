// The checker's WebAssembly build, reached only through checker.ts's dynamic import (its own chunk).
export { checkScript, cronNext, topicPatternMatches, validateTopic, validateTriggerFilter } from '@picloud/client/wasm';
