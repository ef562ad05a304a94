import { defineConfig } from 'vitest/config';

// The real-browser test: Debian's Chromium (playwright-core, no browser download) against the
// real picloud binary serving the embedded dashboard. Run by test.sh after the unit tests.
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    environment: 'node',
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});
