import { defineConfig } from 'vitest/config';

// `npm run screenshots`: refreshes docs/dashboard/*.png from the real binary in Chromium (not a
// test: it writes files, so the test command does not run it).
export default defineConfig({
  test: {
    include: ['test/screenshots/**/*.ts'],
    environment: 'node',
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});
