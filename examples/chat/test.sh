#!/usr/bin/env bash
# Every check of the chat example, in order: npm ci, svelte-check and tsc (strict), unit tests,
# a rebuild that must equal the committed web/dist/ (deploying the example uploads web/dist as
# it is, with no Node), the e2e test against the real binary (the app deployed from picloud.toml),
# then the real-browser test (two Chromium profiles on http://chat.localhost:<port>/, the page
# uploaded as the app's static files: needs a binary with static hosting).
# Run with: examples/chat/test.sh   (PICLOUD_BIN=/path/to/picloud to choose the binary)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

step() { printf '\n==> %s\n' "$*"; }

PICLOUD_BIN="${PICLOUD_BIN:-$HOME/.cache/picloud/target/debug/picloud}"
[[ -x "$PICLOUD_BIN" ]] || { echo "error: picloud binary not found at $PICLOUD_BIN (build it, or set PICLOUD_BIN)" >&2; exit 1; }
export PICLOUD_BIN
export CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
../../scripts/ensure-chromium

# The client is a file: dependency (its dist/), and the tests use its test support (and its undici).
if [[ ! -f ../../clients/typescript/dist/index.js || ! -d ../../clients/typescript/node_modules ]]; then
  step "building @picloud/client (a file: dependency)"
  (cd ../../clients/typescript && npm ci --no-audit --no-fund --loglevel=error && npx tsup --silent)
fi

step "npm ci"
npm ci --no-audit --no-fund --loglevel=error

step "svelte-check + tsc (strict)"
npm run --silent check

step "unit tests"
npx vitest run --project unit

step "rebuild equals the committed web/dist/"
npm run --silent build >/dev/null
if ! git diff --quiet -- web/dist || [[ -n "$(git ls-files --others --exclude-standard -- web/dist)" ]]; then
  git status --short -- web/dist >&2
  echo "error: examples/chat/web/dist differs from a fresh build (or is not committed): run 'npm run build' in examples/chat/ and commit web/dist/" >&2
  exit 1
fi

step "e2e test (picloud: $PICLOUD_BIN)"
npx vitest run --project e2e

step "real-browser test (chromium: $CHROMIUM_BIN, picloud: $PICLOUD_BIN)"
npx vitest run --project browser

step "all chat example checks passed"
