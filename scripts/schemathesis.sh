#!/usr/bin/env bash
# Checks that /openapi.json is exact: Schemathesis (pinned in tests/schemathesis/requirements.txt) runs every
# check against a spawned `pronto serve`, once on SQLite and once on PostgreSQL, with both credentials, and
# fails on any 5xx, any response the document does not describe, and any request the document calls valid
# that the server refuses (or the reverse).
# Usage: scripts/schemathesis.sh   (after `cargo build -p pronto`; scripts/test.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/schemathesis-venv
if [[ ! -x "$venv/bin/schemathesis" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/schemathesis/requirements.txt

bin=target/debug/pronto
[[ -x "$bin" ]] || cargo build -p pronto --locked
pg_admin="${PRONTO_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
reports="${SCHEMATHESIS_REPORTS:-target/schemathesis}"
mkdir -p "$reports"

export PRONTO_WRITE_KEY=pk_write_schemathesis_0001
export PRONTO_ADMIN_KEY=pk_admin_schemathesis_0001
export PRONTO_INBOUND_EMAIL_SECRET=schemathesis-inbound-secret-0001
export PRONTO_SMS_AUTH_TOKEN=schemathesis-sms-token
export PRONTO_SHOPIFY_SECRET=schemathesis-shopify-secret
export PRONTO_WOO_SECRET=schemathesis-woo-secret

export PRONTO_MAILGUN_SIGNING_KEY=schemathesis-mailgun-key
# SendGrid signs its events with a P-256 key only it holds; here a key of our own, which hooks.py signs with.
keys=$(mktemp -d)
export SENDGRID_TEST_KEY="$keys/sendgrid.pem"
openssl ecparam -name prime256v1 -genkey -noout -out "$SENDGRID_TEST_KEY"
sendgrid_public=$(openssl ec -in "$SENDGRID_TEST_KEY" -pubout -outform DER 2>/dev/null | base64 -w0)
trap 'rm -rf "$keys"' EXIT

status=0
for backend in sqlite postgres; do
  work=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export PRONTO_PUBLIC_URL="http://127.0.0.1:$port"
  # The shipped example, with two shops (hooks.py signs their webhooks) and an SMS provider (so the inbound
  # webhooks are signed and reach their logic) that nothing listens for, and the lead limits raised for a fuzzer
  # posting hundreds of leads from one address.
  { cat pronto.example.toml
    printf '\n[inbound]\nsendgrid_public_key = "%s"\n' "$sendgrid_public"
    printf '\n[sms]\nbase_url = "http://127.0.0.1:9"\naccount_sid = "AC0001"\nfrom = "+15005550006"\n'
    printf '\n[[shop]]\nplatform = "shopify"\nshop = "schemathesis.myshopify.com"\nsecret_env = "PRONTO_SHOPIFY_SECRET"\n'
    printf '\n[[shop]]\nplatform = "woocommerce"\nshop = "https://schemathesis.example/"\nsecret_env = "PRONTO_WOO_SECRET"\n'
    # A flow with variants, so a promotion has something to promote.
    printf '\n[[flow]]\nid = "schemathesis-experiment"\ntrigger = { event = "Schemathesis Experiment" }\n'
    printf 'experiment = { id = "e1", holdout = "10%%", variants = [{ id = "a" }, { id = "b" }] }\n'
    printf '[[flow.step]]\nwait = "1h"\nvariants = { b = { wait = "2h" } }\n'
  } | sed -e 's/^rate_limit_per_minute = 20/rate_limit_per_minute = 100000/' \
          -e 's/^leads_per_ip_per_minute = 60/leads_per_ip_per_minute = 0/' \
          -e 's/^leads_per_recipient_per_hour = 10/leads_per_recipient_per_hour = 0/' > "$work/pronto.toml"
  if [[ $backend == postgres ]]; then
    db="pronto_schemathesis_$$"
    psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    url="${pg_admin%/*}/$db"
  else
    url="sqlite://$work/pronto.db"
  fi
  (cd "$work" && RUST_LOG=warn DATABASE_URL="$url" PRONTO_LISTEN="127.0.0.1:$port" PRONTO_CONFIG="$work/pronto.toml" \
     exec "$OLDPWD/$bin" serve > "$work/server.log" 2>&1) &
  server=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" > /dev/null && break; sleep 0.1; done
  echo "scripts/schemathesis.sh: $backend"
  SCHEMATHESIS_REPORTS="$reports/$backend" "$venv/bin/schemathesis" --no-color \
    --config-file tests/schemathesis/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" || status=1
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  if grep -q "panicked" "$work/server.log"; then echo "the server panicked:"; cat "$work/server.log"; status=1; fi
  if [[ $backend == postgres ]]; then psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"; fi
  rm -rf "$work"
done
exit $status
