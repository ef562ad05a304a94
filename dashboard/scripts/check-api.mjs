// Fails when src/lib/api/schema.d.ts is not what openapi-typescript makes of ../docs/openapi.json
// (the committed types are stale): regenerate with `npm run gen:api` and commit.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const committed = join(root, 'src/lib/api/schema.d.ts');
const dir = mkdtempSync(join(tmpdir(), 'picloud-api-'));
const fresh = join(dir, 'schema.d.ts');
try {
  execFileSync(join(root, 'node_modules/.bin/openapi-typescript'), [join(root, '../docs/openapi.json'), '-o', fresh], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let old = '';
  try {
    old = readFileSync(committed, 'utf8');
  } catch {
    // missing: reported as stale below
  }
  if (old !== readFileSync(fresh, 'utf8')) {
    console.error('check:api: src/lib/api/schema.d.ts is stale: it differs from what docs/openapi.json generates.');
    console.error('check:api: run `npm run gen:api` in dashboard/ and commit the result.');
    process.exit(1);
  }
  console.log('check:api: src/lib/api/schema.d.ts matches docs/openapi.json');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
