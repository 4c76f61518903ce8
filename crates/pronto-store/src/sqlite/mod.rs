//! The embedded default: one SQLite file in WAL mode, one writer connection (SQLite's single-writer rule, and
//! the group-commit writer is that one writer), a small pool of read-only connections beside it.

mod catalog;
mod flows;
mod offers;
mod outbox;
mod reports;
mod sales;
mod text;

use crate::contacts::{EventRow, IngestTx};
use crate::rows::{ingested, parse_ts};
use crate::store::Backend;
use crate::tx::Commit;
use crate::tx::ItemError;
use crate::writer::{Begin, Writers};
use crate::{FlowStats, Ingested, Options, Shared, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use pronto_domain::resolve::Known;
use pronto_domain::{ContactId, EventId, Identity, LeadId, WorkspaceId};
use serde_json::{Map, Value};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// What a commit waits for, i.e. what a 2xx promises.
///
/// - `Full` (default): the WAL is fsynced at every commit: an accepted event survives a crash of pronto (kill -9)
///   and a power loss or OS crash.
/// - `Normal`: the WAL is fsynced at checkpoints only: an accepted event survives kill -9 of pronto, but the
///   last commits before a power loss or OS crash may be lost. Faster on slow disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    Full,
    Normal,
}

impl FromStr for SqliteSync {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            _ => Err(format!("`{s}` is not a SQLite sync mode (full, normal)")),
        }
    }
}

pub struct SqliteStore {
    read: SqlitePool,
    write: Arc<WritePool>,
    writers: Writers,
    shared: Arc<Shared>,
    hits: crate::LocalHits,
}

pub(crate) struct WritePool(SqlitePool);

/// An exclusive lock on `<database>.migrate-lock`, held until dropped (an in-memory database needs none).
async fn migration_lock(db: &std::path::Path) -> Result<Option<std::fs::File>, StoreError> {
    if db.as_os_str().is_empty() || db.to_string_lossy().starts_with(':') {
        return Ok(None);
    }
    let mut path = db.as_os_str().to_owned();
    path.push(".migrate-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}: {e}", path.to_string_lossy()))
        })?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
        .map(Some)
        .map_err(|e| StoreError::Unavailable(format!("cannot lock the migration lock: {e}")))
}

/// Hooks for tests that need SQLite's own limits (a full disk is `max_page_count` reached: the same
/// SQLITE_FULL error), not a mock.
#[cfg(feature = "testing")]
impl SqliteStore {
    /// Pages the database file has now.
    pub async fn page_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&self.write.0)
            .await?)
    }

    /// Caps the file at `pages` pages on the writer connection: beyond it every write fails with
    /// "database or disk is full". Raising it again is space coming back.
    pub async fn set_max_page_count(&self, pages: i64) -> Result<(), StoreError> {
        sqlx::query(&format!("PRAGMA max_page_count = {pages}"))
            .execute(&self.write.0)
            .await?;
        Ok(())
    }

    /// Events stored, in every workspace.
    pub async fn count_events(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.read)
            .await?)
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// SQLite keeps ids, times and JSON as TEXT.
impl crate::db::Db for Sqlite {
    type Id = String;
    type Ts = String;
    type Json = String;
    fn id(id: uuid::Uuid) -> String {
        id.to_string()
    }
    fn ts(at: DateTime<Utc>) -> String {
        ts(at)
    }
    fn json(value: Value) -> String {
        value.to_string()
    }
    crate::db::runs_on_pool!();
}

fn uuid<T: FromStr>(s: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("id `{s}`")))
}

fn json_obj(s: &str) -> Result<Map<String, Value>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("json: {e}")))
}

impl SqliteStore {
    pub async fn open(url: &str, opts: Options) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match opts.sqlite_sync {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // Two processes starting on one new file would both apply the same migration (sqlx takes no lock on
        // SQLite; the second then fails on "duplicate column"), and both switching a new file to WAL at once
        // can answer one of them "database is locked" without waiting: a lock file beside the database is held
        // from before the first connection until the migrations are applied, so the second waits, then finds
        // a WAL database with nothing left to apply.
        let lock = migration_lock(connect.get_filename()).await?;
        // The writer touches every index of every table the flows keep; at SQLite's default 2 MiB page cache, a
        // timer batch on a database of a million runs spent its time re-reading pages from the OS (perf).
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect.clone().pragma("cache_size", "-32768"))
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        drop(lock);
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(connect.read_only(true))
            .await?;
        let write = Arc::new(WritePool(write));
        let shared = Arc::new(Shared::new());
        let writers = Writers::start(write.clone(), 1, opts.max_group_events, shared.clone());
        Ok(Self {
            read,
            write,
            writers,
            shared,
            hits: crate::LocalHits::default(),
        })
    }
}

/// A write transaction on the writer connection, begun and ended with plain `BEGIN IMMEDIATE` / `COMMIT` /
/// `ROLLBACK` rather than sqlx's `Transaction`.
///
/// Why: on some errors (SQLITE_FULL — a full disk —, SQLITE_IOERR, SQLITE_NOMEM) SQLite rolls the transaction
/// back by itself. sqlx's transaction depth counter does not see that, its own `ROLLBACK` then fails ("no
/// transaction is active"), the counter stays at 1, and every later `begin` on that connection became a
/// `SAVEPOINT` inside a transaction that no longer existed: requests were answered as committed while nothing
/// was stored, until a restart. Here the state is SQLite's own: every path out of a transaction ends it
/// (commit, or a rollback whose "no transaction" error is expected), and a transaction dropped while open
/// (a cancelled future) closes its connection, which makes SQLite roll it back, so the next one starts clean.
pub(crate) struct SqliteTx {
    conn: sqlx::pool::PoolConnection<Sqlite>,
    open: bool,
    pub(crate) bad: Vec<crate::tx::BadRow>,
}

impl std::ops::Deref for SqliteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for SqliteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl SqliteTx {
    /// Ends the transaction whatever state SQLite left it in.
    async fn end(&mut self) {
        match sqlx::query("ROLLBACK").execute(&mut *self.conn).await {
            Ok(_) => {}
            // SQLite already rolled back by itself: the goal is reached.
            Err(sqlx::Error::Database(e)) if e.message().contains("no transaction is active") => {}
            // Unknown state: a fresh connection replaces this one (closing rolls back whatever is open).
            Err(e) => {
                tracing::warn!(error = %e, "ROLLBACK failed; reopening the SQLite writer connection");
                self.conn.close_on_drop();
            }
        }
        self.open = false;
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

#[async_trait]
impl Begin for WritePool {
    type Tx = SqliteTx;
    async fn begin(&self) -> Result<SqliteTx, StoreError> {
        let mut conn = self.0.acquire().await?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        Ok(SqliteTx {
            conn,
            open: true,
            bad: Vec::new(),
        })
    }
}

#[async_trait]
impl Commit for SqliteTx {
    async fn commit(mut self) -> Result<(), StoreError> {
        match sqlx::query("COMMIT").execute(&mut *self.conn).await {
            Ok(_) => {
                self.open = false;
                Ok(())
            }
            Err(e) => {
                self.end().await;
                Err(e.into())
            }
        }
    }

    async fn rollback(mut self) {
        self.end().await;
    }
}

/// SQLite takes a whole set of rows as one JSON array parameter, expanded by `json_each`: one cached
/// statement whatever the number of rows (and far below SQLite's limit on bound parameters).
fn json_rows<T: serde::Serialize>(rows: &T) -> Result<String, ItemError> {
    serde_json::to_string(rows).map_err(|e| ItemError::Store(StoreError::Corrupt(e.to_string())))
}

#[async_trait]
impl IngestTx for SqliteTx {
    async fn exec(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        sqlx::query(sql).execute(&mut **self).await.map(|_| ())
    }

    async fn find_events(
        &mut self,
        ws: WorkspaceId,
        keys: &[(&str, &str)],
    ) -> Result<Vec<((String, String), Ingested)>, ItemError> {
        let rows = sqlx::query(
            "SELECT e.dedupe_scope, e.message_id, e.id, e.seq, e.contact_id, e.request_hash, l.id AS lead_id \
             FROM json_each(?2) q CROSS JOIN events e ON e.workspace_id = ?1 \
             AND e.dedupe_scope = q.value ->> 0 AND e.message_id = q.value ->> 1 \
             LEFT JOIN leads l ON l.event_id = e.id",
        )
        .bind(ws.to_string())
        .bind(json_rows(&keys)?)
        .fetch_all(&mut **self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let key = (row.try_get("dedupe_scope")?, row.try_get("message_id")?);
            out.push((key, ingested(row)?));
        }
        Ok(out)
    }

    async fn owners(
        &mut self,
        ws: WorkspaceId,
        identities: &[&Identity],
    ) -> Result<Vec<Known>, ItemError> {
        let pairs: Vec<(&str, &str)> = identities
            .iter()
            .map(|i| (i.kind.as_str(), i.value.as_str()))
            .collect();
        let rows = sqlx::query(
            "SELECT contact_id, kind, value FROM identities WHERE contact_id IN \
             (SELECT i.contact_id FROM json_each(?2) AS j CROSS JOIN identities AS i ON i.workspace_id = ?1 \
              AND i.kind = json_extract(j.value, '$[0]') AND i.value = json_extract(j.value, '$[1]'))",
        )
        .bind(ws.to_string())
        .bind(json_rows(&pairs)?)
        .fetch_all(&mut **self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push((
                uuid(&row.try_get::<String, _>(0)?)?,
                row.try_get(1)?,
                row.try_get(2)?,
            ));
        }
        Ok(crate::contacts::group_owners(out)?)
    }

    async fn insert_contacts(
        &mut self,
        ws: WorkspaceId,
        ids: &[ContactId],
        now: DateTime<Utc>,
    ) -> Result<(), ItemError> {
        sqlx::query(
            "INSERT INTO contacts (id, workspace_id, created_at, updated_at) SELECT value, ?1, ?2, ?2 FROM json_each(?3)",
        )
        .bind(ws.to_string())
        .bind(ts(now))
        .bind(json_rows(&ids)?)
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn insert_identities(
        &mut self,
        ws: WorkspaceId,
        rows: &[(ContactId, &Identity)],
        now: DateTime<Utc>,
    ) -> Result<u64, ItemError> {
        let rows: Vec<(&str, &str, ContactId)> = rows
            .iter()
            .map(|(c, i)| (i.kind.as_str(), i.value.as_str(), *c))
            .collect();
        let done = sqlx::query(
            "INSERT INTO identities (workspace_id, kind, value, contact_id, created_at) \
             SELECT ?1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), ?2 \
             FROM json_each(?3) WHERE true ON CONFLICT DO NOTHING",
        )
        .bind(ws.to_string())
        .bind(ts(now))
        .bind(json_rows(&rows)?)
        .execute(&mut **self)
        .await?;
        Ok(done.rows_affected())
    }

    async fn insert_events(
        &mut self,
        ws: WorkspaceId,
        rows: &[EventRow<'_>],
    ) -> Result<Vec<(EventId, i64)>, ItemError> {
        type Row<'a> = (
            EventId,
            ContactId,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
            String,
            Option<String>,
            String,
            &'a str,
            Option<&'a str>,
        );
        let rows: Vec<Row<'_>> = rows
            .iter()
            .map(|r| {
                (
                    r.id,
                    r.contact,
                    r.event.message_id.as_deref(),
                    r.event.kind.as_str(),
                    r.event.name.as_deref(),
                    r.event.payload.to_string(),
                    r.event.timestamp.map(ts),
                    ts(r.received_at),
                    r.event.dedupe_scope.as_deref().unwrap_or(""),
                    r.event.request_hash.as_deref(),
                )
            })
            .collect();
        let written = sqlx::query(
            "INSERT INTO events (id, workspace_id, contact_id, message_id, type, name, payload, client_ts, received_at, \
             dedupe_scope, request_hash) \
             SELECT json_extract(value, '$[0]'), ?1, json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
             json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
             json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'), \
             json_extract(value, '$[9]') \
             FROM json_each(?2) WHERE true ON CONFLICT DO NOTHING RETURNING id, seq",
        )
        .bind(ws.to_string())
        .bind(json_rows(&rows)?)
        .fetch_all(&mut **self)
        .await?;
        let mut out = Vec::with_capacity(written.len());
        for row in written {
            out.push((uuid(&row.try_get::<String, _>(0)?)?, row.try_get(1)?));
        }
        Ok(out)
    }

    async fn move_contact(&mut self, from: ContactId, into: ContactId) -> Result<(), ItemError> {
        let (from, into) = (from.to_string(), into.to_string());
        for stmt in [
            "UPDATE identities SET contact_id = ?2 WHERE contact_id = ?1",
            "UPDATE events SET contact_id = ?2 WHERE contact_id = ?1",
            "UPDATE leads SET contact_id = ?2 WHERE contact_id = ?1",
            "UPDATE runs SET contact_id = ?2 WHERE contact_id = ?1",
            "UPDATE exit_marks SET contact_id = ?2 WHERE contact_id = ?1",
            "UPDATE messages SET contact_id = ?2 WHERE contact_id = ?1",
            // The contact's runs may convert by the other's orders now: the kept counts re-read them
            // (`crate::reports`).
            "INSERT INTO report_dirty (run_id) SELECT id FROM runs WHERE contact_id IN (?1, ?2)",
            "UPDATE contacts SET merged_into = ?2 WHERE id = ?1 OR merged_into = ?1",
        ] {
            sqlx::query(stmt)
                .bind(&from)
                .bind(&into)
                .execute(&mut **self)
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
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(ws.to_string())
        .bind(from.to_string())
        .bind(into.to_string())
        .bind(event.to_string())
        .bind(ts(now))
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn traits_of(
        &mut self,
        contacts: &[ContactId],
    ) -> Result<Vec<(ContactId, Map<String, Value>)>, ItemError> {
        let rows = sqlx::query(
            "SELECT id, traits FROM contacts WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_rows(&contacts)?)
        .fetch_all(&mut **self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((
                uuid(&r.try_get::<String, _>(0)?)?,
                json_obj(&r.try_get::<String, _>(1)?)?,
            ));
        }
        Ok(out)
    }

    async fn set_traits_of(
        &mut self,
        rows: &[(ContactId, &Map<String, Value>, DateTime<Utc>)],
    ) -> Result<(), ItemError> {
        // Traits go in as text, so they are stored exactly as serialised (`->>` of a JSON string is the string).
        let rows: Vec<(ContactId, String, String)> = rows
            .iter()
            .map(|(c, t, at)| Ok((*c, json_rows(t)?, ts(*at))))
            .collect::<Result<_, ItemError>>()?;
        sqlx::query(
            "UPDATE contacts SET traits = q.value ->> 1, updated_at = q.value ->> 2 FROM json_each(?1) q \
             WHERE contacts.id = q.value ->> 0",
        )
        .bind(json_rows(&rows)?)
        .execute(&mut **self)
        .await?;
        Ok(())
    }
}

/// An event's hour (its client time, else when it was received), as text `commerce_by_hour` decodes.
const HOUR: &str = "strftime('%Y-%m-%dT%H:00:00Z', COALESCE(client_ts, received_at))";

#[async_trait]
impl Backend for SqliteStore {
    type Db = Sqlite;
    type Writer = WritePool;
    const NAME: &'static str = "sqlite";
    const EVENT_HOUR: &'static str = HOUR;
    const COMMERCE_SEQ: &'static str = "+seq";
    const LOCK_ROWS: &'static str = "";

    fn read(&self) -> &SqlitePool {
        &self.read
    }
    fn write(&self) -> &SqlitePool {
        &self.write.0
    }
    fn reports(&self) -> &SqlitePool {
        &self.read
    }
    fn writer(&self) -> &WritePool {
        &self.write
    }
    /// A deferred `BEGIN` on a read-only connection: WAL gives it one snapshot from its first read on.
    async fn snapshot(&self) -> Result<SqliteTx, StoreError> {
        let mut conn = self.read.acquire().await?;
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        Ok(SqliteTx {
            conn,
            open: true,
            bad: Vec::new(),
        })
    }
    fn conn(tx: &mut SqliteTx) -> &mut sqlx::SqliteConnection {
        &mut tx.conn
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
        let ids: Vec<String> = leads.iter().map(|l| l.to_string()).collect();
        // From the few ids to each lead's log by key (`CROSS JOIN` keeps that order on SQLite).
        let rows = sqlx::query(&format!(
            "SELECT g.lead_id, g.at, g.rep FROM json_each(?2) j CROSS JOIN leads l CROSS JOIN lead_log g \
             WHERE l.id = j.value AND l.workspace_id = ?1 AND g.lead_id = l.id {}",
            crate::sales::OWNERSHIP_STEPS
        ))
        .bind(workspace.to_string())
        .bind(serde_json::Value::from(ids).to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(crate::rows::ownership).collect()
    }

    async fn count_hits(
        &self,
        buckets: &[(String, std::time::Duration)],
        now: DateTime<Utc>,
    ) -> Result<Vec<u64>, StoreError> {
        Ok(self.hits.count(buckets, now))
    }

    async fn flow_stats(&self, workspace: WorkspaceId) -> Result<Vec<FlowStats>, StoreError> {
        let mut c = self.read.acquire().await?;
        flows::flow_stats(&mut c, workspace).await
    }

    async fn lead(
        &self,
        workspace: WorkspaceId,
        id: LeadId,
    ) -> Result<Option<crate::LeadView>, StoreError> {
        let mut c = self.read.acquire().await?;
        sales::lead_view(&mut c, workspace, id).await
    }

    async fn leads(
        &self,
        workspace: WorkspaceId,
        filter: &crate::LeadFilter,
        limit: i64,
    ) -> Result<Vec<crate::LeadState>, StoreError> {
        let mut c = self.read.acquire().await?;
        sales::leads(&mut c, workspace, filter, limit).await
    }

    async fn leads_between(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::LeadState>, StoreError> {
        let mut c = self.read.acquire().await?;
        sales::leads_between(&mut c, workspace, from, to).await
    }

    async fn rep_status(
        &self,
        workspace: WorkspaceId,
        reps: &[String],
    ) -> Result<crate::RepStatus, StoreError> {
        let mut c = self.read.acquire().await?;
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
        let mut c = self.read.acquire().await?;
        sales::tasks(&mut c, workspace, rep, open_only).await
    }

    async fn set_away(
        &self,
        workspace: WorkspaceId,
        rep: &str,
        away: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut c = self.write.0.acquire().await?;
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
        let mut conn = self.read.acquire().await?;
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
        let mut tx = self.write.begin().await?;
        let probe = sqlx::query("INSERT INTO store_probe (id, at) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET at = excluded.at")
            .bind(ts(Utc::now()))
            .execute(&mut *tx)
            .await;
        if let Err(e) = probe {
            tx.rollback().await;
            return Err(e.into());
        }
        Ok(tx.commit().await?)
    }

    async fn close_pools(&self) {
        self.read.close().await;
        self.write.0.close().await;
    }
}
