//! PostgreSQL: for production and for several `pronto serve` processes on one database. A pool for reads and
//! a few group-commit writers in parallel; every uniqueness rule is a unique key, so concurrent writers and
//! processes stay correct (a lost race is a conflict, rolled back to the item's savepoint and retried).

mod catalog;
mod flows;
mod offers;
mod outbox;
mod reports;
mod sales;
mod text;

use crate::contacts::{EventRow, IngestTx};
use crate::rows::ingested;
use crate::store::Backend;
use crate::tx::Commit;
use crate::tx::ItemError;
use crate::writer::{Begin, Writers};
use crate::{FlowStats, Ingested, Options, Shared, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::resolve::Known;
use pronto_domain::{ContactId, EventId, Identity, LeadId, WorkspaceId};
use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Postgres, Row, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use uuid::Uuid;

pub struct PostgresStore {
    pool: Arc<PgDb>,
    /// Where the reports read: the replica named by [`Options::pg_read_url`], else the primary's pool.
    reports: PgPool,
    writers: Writers,
    shared: Arc<Shared>,
    listener: tokio::task::JoinHandle<()>,
}

pub(crate) struct PgDb(PgPool);

/// PostgreSQL has `uuid`, `timestamptz` and `jsonb`.
impl crate::db::Db for Postgres {
    type Id = Uuid;
    type Ts = DateTime<Utc>;
    type Json = Json<Value>;
    fn id(id: Uuid) -> Uuid {
        id
    }
    fn ts(at: DateTime<Utc>) -> DateTime<Utc> {
        at
    }
    fn json(value: Value) -> Json<Value> {
        Json(value)
    }
    crate::db::runs_on_pool!();
}

fn rand_below(n: u32) -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b) % n
}

/// The settings of every session pronto opens (as startup parameters, so they hold from the first statement).
///
/// - `plan_cache_mode = force_custom_plan`: plan every execution with its real parameters and the table's
///   current size. With cached generic plans a statement first planned while a table was young kept a scan or
///   hash join that later cost more than everything else together (seen under load); a few bulk statements
///   per group make replanning cheap.
/// - `jit = off`: pronto's statements are short, index-driven ones, so compiling one to machine code never
///   pays, yet the planner asks for it whenever its estimate passes `jit_above_cost`, which a young table's
///   guessed row counts do. Seen in `pronto bench timers`: the timer batch's recipients read (1,000 contacts,
///   some 8 ms of work) spent 240-340 ms in JIT compilation on every batch, and a burst of 10,000 due timers
///   drained at 4,793 fires/s (p99 lateness 2.1 s) against 14,505 (0.69 s) with JIT off.
const SESSION: [(&str, &str); 2] = [("plan_cache_mode", "force_custom_plan"), ("jit", "off")];

impl PostgresStore {
    pub async fn open(url: &str, opts: Options) -> Result<Self, StoreError> {
        let writers = opts.pg_writers.max(1);
        let connect = PgConnectOptions::from_str(url)?.options(SESSION);
        let pool = PgPoolOptions::new()
            .max_connections(writers as u32 + 8)
            .acquire_timeout(opts.pg_acquire_timeout)
            .connect_with(connect)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let shared = Arc::new(Shared::new());
        let listener = tokio::spawn(listen(pool.clone(), shared.clone()));
        let reports = match &opts.pg_read_url {
            // A replica is read-only and follows the primary's schema: no migrations there.
            Some(read) => {
                PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(opts.pg_acquire_timeout)
                    .connect_with(PgConnectOptions::from_str(read)?.options(SESSION))
                    .await?
            }
            None => pool.clone(),
        };
        let pool = Arc::new(PgDb(pool));
        let writers = Writers::start(pool.clone(), writers, opts.max_group_events, shared.clone());
        Ok(Self {
            pool,
            reports,
            writers,
            shared,
            listener,
        })
    }
}

/// Wakes this process's scheduler and delivery worker when another process on the database scheduled timers
/// or queued messages. A lost connection is re-established; meanwhile the workers' own periodic re-check (at
/// most a few seconds) covers what a missed notification would have said.
async fn listen(pool: PgPool, shared: Arc<Shared>) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener
            .listen_all(["pronto_timers", "pronto_outbox"])
            .await
        {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(n) if n.channel() == "pronto_outbox" => shared.outbox.notify_one(),
                // A timer's due time, when the writer said it; else look now.
                Ok(n) => match n
                    .payload()
                    .parse()
                    .ok()
                    .and_then(DateTime::from_timestamp_millis)
                {
                    Some(at) => shared.timer_set(at),
                    None => shared.timers.notify_one(),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                    break;
                }
            }
        }
    }
}

pub(crate) struct PgTx(
    Transaction<'static, Postgres>,
    pub(crate) Vec<crate::tx::BadRow>,
);

#[async_trait]
impl Begin for PgDb {
    type Tx = PgTx;
    async fn begin(&self) -> Result<PgTx, StoreError> {
        Ok(PgTx(self.0.begin().await?, Vec::new()))
    }
}

#[async_trait]
impl Commit for PgTx {
    async fn commit(self) -> Result<(), StoreError> {
        Ok(self.0.commit().await?)
    }

    async fn rollback(self) {
        let _ = self.0.rollback().await;
    }
}

/// PostgreSQL takes a whole set of rows as array parameters, expanded by `UNNEST`: one prepared statement
/// whatever the number of rows.
#[async_trait]
impl IngestTx for PgTx {
    async fn exec(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        sqlx::query(sql).execute(&mut *self.0).await.map(|_| ())
    }

    async fn find_events(
        &mut self,
        ws: WorkspaceId,
        keys: &[(&str, &str)],
    ) -> Result<Vec<((String, String), Ingested)>, ItemError> {
        let scopes: Vec<&str> = keys.iter().map(|k| k.0).collect();
        let mids: Vec<&str> = keys.iter().map(|k| k.1).collect();
        let rows = sqlx::query(
            "SELECT e.dedupe_scope, e.message_id, e.id, e.seq, e.contact_id, e.request_hash, l.id AS lead_id \
             FROM UNNEST($2::text[], $3::text[]) AS m(scope, message_id) \
             JOIN events e ON e.workspace_id = $1 AND e.dedupe_scope = m.scope AND e.message_id = m.message_id \
             LEFT JOIN leads l ON l.event_id = e.id",
        )
        .bind(ws.0)
        .bind(&scopes)
        .bind(&mids)
        .fetch_all(&mut *self.0)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push((
                (row.try_get("dedupe_scope")?, row.try_get("message_id")?),
                ingested(&row)?,
            ));
        }
        Ok(out)
    }

    async fn owners(
        &mut self,
        ws: WorkspaceId,
        identities: &[&Identity],
    ) -> Result<Vec<Known>, ItemError> {
        let kinds: Vec<&str> = identities.iter().map(|i| i.kind.as_str()).collect();
        let values: Vec<&str> = identities.iter().map(|i| i.value.as_str()).collect();
        let rows = sqlx::query(
            "SELECT contact_id, kind, value FROM identities WHERE contact_id IN \
             (SELECT i.contact_id FROM UNNEST($2::text[], $3::text[]) AS q(kind, value) \
              JOIN identities AS i ON i.workspace_id = $1 AND i.kind = q.kind AND i.value = q.value)",
        )
        .bind(ws.0)
        .bind(&kinds)
        .bind(&values)
        .fetch_all(&mut *self.0)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push((ContactId(row.try_get(0)?), row.try_get(1)?, row.try_get(2)?));
        }
        Ok(crate::contacts::group_owners(out)?)
    }

    async fn insert_contacts(
        &mut self,
        ws: WorkspaceId,
        ids: &[ContactId],
        now: DateTime<Utc>,
    ) -> Result<(), ItemError> {
        let ids: Vec<Uuid> = ids.iter().map(|c| c.0).collect();
        sqlx::query(
            "INSERT INTO contacts (id, workspace_id, created_at, updated_at) SELECT u, $1, $2, $2 FROM UNNEST($3::uuid[]) AS u",
        )
        .bind(ws.0)
        .bind(now)
        .bind(&ids)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn insert_identities(
        &mut self,
        ws: WorkspaceId,
        rows: &[(ContactId, &Identity)],
        now: DateTime<Utc>,
    ) -> Result<u64, ItemError> {
        let kinds: Vec<&str> = rows.iter().map(|(_, i)| i.kind.as_str()).collect();
        let values: Vec<&str> = rows.iter().map(|(_, i)| i.value.as_str()).collect();
        let contacts: Vec<Uuid> = rows.iter().map(|(c, _)| c.0).collect();
        let done = sqlx::query(
            "INSERT INTO identities (workspace_id, kind, value, contact_id, created_at) \
             SELECT $1, k, v, c, $2 FROM UNNEST($3::text[], $4::text[], $5::uuid[]) AS t(k, v, c) ON CONFLICT DO NOTHING",
        )
        .bind(ws.0)
        .bind(now)
        .bind(&kinds)
        .bind(&values)
        .bind(&contacts)
        .execute(&mut *self.0)
        .await?;
        Ok(done.rows_affected())
    }

    async fn insert_events(
        &mut self,
        ws: WorkspaceId,
        rows: &[EventRow<'_>],
    ) -> Result<Vec<(EventId, i64)>, ItemError> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id.0).collect();
        let contacts: Vec<Uuid> = rows.iter().map(|r| r.contact.0).collect();
        let mids: Vec<Option<&str>> = rows.iter().map(|r| r.event.message_id.as_deref()).collect();
        let kinds: Vec<&str> = rows.iter().map(|r| r.event.kind.as_str()).collect();
        let names: Vec<Option<&str>> = rows.iter().map(|r| r.event.name.as_deref()).collect();
        let payloads: Vec<String> = rows.iter().map(|r| r.event.payload.to_string()).collect();
        let client: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.event.timestamp).collect();
        let received: Vec<DateTime<Utc>> = rows.iter().map(|r| r.received_at).collect();
        let scopes: Vec<&str> = rows
            .iter()
            .map(|r| r.event.dedupe_scope.as_deref().unwrap_or(""))
            .collect();
        let hashes: Vec<Option<&str>> = rows
            .iter()
            .map(|r| r.event.request_hash.as_deref())
            .collect();
        let written = sqlx::query(
            "INSERT INTO events (id, workspace_id, contact_id, message_id, type, name, payload, client_ts, received_at, \
             dedupe_scope, request_hash) \
             SELECT id, $1, c, m, t, n, p::json, ts, rt, sc, h FROM UNNEST($2::uuid[], $3::uuid[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[]) \
             AS r(id, c, m, t, n, p, ts, rt, sc, h) \
             ON CONFLICT DO NOTHING RETURNING id, seq",
        )
        .bind(ws.0)
        .bind(&ids)
        .bind(&contacts)
        .bind(&mids)
        .bind(&kinds)
        .bind(&names)
        .bind(&payloads)
        .bind(&client)
        .bind(&received)
        .bind(&scopes)
        .bind(&hashes)
        .fetch_all(&mut *self.0)
        .await?;
        let mut out = Vec::with_capacity(written.len());
        for row in written {
            out.push((EventId(row.try_get(0)?), row.try_get(1)?));
        }
        Ok(out)
    }

    async fn move_contact(&mut self, from: ContactId, into: ContactId) -> Result<(), ItemError> {
        for stmt in [
            "UPDATE identities SET contact_id = $2 WHERE contact_id = $1",
            "UPDATE events SET contact_id = $2 WHERE contact_id = $1",
            "UPDATE leads SET contact_id = $2 WHERE contact_id = $1",
            "UPDATE runs SET contact_id = $2 WHERE contact_id = $1",
            "UPDATE exit_marks SET contact_id = $2 WHERE contact_id = $1",
            "UPDATE messages SET contact_id = $2 WHERE contact_id = $1",
            // The contact's runs may convert by the other's orders now: the kept counts re-read them
            // (`crate::reports`).
            "INSERT INTO report_dirty (run_id) SELECT id FROM runs WHERE contact_id IN ($1, $2)",
            "UPDATE contacts SET merged_into = $2 WHERE id = $1 OR merged_into = $1",
        ] {
            sqlx::query(stmt)
                .bind(from.0)
                .bind(into.0)
                .execute(&mut *self.0)
                .await?;
        }
        Ok(())
    }

    async fn record_merge(
        &mut self,
        ws: WorkspaceId,
        from: ContactId,
        into: ContactId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> Result<(), ItemError> {
        sqlx::query(
            "INSERT INTO contact_merges (workspace_id, from_contact, into_contact, event_id, merged_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(ws.0)
        .bind(from.0)
        .bind(into.0)
        .bind(event.0)
        .bind(now)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn traits_of(
        &mut self,
        contacts: &[ContactId],
    ) -> Result<Vec<(ContactId, Map<String, Value>)>, ItemError> {
        let ids: Vec<Uuid> = contacts.iter().map(|c| c.0).collect();
        let rows: Vec<(Uuid, Json<Map<String, Value>>)> =
            sqlx::query_as("SELECT id, traits FROM contacts WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *self.0)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, Json(t))| (ContactId(id), t))
            .collect())
    }

    async fn set_traits_of(
        &mut self,
        rows: &[(ContactId, &Map<String, Value>, DateTime<Utc>)],
    ) -> Result<(), ItemError> {
        let ids: Vec<Uuid> = rows.iter().map(|(c, _, _)| c.0).collect();
        let traits: Vec<String> = rows
            .iter()
            .map(|(_, t, _)| Value::Object((*t).clone()).to_string())
            .collect();
        let ats: Vec<DateTime<Utc>> = rows.iter().map(|(_, _, at)| *at).collect();
        sqlx::query(
            "UPDATE contacts c SET traits = q.t::jsonb, updated_at = q.at \
             FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[]) AS q(id, t, at) WHERE c.id = q.id",
        )
        .bind(&ids)
        .bind(&traits)
        .bind(&ats)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }
}

/// An event's hour (its client time, else when it was received), as text `commerce_by_hour` decodes.
const HOUR: &str =
    "to_char(date_trunc('hour', COALESCE(client_ts, received_at) AT TIME ZONE 'UTC'), \
                    'YYYY-MM-DD\"T\"HH24:00:00\"Z\"')";

#[async_trait]
impl Backend for PostgresStore {
    type Db = Postgres;
    type Writer = PgDb;
    const NAME: &'static str = "postgres";
    const EVENT_HOUR: &'static str = HOUR;
    const COMMERCE_SEQ: &'static str = "seq";
    const LOCK_ROWS: &'static str = " FOR UPDATE OF live";

    fn read(&self) -> &PgPool {
        &self.pool.0
    }
    fn write(&self) -> &PgPool {
        &self.pool.0
    }
    fn reports(&self) -> &PgPool {
        &self.reports
    }
    fn writer(&self) -> &PgDb {
        &self.pool
    }
    /// Repeatable read, read only, where the reports read (a replica when one is named).
    async fn snapshot(&self) -> Result<PgTx, StoreError> {
        let mut tx = self.reports.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(PgTx(tx, Vec::new()))
    }
    fn conn(tx: &mut PgTx) -> &mut sqlx::PgConnection {
        &mut tx.0
    }
    fn writers(&self) -> &Writers {
        &self.writers
    }
    fn state(&self) -> &Arc<Shared> {
        &self.shared
    }

    async fn ownership_of(
        &self,
        workspace: WorkspaceId,
        leads: &[LeadId],
    ) -> Result<Vec<(LeadId, DateTime<Utc>, String)>, StoreError> {
        let ids: Vec<Uuid> = leads.iter().map(|l| l.0).collect();
        let rows = sqlx::query(&format!(
            "SELECT g.lead_id, g.at, g.rep FROM leads l JOIN lead_log g ON g.lead_id = l.id \
             WHERE l.id = ANY($2) AND l.workspace_id = $1 {}",
            crate::sales::OWNERSHIP_STEPS
        ))
        .bind(workspace.0)
        .bind(&ids)
        .fetch_all(&self.reports)
        .await?;
        rows.iter().map(crate::rows::ownership).collect()
    }

    async fn count_hits(
        &self,
        buckets: &[(String, std::time::Duration)],
        now: DateTime<Utc>,
    ) -> Result<Vec<u64>, StoreError> {
        let names: Vec<&str> = buckets.iter().map(|(b, _)| b.as_str()).collect();
        let starts: Vec<i64> = buckets
            .iter()
            .map(|(_, w)| crate::window_start(now, *w))
            .collect();
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "INSERT INTO rate_limits (bucket, window_start, hits) SELECT b, w, 1 FROM UNNEST($1::text[], $2::bigint[]) \
             AS q(b, w) ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1 \
             RETURNING bucket, window_start, hits",
        )
        .bind(&names)
        .bind(&starts)
        .fetch_all(&self.pool.0)
        .await?;
        // Now and then, windows that ended more than a day ago go.
        if rand_below(1000) == 0 {
            sqlx::query("DELETE FROM rate_limits WHERE window_start < $1")
                .bind(now.timestamp() - 86_400)
                .execute(&self.pool.0)
                .await?;
        }
        Ok(buckets
            .iter()
            .zip(&starts)
            .map(|((b, _), w)| {
                rows.iter()
                    .find(|(rb, rw, _)| rb == b && rw == w)
                    .map(|(_, _, n)| *n as u64)
                    .unwrap_or(1)
            })
            .collect())
    }

    async fn flow_stats(&self, workspace: WorkspaceId) -> Result<Vec<FlowStats>, StoreError> {
        let mut c = self.pool.0.acquire().await?;
        flows::flow_stats(&mut c, workspace).await
    }

    async fn lead(
        &self,
        workspace: WorkspaceId,
        id: LeadId,
    ) -> Result<Option<crate::LeadView>, StoreError> {
        let mut c = self.pool.0.acquire().await?;
        sales::lead_view(&mut c, workspace, id).await
    }

    async fn leads(
        &self,
        workspace: WorkspaceId,
        filter: &crate::LeadFilter,
        limit: i64,
    ) -> Result<Vec<crate::LeadState>, StoreError> {
        let mut c = self.pool.0.acquire().await?;
        sales::leads(&mut c, workspace, filter, limit).await
    }

    async fn leads_between(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::LeadState>, StoreError> {
        let mut c = self.reports.acquire().await?;
        sales::leads_between(&mut c, workspace, from, to).await
    }

    async fn rep_status(
        &self,
        workspace: WorkspaceId,
        reps: &[String],
    ) -> Result<crate::RepStatus, StoreError> {
        let mut c = self.pool.0.acquire().await?;
        Ok(crate::RepStatus {
            away: sales::away_flags(&mut c, workspace).await?,
            open: sales::open_counts(&mut c, workspace, reps).await?,
        })
    }

    async fn tasks(
        &self,
        workspace: WorkspaceId,
        rep: Option<&str>,
        open_only: bool,
    ) -> Result<Vec<crate::Task>, StoreError> {
        let mut c = self.pool.0.acquire().await?;
        sales::tasks(&mut c, workspace, rep, open_only).await
    }

    async fn set_away(
        &self,
        workspace: WorkspaceId,
        rep: &str,
        away: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut c = self.pool.0.acquire().await?;
        sales::set_away(&mut c, workspace, rep, away, now).await
    }

    async fn run_outcomes(
        &self,
        workspace: WorkspaceId,
        of: crate::RunsOf,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rules: &[pronto_domain::experiment::results::ConversionRule],
    ) -> Result<Vec<pronto_domain::experiment::results::RunOutcome>, StoreError> {
        let mut conn = self.reports.acquire().await?;
        let runs = crate::reports::Runs::Started {
            workspace,
            from,
            to,
            every_flow: of == crate::RunsOf::EveryFlow,
        };
        Ok(reports::outcomes(&mut conn, runs, rules)
            .await?
            .into_iter()
            .map(|r| r.outcome)
            .collect())
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO store_probe (id, at) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = now()")
            .execute(&self.pool.0)
            .await?;
        Ok(())
    }

    async fn close_pools(&self) {
        self.listener.abort();
        self.pool.0.close().await;
    }
}
