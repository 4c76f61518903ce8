//! The embedded default: one SQLite file in WAL mode, one writer connection (SQLite's single-writer rule, and
//! the group-commit writer is that one writer), a small pool of read-only connections beside it.

mod catalog;
mod flows;
mod offers;
mod outbox;
mod reports;
mod sales;
mod sessions;
mod text;

use crate::contacts::{EventRow, IngestTx};
use crate::rows::{
    api_key, ingested, lead_win, log_entry, message_view, parse_ts, promotion, run_view,
    stored_event, unmapped_delivery, Cols, PROMOTION_COLUMNS, UNMAPPED_COLUMNS,
};
use crate::tx::Commit;
use crate::tx::ItemError;
use crate::writer::{Begin, Writers};
use crate::{
    ApiKey, Contact, DefaultWorkspace, Delivery, Fired, FlowStats, IngestItem, Ingested, KeyKind,
    KeyOrigin, MessageView, Options, OutMessage, Quarantined, RunView, Shared, Store, StoreError,
    StoredEvent, UnmappedDelivery,
};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use pronto_domain::resolve::Known;
use pronto_domain::{ContactId, EventId, Identity, LeadId, WorkspaceId};
use pronto_domain::{MessageId, RunId};
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
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ingest(
        &self,
        workspace: WorkspaceId,
        items: Vec<IngestItem>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Ingested>, StoreError> {
        self.writers.submit(workspace, items, received_at).await
    }

    async fn default_workspace(&self) -> Result<DefaultWorkspace, StoreError> {
        let id = WorkspaceId::new();
        let created = sqlx::query(
            "INSERT INTO workspaces (id, name, is_default, created_at) VALUES (?1, 'default', 1, ?2) ON CONFLICT DO NOTHING",
        )
        .bind(id.to_string())
        .bind(ts(Utc::now()))
        .execute(&self.write.0)
        .await?
        .rows_affected()
            == 1;
        let found: String = sqlx::query_scalar("SELECT id FROM workspaces WHERE is_default = 1")
            .fetch_one(&self.write.0)
            .await?;
        Ok(DefaultWorkspace {
            id: uuid(&found)?,
            created,
        })
    }

    async fn add_keys(
        &self,
        workspace: WorkspaceId,
        keys: &[(KeyKind, &str)],
        origin: KeyOrigin,
        label: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await?;
        for (kind, key_hash) in keys {
            let done = sqlx::query(
                "INSERT INTO api_keys (key_hash, id, workspace_id, kind, origin, label, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            )
            .bind(key_hash)
            .bind(crate::key_id(key_hash))
            .bind(workspace.to_string())
            .bind(kind.as_str())
            .bind(origin.as_str())
            .bind(label)
            .bind(ts(Utc::now()))
            .execute(&mut *tx)
            .await;
            match done {
                Ok(d) if d.rows_affected() == 1 => {}
                other => {
                    tx.rollback().await;
                    return other.map(|_| false).map_err(Into::into);
                }
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn has_key(&self, workspace: WorkspaceId, kind: KeyKind) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM api_keys WHERE workspace_id = ?1 AND kind = ?2 AND revoked_at IS NULL",
        )
        .bind(workspace.to_string())
        .bind(kind.as_str())
        .fetch_one(&self.write.0)
        .await?;
        Ok(n > 0)
    }

    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query("SELECT id, kind, origin, label, created_at, revoked_at FROM api_keys WHERE key_hash = ?1")
            .bind(key_hash)
            .fetch_optional(&self.write.0)
            .await?
            .as_ref()
            .map(api_key)
            .transpose()
    }

    async fn key_workspace(
        &self,
        kind: KeyKind,
        key_hash: &str,
    ) -> Result<Option<WorkspaceId>, StoreError> {
        let ws: Option<String> = sqlx::query_scalar(
            "SELECT workspace_id FROM api_keys WHERE key_hash = ?1 AND kind = ?2 AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .bind(kind.as_str())
        .fetch_optional(&self.read)
        .await?;
        ws.as_deref().map(uuid).transpose()
    }

    async fn keys(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>, StoreError> {
        sqlx::query(
            "SELECT id, kind, origin, label, created_at, revoked_at FROM api_keys WHERE workspace_id = ?1 \
             ORDER BY created_at, id",
        )
        .bind(workspace.to_string())
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(api_key)
        .collect()
    }

    async fn revoke_key(
        &self,
        workspace: WorkspaceId,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?3) WHERE workspace_id = ?1 AND id = ?2 \
             RETURNING id, kind, origin, label, created_at, revoked_at",
        )
        .bind(workspace.to_string())
        .bind(id)
        .bind(ts(now))
        .fetch_optional(&self.write.0)
        .await?
        .as_ref()
        .map(api_key)
        .transpose()
    }

    async fn revoke_env_keys_except(
        &self,
        workspace: WorkspaceId,
        kind: KeyKind,
        keep: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE api_keys SET revoked_at = ?4 WHERE workspace_id = ?1 AND kind = ?2 AND origin = 'env' \
             AND key_hash <> ?3 AND revoked_at IS NULL",
        )
        .bind(workspace.to_string())
        .bind(kind.as_str())
        .bind(keep)
        .bind(ts(now))
        .execute(&self.write.0)
        .await?
        .rows_affected())
    }

    async fn contact(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
    ) -> Result<Option<Contact>, StoreError> {
        let row = sqlx::query(
            "SELECT c.id, c.traits, c.created_at, c.updated_at FROM contacts c \
             WHERE c.workspace_id = ?1 AND c.id = (SELECT coalesce(merged_into, id) FROM contacts WHERE id = ?2)",
        )
        .bind(workspace.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let live: String = row.try_get("id")?;
        let identities = sqlx::query(
            "SELECT kind, value FROM identities WHERE contact_id = ?1 ORDER BY kind, value",
        )
        .bind(&live)
        .fetch_all(&self.read)
        .await?
        .into_iter()
        .map(|r| {
            Ok(Identity {
                kind: r
                    .try_get::<String, _>(0)?
                    .parse()
                    .map_err(StoreError::Corrupt)?,
                value: r.try_get(1)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let merged_from = sqlx::query_scalar::<_, String>(
            "SELECT from_contact FROM contact_merges WHERE into_contact = ?1 ORDER BY id",
        )
        .bind(&live)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|s| uuid(s))
        .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Contact {
            id: uuid(&live)?,
            traits: json_obj(&row.try_get::<String, _>("traits")?)?,
            identities,
            merged_from,
            created_at: row.at("created_at")?,
            updated_at: row.at("updated_at")?,
        }))
    }

    async fn find_contact(
        &self,
        workspace: WorkspaceId,
        identity: &Identity,
    ) -> Result<Option<ContactId>, StoreError> {
        let id: Option<String> =
            sqlx::query_scalar("SELECT contact_id FROM identities WHERE workspace_id = ?1 AND kind = ?2 AND value = ?3")
                .bind(workspace.to_string())
                .bind(identity.kind.as_str())
                .bind(&identity.value)
                .fetch_optional(&self.read)
                .await?;
        id.as_deref().map(uuid).transpose()
    }

    async fn timeline(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        sqlx::query(
            "SELECT seq, id, contact_id, type, name, message_id, payload, client_ts, received_at FROM events \
             WHERE workspace_id = ?1 AND contact_id = (SELECT coalesce(merged_into, id) FROM contacts WHERE id = ?2) \
             AND seq < ?3 ORDER BY seq DESC LIMIT ?4",
        )
        .bind(workspace.to_string())
        .bind(contact.to_string())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(stored_event)
        .collect()
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let t: Option<String> = sqlx::query_scalar(flows::NEXT_DUE)
            .fetch_one(&self.read)
            .await?;
        t.map(|t| parse_ts(&t)).transpose()
    }

    async fn fire_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Fired, StoreError> {
        crate::apply::timers::fire_batch(&*self.write, &self.shared, now, limit).await
    }

    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<OutMessage>, StoreError> {
        crate::apply::outbox::claim(&*self.write, now, limit, lease_until).await
    }

    async fn release_claims(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE messages SET next_attempt_at = ?1, claimed_at = NULL WHERE claimed_at IS NOT NULL AND state = 'queued'",
        )
        .bind(ts(now))
        .execute(&self.write.0)
        .await?
        .rows_affected())
    }

    async fn next_message_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let t: Option<String> =
            sqlx::query_scalar("SELECT min(next_attempt_at) FROM messages WHERE state = 'queued'")
                .fetch_one(&self.read)
                .await?;
        t.map(|t| parse_ts(&t)).transpose()
    }

    async fn record_deliveries(
        &self,
        outcomes: &[(MessageId, Delivery)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let policy = self.shared.program().messages.soft_bounces;
        crate::apply::outbox::record(&*self.write, outcomes, now, policy).await
    }

    async fn erase_contact(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::Erasure>, StoreError> {
        crate::apply::erase::erase(&*self.write, workspace, contact, by, now).await
    }

    async fn prune(
        &self,
        events_before: Option<DateTime<Utc>>,
        messages_before: Option<DateTime<Utc>>,
        cursor: &crate::PruneCursor,
        batch: i64,
    ) -> Result<crate::Pruned, StoreError> {
        crate::apply::retention::prune(&*self.write, events_before, messages_before, cursor, batch)
            .await
    }

    async fn erasures(
        &self,
        workspace: WorkspaceId,
        limit: i64,
    ) -> Result<Vec<crate::ErasureRecord>, StoreError> {
        crate::apply::erase::list(&*self.write, workspace, limit).await
    }

    async fn record_bounces(
        &self,
        bounces: &[crate::Bounce],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let policy = self.shared.program().messages.soft_bounces;
        crate::apply::outbox::bounces(&*self.write, bounces, now, policy).await
    }

    async fn suppressions(
        &self,
        workspace: WorkspaceId,
        query: &crate::SuppressionQuery,
    ) -> Result<Vec<pronto_domain::suppression::Suppression>, StoreError> {
        crate::apply::outbox::list(&*self.write, workspace, query).await
    }

    async fn suppress(
        &self,
        workspace: WorkspaceId,
        entries: &[pronto_domain::suppression::Suppression],
    ) -> Result<u64, StoreError> {
        crate::apply::outbox::suppress(&*self.write, workspace, entries).await
    }

    async fn unsuppress(
        &self,
        workspace: WorkspaceId,
        medium: pronto_domain::suppression::Medium,
        address: &str,
    ) -> Result<bool, StoreError> {
        crate::apply::outbox::unsuppress(&*self.write, workspace, medium, address).await
    }

    async fn find_messages(
        &self,
        workspace: WorkspaceId,
        q: &crate::MessageQuery,
    ) -> Result<Vec<MessageView>, StoreError> {
        let (filter, binds) = crate::flows::message_listing_sql(q, |n| format!("?{n}"));
        let sql = format!("SELECT * FROM messages {filter}");
        let mut query = sqlx::query(&sql).bind(workspace.to_string());
        for b in &binds {
            query = match b {
                crate::flows::MessageBind::Text(t) => query.bind(t.as_str()),
                crate::flows::MessageBind::Id(id) => query.bind(id.to_string()),
                crate::flows::MessageBind::Limit(n) => query.bind(*n),
            };
        }
        let rows = query.fetch_all(&self.read).await?;
        rows.iter().map(message_view).collect()
    }

    async fn flow_stats(&self, workspace: WorkspaceId) -> Result<Vec<FlowStats>, StoreError> {
        let mut c = self.read.acquire().await?;
        flows::flow_stats(&mut c, workspace).await
    }

    async fn run(&self, workspace: WorkspaceId, id: RunId) -> Result<Option<RunView>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM runs WHERE id = ?1 AND workspace_id = ?2")
            .bind(id.to_string())
            .bind(workspace.to_string())
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let log = sqlx::query("SELECT * FROM run_log WHERE run_id = ?1 ORDER BY id")
            .bind(id.to_string())
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(log_entry)
            .collect::<Result<Vec<_>, _>>()?;
        run_view(&row, log).map(Some)
    }

    async fn lead(
        &self,
        workspace: WorkspaceId,
        id: LeadId,
    ) -> Result<Option<crate::LeadView>, StoreError> {
        let mut c = self.read.acquire().await?;
        sales::lead_view(&mut c, workspace, id).await
    }

    async fn lead_wins(
        &self,
        workspace: WorkspaceId,
        since: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, String, f64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT payload FROM events WHERE workspace_id = ?1 AND name = 'Lead Won' AND received_at >= ?2 \
             ORDER BY seq",
        )
        .bind(workspace.to_string())
        .bind(ts(since))
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            if let Some(w) = lead_win(r)? {
                out.push(w);
            }
        }
        Ok(out)
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

    async fn commerce_by_hour(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        upto: i64,
    ) -> Result<crate::CommerceHours, StoreError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as(&crate::sessions::commerce_by_hour_sql(HOUR, "+seq", |n| {
                format!("?{n}")
            }))
            .bind(workspace.to_string())
            .bind(ts(from))
            .bind(ts(to))
            .bind(upto)
            .fetch_all(&self.read)
            .await?;
        crate::rows::commerce_hours(rows)
    }

    async fn commerce_mark(&self, workspace: WorkspaceId) -> Result<i64, StoreError> {
        let seq: Option<i64> =
            sqlx::query_scalar(&crate::sessions::commerce_mark_sql(|n| format!("?{n}")))
                .bind(workspace.to_string())
                .fetch_optional(&self.read)
                .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn commerce_since(
        &self,
        workspace: WorkspaceId,
        after: i64,
    ) -> Result<(crate::CommerceHours, i64), StoreError> {
        let rows: Vec<(String, String, i64, i64)> =
            sqlx::query_as(&crate::sessions::commerce_since_sql(HOUR, |n| {
                format!("?{n}")
            }))
            .bind(workspace.to_string())
            .bind(after)
            .fetch_all(&self.read)
            .await?;
        crate::rows::commerce_since(rows, after)
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

    async fn ownership_between(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, DateTime<Utc>, String)>, StoreError> {
        let rows = sqlx::query_as(&format!(
            "SELECT g.lead_id, g.at, g.rep FROM leads l JOIN lead_log g ON g.lead_id = l.id \
             WHERE l.workspace_id = ?1 AND l.created_at >= ?2 AND l.created_at < ?3 {}",
            crate::sales::OWNERSHIP_STEPS
        ))
        .bind(workspace.to_string())
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(&self.read)
        .await?;
        ownership(rows)
    }

    async fn ownership_of(
        &self,
        workspace: WorkspaceId,
        leads: &[LeadId],
    ) -> Result<Vec<(LeadId, DateTime<Utc>, String)>, StoreError> {
        let ids: Vec<String> = leads.iter().map(|l| l.to_string()).collect();
        // From the few ids to each lead's log by key (`CROSS JOIN` keeps that order on SQLite).
        let rows = sqlx::query_as(&format!(
            "SELECT g.lead_id, g.at, g.rep FROM json_each(?2) j CROSS JOIN leads l CROSS JOIN lead_log g \
             WHERE l.id = j.value AND l.workspace_id = ?1 AND g.lead_id = l.id {}",
            crate::sales::OWNERSHIP_STEPS
        ))
        .bind(workspace.to_string())
        .bind(serde_json::Value::from(ids).to_string())
        .fetch_all(&self.read)
        .await?;
        ownership(rows)
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

    async fn contact_runs(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
    ) -> Result<Vec<RunView>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE contact_id = ?1 AND workspace_id = ?2 ORDER BY created_at DESC LIMIT 100",
        )
        .bind(contact.to_string())
        .bind(workspace.to_string())
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.run(workspace, uuid(&id)?).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn patch_traits(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        patch: &Map<String, Value>,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write.0.begin().await?;
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT live.id, live.traits FROM contacts c JOIN contacts live ON live.id = COALESCE(c.merged_into, c.id) \
             WHERE c.id = ?1 AND c.workspace_id = ?2",
        )
        .bind(contact.to_string())
        .bind(workspace.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((live, traits)) = row else {
            return Ok(false);
        };
        let old = json_obj(&traits)?;
        let before = pronto_domain::consent::snapshot(&old);
        let mut merged = crate::contacts::merge_traits(old, patch);
        pronto_domain::consent::record_changes(&before, &mut merged, source, now);
        sqlx::query("UPDATE contacts SET traits = ?2, updated_at = ?3 WHERE id = ?1")
            .bind(live)
            .bind(Value::Object(merged).to_string())
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_click(
        &self,
        workspace: WorkspaceId,
        message: &str,
        url: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clicks (workspace_id, message_key, url, clicked_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(workspace.to_string())
        .bind(message)
        .bind(url)
        .bind(ts(at))
        .execute(&self.write.0)
        .await?;
        Ok(())
    }

    async fn add_offer_codes(
        &self,
        workspace: WorkspaceId,
        offer: &str,
        codes: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        crate::apply::offers::add_codes(&*self.write, workspace, offer, codes, now).await
    }

    async fn offer_stock(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Vec<crate::OfferStock>, StoreError> {
        crate::apply::offers::stock(&*self.write, workspace).await
    }

    async fn record_promotion(
        &self,
        workspace: WorkspaceId,
        promotion: &pronto_domain::experiment::Promotion,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO promotions (workspace_id, flow_id, experiment, variant, promoted_at, source) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(workspace.to_string())
        .bind(&promotion.flow)
        .bind(&promotion.experiment)
        .bind(&promotion.variant)
        .bind(ts(promotion.promoted_at))
        .bind(&promotion.source)
        .execute(&self.write.0)
        .await?;
        Ok(())
    }

    async fn promotions(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Vec<pronto_domain::experiment::Promotion>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PROMOTION_COLUMNS} FROM promotions WHERE workspace_id = ?1 ORDER BY promoted_at"
        ))
        .bind(workspace.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(promotion).collect()
    }

    async fn secret(&self, name: &str) -> Result<String, StoreError> {
        let fresh = crate::random_secret();
        sqlx::query("INSERT INTO secrets (name, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(&fresh)
            .execute(&self.write.0)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM secrets WHERE name = ?1")
                .bind(name)
                .fetch_one(&self.write.0)
                .await?,
        )
    }

    async fn count_hits(
        &self,
        buckets: &[(String, std::time::Duration)],
        now: DateTime<Utc>,
    ) -> Result<Vec<u64>, StoreError> {
        Ok(self.hits.count(buckets, now))
    }

    async fn quarantined(&self, workspace: WorkspaceId) -> Result<Vec<Quarantined>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, row_id, reason, at FROM quarantine \
             WHERE workspace_id = ?1 OR workspace_id IS NULL ORDER BY at, kind, row_id",
        )
        .bind(workspace.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Quarantined {
                    kind: r.try_get(0)?,
                    id: r.try_get(1)?,
                    reason: r.try_get(2)?,
                    at: r.at(3)?,
                })
            })
            .collect()
    }

    async fn keep_unmapped(
        &self,
        workspace: WorkspaceId,
        d: &UnmappedDelivery,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO unmapped_deliveries (workspace_id, platform, shop, delivery_id, topic, reason, body, \
             received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
        )
        .bind(workspace.to_string())
        .bind(&d.platform)
        .bind(&d.shop)
        .bind(&d.delivery_id)
        .bind(&d.topic)
        .bind(&d.reason)
        .bind(&d.body)
        .bind(ts(d.received_at))
        .execute(&self.write.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn unmapped(&self, workspace: WorkspaceId) -> Result<Vec<UnmappedDelivery>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {UNMAPPED_COLUMNS} FROM unmapped_deliveries WHERE workspace_id = ?1 \
             ORDER BY received_at DESC LIMIT 100"
        ))
        .bind(workspace.to_string())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(unmapped_delivery).collect()
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

    async fn fold_reports(
        &self,
        rules: &[pronto_domain::experiment::results::ConversionRule],
        batch: i64,
    ) -> Result<crate::Folded, StoreError> {
        crate::apply::reports::fold(&*self.write, rules, batch).await
    }

    async fn report_counts(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<
        Vec<(
            pronto_domain::experiment::results::BucketKey,
            pronto_domain::experiment::results::Counts,
        )>,
        StoreError,
    > {
        let rows = sqlx::query(
            "SELECT workspace_id, hour, flow_id, experiment, counts FROM report_counts \
             WHERE workspace_id = ?1 AND hour >= ?2 AND hour < ?3",
        )
        .bind(workspace.to_string())
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| crate::rows::report_bucket(r).map(|((_, b), c)| (b, c)))
            .collect()
    }

    async fn delivery_counts(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let from = crate::hour_of(from);
        Ok(sqlx::query_as(
            "SELECT flow_id, kind, CAST(sum(n) AS BIGINT) FROM delivery_counts \
             WHERE workspace_id = ?1 AND hour >= ?2 AND hour < ?3 GROUP BY flow_id, kind ORDER BY flow_id, kind",
        )
        .bind(workspace.to_string())
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(&self.read)
        .await?)
    }

    async fn apply_catalog(
        &self,
        workspace: WorkspaceId,
        shop: &str,
        changes: &[pronto_domain::catalog::Change],
    ) -> Result<pronto_domain::catalog::Applied, StoreError> {
        crate::apply::catalog::apply_changes(&*self.write, workspace, shop, changes).await
    }

    async fn related_products(
        &self,
        workspace: WorkspaceId,
        shop: &str,
        items: &[String],
    ) -> Result<pronto_domain::catalog::Related, StoreError> {
        crate::apply::catalog::related(&*self.write, workspace, shop, items).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.shared.write_failure().is_none() {
            sqlx::query("SELECT 1").execute(&self.read).await?;
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        let probe = sqlx::query("INSERT INTO store_probe (id, at) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET at = excluded.at")
            .bind(ts(Utc::now()))
            .execute(&mut *tx)
            .await;
        if let Err(e) = probe {
            tx.rollback().await;
            return Err(e.into());
        }
        tx.commit().await?;
        self.shared.write_ok();
        Ok(())
    }

    async fn close(&self) {
        self.writers.close().await;
        self.read.close().await;
        self.write.0.close().await;
    }
}

/// Ownership rows as read (`Store::ownership_between`, `Store::ownership_of`).
fn ownership(
    rows: Vec<(String, String, String)>,
) -> Result<Vec<(LeadId, DateTime<Utc>, String)>, StoreError> {
    rows.into_iter()
        .map(|(l, at, rep)| Ok((uuid(&l)?, parse_ts(&at)?, rep)))
        .collect()
}
