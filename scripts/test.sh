#!/usr/bin/env bash
# Runs every test of pronto: installs the official Segment client libraries the end-to-end tests drive,
# checks PostgreSQL is reachable (the conformance suite runs against it; it is never skipped), then cargo test,
# then the web app in Debian's chromium (scripts/browser-tests.sh; chromium is required), then Schemathesis against a spawned server on SQLite and PostgreSQL (scripts/schemathesis.sh): the API
# document must match the server exactly.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

pg="${PRONTO_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
if ! psql "$pg" -Atc 'select 1' >/dev/null 2>&1; then
  echo "scripts/test.sh: PostgreSQL is not reachable at $pg (set PRONTO_TEST_POSTGRES)." >&2
  echo "  Start it, e.g.: pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start" >&2
  exit 1
fi

command -v node >/dev/null || { echo "scripts/test.sh: node is required for the Segment Node client test" >&2; exit 1; }
[[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || { echo "scripts/test.sh: Debian's chromium is required for the browser tests (apt-get install chromium)" >&2; exit 1; }
npm ci --prefix tests/clients/node --no-audit --no-fund --loglevel=error
python3 -m pip install --quiet --disable-pip-version-check -r tests/clients/python/requirements.txt -r tests/dkim/requirements.txt

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
# One closing line for the whole workspace (cargo prints one per test binary, the last being doc-tests).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
scripts/browser-tests.sh
scripts/schemathesis.sh
