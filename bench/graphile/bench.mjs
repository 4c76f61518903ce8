// The delayed-job workload of `pronto bench timers`, on graphile-worker 0.17.3 against the same PostgreSQL.
// Usage: node bench.mjs <postgres-url> [jobs=100000] [window-seconds=60] [burst=10000]
// N jobs with run_at spread over the window (one second apart per key mod window), every second one removed
// before it is due (the buyer case), then a burst all due at one instant. The task writes one outbox row
// (key, fired_at = now()), like pronto's timer writing its message. Lateness = fired_at - run_at.
import { Logger, run, runMigrations } from "graphile-worker";
import pg from "pg";

const [url, jobsArg, windowArg, burstArg] = process.argv.slice(2);
if (!url) {
  console.error("usage: node bench.mjs <postgres-url> [jobs] [window-seconds] [burst]");
  process.exit(2);
}
const jobs = Number(jobsArg ?? 100000);
const window = Number(windowArg ?? 60);
const burst = Number(burstArg ?? 10000);
const concurrency = 10;

const pool = new pg.Pool({ connectionString: url, max: concurrency + 4 });
pool.on("error", (e) => console.error("pool error:", e.message));
await runMigrations({ pgPool: pool });
await pool.query("drop table if exists bench_outbox; create table bench_outbox (key text primary key, fired_at timestamptz not null)");

async function schedule(keys, runAtOf) {
  const started = Date.now();
  for (let i = 0; i < keys.length; i += 1000) {
    const ks = keys.slice(i, i + 1000);
    // add_jobs: graphile-worker's bulk entry point (one call per 1,000 jobs), with job keys so they can be removed.
    await pool.query(
      `select graphile_worker.add_jobs(array(
         select row('recover', json_build_object('key', k), null, to_timestamp(t), null, k, null, null)::graphile_worker.job_spec
         from unnest($1::text[], $2::float8[]) as u(k, t)))`,
      [ks, ks.map(runAtOf)],
    );
  }
  return keys.length / ((Date.now() - started) / 1000);
}

async function fire(prefix, expected, dueOf) {
  const runner = await run({
    pgPool: pool,
    concurrency,
    noHandleSignals: true,
    logger: new Logger(() => () => {}),
    taskList: {
      recover: async (payload, helpers) => {
        await helpers.query("insert into bench_outbox (key, fired_at) values ($1, now())", [payload.key]);
      },
    },
  });
  const deadline = Date.now() + 3600_000;
  for (;;) {
    await new Promise((r) => setTimeout(r, 250));
    const { rows } = await pool.query("select count(*)::int as n from bench_outbox where key like $1", [prefix + "%"]);
    const { rows: left } = await pool.query("select count(*)::int as n from graphile_worker.jobs where key like $1", [prefix + "%"]);
    if ((rows[0].n >= expected && left[0].n === 0) || Date.now() > deadline) break;
  }
  await runner.stop();
  const { rows } = await pool.query(
    "select key, extract(epoch from fired_at)::float8 as at from bench_outbox where key like $1",
    [prefix + "%"],
  );
  const lateness = rows.map((r) => Math.max(0, r.at - dueOf(r.key)) * 1000).sort((a, b) => a - b);
  const q = (p) => lateness[Math.min(lateness.length - 1, Math.floor(p * lateness.length))] ?? 0;
  const ats = rows.map((r) => r.at);
  const span = Math.max(1e-3, Math.max(...ats) - Math.min(...ats));
  return { fired: rows.length, p50: q(0.5), p99: q(0.99), max: lateness[lateness.length - 1] ?? 0, rate: rows.length / span };
}

// graphile_worker.jobs has no `key` column in every version; job_key is the public name.
const keyColumn = await pool.query(
  "select 1 from information_schema.columns where table_schema = 'graphile_worker' and table_name = 'jobs' and column_name = 'key'",
);
if (keyColumn.rowCount === 0) {
  console.error("graphile_worker.jobs has no key column in this version; adjust the query");
  process.exit(1);
}

console.log(`graphile-worker 0.17.3: ${jobs} jobs over ${window} s, ${Math.floor(jobs / 2)} removed; burst ${burst}; concurrency ${concurrency}`);
const t0 = Date.now() / 1000 + 20 + jobs / 2000; // far enough ahead that scheduling and removal finish first
const idx = (k) => Number(k.slice(1));
const due = (k) => t0 + (idx(k) % (window * 10)) / 10; // spread per 100 ms, as pronto's bench
const keys = Array.from({ length: jobs }, (_, i) => `s${i}`);
const rate = await schedule(keys, due);
console.log(`  scheduled ${jobs} jobs: ${rate.toFixed(0)} /s`);
const cancelStart = Date.now();
const odd = keys.filter((_, i) => i % 2 === 1);
for (let i = 0; i < odd.length; i += 1000) {
  await pool.query("select graphile_worker.remove_job(k) from unnest($1::text[]) as k", [odd.slice(i, i + 1000)]);
}
console.log(`  removed ${odd.length}: ${(odd.length / ((Date.now() - cancelStart) / 1000)).toFixed(0)} /s`);
const wait = t0 - Date.now() / 1000;
if (wait < 1) console.log(`  warning: scheduling overran the start by ${(-wait).toFixed(1)} s`);
await new Promise((r) => setTimeout(r, Math.max(0, (wait - 1) * 1000)));
const s = await fire("s", jobs - odd.length, due);
const wrong = await pool.query("select count(*)::int as n from bench_outbox where key like 's%' and (substr(key, 2)::int % 2) = 1");
console.log(`  spread: fired ${s.fired} (removed fired: ${wrong.rows[0].n}), lateness p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms, max ${s.max.toFixed(1)} ms; ${s.rate.toFixed(0)} jobs/s over the fires' span`);

if (burst > 0) {
  const tb = Date.now() / 1000 + 10 + burst / 2000;
  await schedule(Array.from({ length: burst }, (_, i) => `b${i}`), () => tb);
  await new Promise((r) => setTimeout(r, Math.max(0, (tb - Date.now() / 1000 - 1) * 1000)));
  const b = await fire("b", burst, () => tb);
  console.log(`  burst: ${b.fired} due at one instant: lateness p50 ${b.p50.toFixed(1)} ms, p99 ${b.p99.toFixed(1)} ms, max ${b.max.toFixed(1)} ms; drained at ${b.rate.toFixed(0)} jobs/s`);
}
await pool.end();
