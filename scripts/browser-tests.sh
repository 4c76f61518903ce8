#!/usr/bin/env bash
# The web app in a real browser: Debian's chromium driven by playwright-core (tests/browser), against a
# spawned `pronto serve` with a real SMTP server for the sign-in links. axe-core checks every page; the
# screenshots of each page at 390 and 1366 px are kept in target/screenshots (SCREENSHOTS overrides).
# Playwright's own browser download cannot be used here: the system chromium is required, never skipped.
# Usage: scripts/browser-tests.sh   (scripts/test.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/.."

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
  echo "scripts/browser-tests.sh: Debian's chromium is required at $CHROMIUM (apt-get install chromium)." >&2
  echo "  The browser tests cannot run without it." >&2
  exit 1
fi
cargo build -p pronto --locked --quiet
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
export SCREENSHOTS="${SCREENSHOTS:-$PWD/target/screenshots}"
node --test --test-reporter=spec tests/browser/
echo "scripts/browser-tests.sh: screenshots in $SCREENSHOTS"
