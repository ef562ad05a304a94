import { defineConfig } from 'vitest/config';

// `npm run measure:tail`: a load measurement of the live tail against the real binary in Chromium
// (not a test: it takes minutes and prints a report, so the test command does not run it).
export default defineConfig({
  test: {
    include: ['test/measure/**/*.ts'],
    environment: 'node',
    testTimeout: 60 * 60_000,
    hookTimeout: 180_000,
  },
});
