#!/usr/bin/env bash
# Every check of @picloud/client, in order: Chromium (installed if missing), npm ci (its `prepare`
# builds dist/), typecheck, build, attw, size budget, unit tests, install tests (the README's
# install, with real npm), e2e tests against the real picloud binary, real-browser test.
# Run with: clients/typescript/test.sh   (PICLOUD_BIN=/path/to/picloud to choose the binary)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

step() { printf '\n==> %s\n' "$*"; }

PICLOUD_BIN="${PICLOUD_BIN:-$HOME/.cache/picloud/target/debug/picloud}"
if [[ ! -x "$PICLOUD_BIN" ]]; then
  echo "error: picloud binary not found or not executable at $PICLOUD_BIN (build it, or set PICLOUD_BIN)" >&2
  exit 1
fi
export PICLOUD_BIN

export CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
../../scripts/ensure-chromium

step "npm ci"
npm ci --no-audit --no-fund --loglevel=error

step "typecheck (tsc --noEmit, strict)"
npx tsc --noEmit -p .

step "build (tsup: ESM + CJS + d.ts)"
npx tsup --silent

step "attw --pack"
npx attw --pack .

step "size budget"
node scripts/size.mjs

step "unit tests"
npx vitest run --project unit

step "install tests (npm pack / npm install into throwaway apps)"
npx vitest run --project install

step "e2e tests (real picloud: $PICLOUD_BIN)"
npx vitest run --project e2e

step "real-browser test (chromium: $CHROMIUM_BIN)"
npx vitest run --project browser

step "all @picloud/client checks passed"
