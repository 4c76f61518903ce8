#!/usr/bin/env bash
# Reproduces every figure in BENCHMARKS.md on this machine: pronto's HTTP ingestion on SQLite (both durability
# settings) and PostgreSQL, and beside it each database's raw durable-insert limit; then durable timers
# (`pronto bench timers`) on SQLite and PostgreSQL beside graphile-worker 0.17.3 on the same PostgreSQL.
# Usage: scripts/bench.sh [ingest|timers|leads|shops]   (default all; PostgreSQL at $PRONTO_BENCH_POSTGRES, default
# postgres://postgres@127.0.0.1:5432). Ingest takes about 4 minutes, timers about 25.
set -euo pipefail
cd "$(dirname "$0")/.."
pg="${PRONTO_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
cargo build --release -q -p pronto
b=target/release/pronto
secs=8

fresh_pg() {
  psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS pronto_bench WITH (FORCE)" -c "CREATE DATABASE pronto_bench" >/dev/null
  echo "$pg/pronto_bench"
}

what="${1:-all}"

timers() {
  echo "== Timers, SQLite: 1,000,000 over 300 s, half cancelled; 10,000 at one instant; 2,000 carts end to end"
  $b bench timers --timers 1000000 --window 300 --burst 10000 --e2e 2000
  echo "== Timers, PostgreSQL: the same"
  $b bench timers --database-url "$(fresh_pg)" --timers 1000000 --window 300 --burst 10000 --e2e 2000
  echo "== The same workload at 100,000 timers on pronto (PostgreSQL) and on graphile-worker 0.17.3 (same PostgreSQL)"
  $b bench timers --database-url "$(fresh_pg)" --timers 100000 --window 60 --burst 10000 --e2e 0
  (cd bench/graphile && npm ci --no-audit --no-fund --silent && node bench.mjs "$(fresh_pg)" 100000 60 10000)
}

leads() {
  echo "== Speed to lead: lead 2xx → rep alert at an SMTP server, SQLite then PostgreSQL"
  $b bench leads --rates 100,250,500,1000
  $b bench leads --rates 1000 --alerts-only
  $b bench leads --database-url "$pg/postgres" --rates 100,1000
}

shops() {
  echo "== Shops: signed Shopify checkouts/create deliveries into recovery runs; delivery → email at SMTP at 200/s"
  $b bench shops --seconds $secs
  $b bench shops --seconds $secs --database-url "$pg/postgres"
  echo "== Shops with a 1,000-product catalog: every recovery email carries two recommendations"
  $b bench shops --seconds $secs --catalog 1000
  $b bench shops --seconds $secs --catalog 1000 --database-url "$pg/postgres"
}

if [ "$what" = timers ]; then timers; exit 0; fi
if [ "$what" = leads ]; then leads; exit 0; fi
if [ "$what" = shops ]; then shops; exit 0; fi

for sync in full normal; do
  echo "== SQLite, synchronous=$sync"
  $b bench ingest --sqlite-sync $sync --seconds $secs --concurrency 64
  $b bench ingest --sqlite-sync $sync --seconds $secs --concurrency 16 --batch 100
  $b bench ingest --sqlite-sync $sync --seconds $secs --concurrency 256 --rate 1000
  $b bench raw --sqlite-sync $sync --seconds 4
  $b bench raw --sqlite-sync $sync --seconds 4 --rows-per-commit 1000
  # The same without sqlx in the way: SQLite's C library through Python's sqlite3 module.
  for rows in 1 1000; do
    python3 - "$sync" "$rows" <<'PY'
import os, sqlite3, sys, tempfile, time
sync, rows = sys.argv[1], int(sys.argv[2])
path = os.path.join(tempfile.mkdtemp(), "native.db")
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute(f"PRAGMA synchronous={sync}")
db.execute("CREATE TABLE bench_raw (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
payload, commits, start = "x" * 400, 0, time.perf_counter()
while time.perf_counter() - start < 4:
    db.execute("BEGIN")
    for _ in range(rows):
        db.execute("INSERT INTO bench_raw (payload) VALUES (?)", (payload,))
    db.execute("COMMIT"); commits += 1
secs = time.perf_counter() - start
print(f"native sqlite3 (synchronous={sync}), {rows} row(s)/commit: {commits/secs:.0f} commits/s, {commits*rows/secs:.0f} rows/s")
PY
  done
done

echo "== PostgreSQL (synchronous_commit=$(psql "$pg/postgres" -Atc 'show synchronous_commit'))"
$b bench ingest --database-url "$(fresh_pg)" --seconds $secs --concurrency 64
$b bench ingest --database-url "$(fresh_pg)" --seconds $secs --concurrency 16 --batch 100
$b bench ingest --database-url "$(fresh_pg)" --seconds $secs --concurrency 256 --rate 1000
$b bench raw --database-url "$(fresh_pg)" --seconds 4 --clients 1
$b bench raw --database-url "$(fresh_pg)" --seconds 4 --clients 8
$b bench raw --database-url "$(fresh_pg)" --seconds 4 --clients 1 --rows-per-commit 100
if command -v pgbench >/dev/null; then
  db="$(fresh_pg)"
  psql "$db" -qc "CREATE TABLE bench_raw (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload TEXT NOT NULL)"
  script=$(mktemp)
  echo "INSERT INTO bench_raw (payload) VALUES (repeat('x', 400));" > "$script"
  for c in 1 8; do
    echo "pgbench single-row insert, $c client(s): $(pgbench -n -c $c -j 2 -T 4 -f "$script" "$db" 2>/dev/null | grep -E '^tps')"
  done
  rm -f "$script"
fi
psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS pronto_bench WITH (FORCE)" >/dev/null
if [ "$what" = all ]; then timers; leads; shops; fi
