// Shows that the README's Node recipe for `*.localhost` URLs is the code the tests run: the block
// after the README's marker comment is test/support/localhost-fetch.ts between its markers (with
// the package name for the source path), and every e2e test connects through that file.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const read = (p: string) => readFileSync(resolve(__dirname, '../..', p), 'utf8');

describe('README', () => {
  it('shows the tested Node recipe verbatim', () => {
    const src = read('test/support/localhost-fetch.ts');
    const recipe = src
      .split('// --- README: node-localhost ---\n')[1]!
      .split('// --- end ---')[0]!
      .replace("'../../src/index'", "'@picloud/client'")
      .trimEnd();
    const readme = read('README.md');
    const block = /<!-- The block below is test\/support\/localhost-fetch\.ts[^\n]*-->\n```ts\n([\s\S]*?)\n```/.exec(readme);
    expect(block, 'the marked block in README.md').not.toBeNull();
    expect(block![1]).toBe(recipe);
  });
});
