#!/usr/bin/env bash
# Every check of the dashboard, in order: npm ci, generated API types up to date, svelte-check
# and tsc (strict), unit tests, a rebuild that must equal the committed dist/ (the binary
# embeds dist/, so what is committed is what ships), then the real-browser test against the
# real binary (which must have been built from this dist/).
# Run with: dashboard/test.sh   (PICLOUD_BIN=/path/to/picloud to choose the binary)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

step() { printf '\n==> %s\n' "$*"; }

PICLOUD_BIN="${PICLOUD_BIN:-$HOME/.cache/picloud/target/debug/picloud}"
[[ -x "$PICLOUD_BIN" ]] || { echo "error: picloud binary not found at $PICLOUD_BIN (build it, or set PICLOUD_BIN)" >&2; exit 1; }
export PICLOUD_BIN
export CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
../scripts/ensure-chromium

# The client is a file: dependency (its dist/), and the browser test uses its test support.
if [[ ! -f ../clients/typescript/dist/index.js || ! -d ../clients/typescript/node_modules ]]; then
  step "building @picloud/client (a file: dependency)"
  (cd ../clients/typescript && npm ci --no-audit --no-fund --loglevel=error && npx tsup --silent)
fi

step "npm ci"
npm ci --no-audit --no-fund --loglevel=error

step "generated API types match docs/openapi.json"
npm run --silent check:api

step "svelte-check + tsc (strict)"
npm run --silent check

step "unit tests"
npx vitest run

step "rebuild equals the committed dist/"
npm run --silent build >/dev/null
if ! git diff --quiet -- dist || [[ -n "$(git ls-files --others --exclude-standard -- dist)" ]]; then
  git status --short -- dist >&2
  echo "error: dashboard/dist differs from a fresh build: run 'npm run build' in dashboard/ and commit dist/" >&2
  exit 1
fi

step "real-browser test (chromium: $CHROMIUM_BIN, picloud: $PICLOUD_BIN)"
npx vitest run -c vitest.browser.config.ts

step "all dashboard checks passed"
