//! PostgreSQL: for production and for several `pronto serve` processes on one database. A pool for reads and
//! a few group-commit writers in parallel; every uniqueness rule is a unique key, so concurrent writers and
//! processes stay correct (a lost race is a conflict, rolled back to the item's savepoint and retried).

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
    api_key, ingested, lead_win, log_entry, message_view, promotion, run_view, stored_event,
    unmapped_delivery, PROMOTION_COLUMNS, UNMAPPED_COLUMNS,
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
use chrono::{DateTime, Utc};
use pronto_domain::resolve::Known;
use pronto_domain::{ContactId, EventId, Identity, LeadId, WorkspaceId};
use pronto_domain::{MessageId, RunId};
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

fn rand_below(n: u32) -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b) % n
}

impl PostgresStore {
    pub async fn open(url: &str, opts: Options) -> Result<Self, StoreError> {
        let writers = opts.pg_writers.max(1);
        // Plan every execution with its real parameters and the table's current size. With cached generic plans
        // a statement first planned while a table was young kept a scan or hash join that later cost more than
        // everything else together (seen under load); a few bulk statements per group make replanning cheap.
        let connect =
            PgConnectOptions::from_str(url)?.options([("plan_cache_mode", "force_custom_plan")]);
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
                    .connect_with(
                        PgConnectOptions::from_str(read)?
                            .options([("plan_cache_mode", "force_custom_plan")]),
                    )
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
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        let created = sqlx::query(
            "INSERT INTO workspaces (id, name, is_default, created_at) VALUES ($1, 'default', TRUE, now()) \
             ON CONFLICT DO NOTHING",
        )
        .bind(WorkspaceId::new().0)
        .execute(&self.pool.0)
        .await?
        .rows_affected()
            == 1;
        let id: Uuid = sqlx::query_scalar("SELECT id FROM workspaces WHERE is_default")
            .fetch_one(&self.pool.0)
            .await?;
        Ok(DefaultWorkspace {
            id: WorkspaceId(id),
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
        let mut tx = self.pool.begin().await?;
        for (kind, key_hash) in keys {
            let done = sqlx::query(
                "INSERT INTO api_keys (key_hash, id, workspace_id, kind, origin, label, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, now()) ON CONFLICT DO NOTHING",
            )
            .bind(key_hash)
            .bind(crate::key_id(key_hash))
            .bind(workspace.0)
            .bind(kind.as_str())
            .bind(origin.as_str())
            .bind(label)
            .execute(&mut *tx.0)
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
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM api_keys WHERE workspace_id = $1 AND kind = $2 AND revoked_at IS NULL)",
        )
        .bind(workspace.0)
        .bind(kind.as_str())
        .fetch_one(&self.pool.0)
        .await?)
    }

    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query("SELECT id, kind, origin, label, created_at, revoked_at FROM api_keys WHERE key_hash = $1")
            .bind(key_hash)
            .fetch_optional(&self.pool.0)
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
        let ws: Option<Uuid> = sqlx::query_scalar(
            "SELECT workspace_id FROM api_keys WHERE key_hash = $1 AND kind = $2 AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .bind(kind.as_str())
        .fetch_optional(&self.pool.0)
        .await?;
        Ok(ws.map(WorkspaceId))
    }

    async fn keys(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>, StoreError> {
        sqlx::query(
            "SELECT id, kind, origin, label, created_at, revoked_at FROM api_keys WHERE workspace_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(workspace.0)
        .fetch_all(&self.pool.0)
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
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3) WHERE workspace_id = $1 AND id = $2 \
             RETURNING id, kind, origin, label, created_at, revoked_at",
        )
        .bind(workspace.0)
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool.0)
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
            "UPDATE api_keys SET revoked_at = $4 WHERE workspace_id = $1 AND kind = $2 AND origin = 'env' \
             AND key_hash <> $3 AND revoked_at IS NULL",
        )
        .bind(workspace.0)
        .bind(kind.as_str())
        .bind(keep)
        .bind(now)
        .execute(&self.pool.0)
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
             WHERE c.workspace_id = $1 AND c.id = (SELECT coalesce(merged_into, id) FROM contacts WHERE id = $2)",
        )
        .bind(workspace.0)
        .bind(id.0)
        .fetch_optional(&self.pool.0)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let live: Uuid = row.try_get("id")?;
        let identities = sqlx::query(
            "SELECT kind, value FROM identities WHERE contact_id = $1 ORDER BY kind, value",
        )
        .bind(live)
        .fetch_all(&self.pool.0)
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
        let merged_from: Vec<Uuid> = sqlx::query_scalar(
            "SELECT from_contact FROM contact_merges WHERE into_contact = $1 ORDER BY id",
        )
        .bind(live)
        .fetch_all(&self.pool.0)
        .await?;
        let Json(traits): Json<Map<String, Value>> = row.try_get("traits")?;
        Ok(Some(Contact {
            id: ContactId(live),
            traits,
            identities,
            merged_from: merged_from.into_iter().map(ContactId).collect(),
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        }))
    }

    async fn find_contact(
        &self,
        workspace: WorkspaceId,
        identity: &Identity,
    ) -> Result<Option<ContactId>, StoreError> {
        let id: Option<Uuid> =
            sqlx::query_scalar("SELECT contact_id FROM identities WHERE workspace_id = $1 AND kind = $2 AND value = $3")
                .bind(workspace.0)
                .bind(identity.kind.as_str())
                .bind(&identity.value)
                .fetch_optional(&self.pool.0)
                .await?;
        Ok(id.map(ContactId))
    }

    async fn timeline(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        sqlx::query(
            "SELECT seq, id, contact_id, type, name, message_id, payload::text AS payload, client_ts, received_at \
             FROM events WHERE workspace_id = $1 \
             AND contact_id = (SELECT coalesce(merged_into, id) FROM contacts WHERE id = $2) \
             AND seq < $3 ORDER BY seq DESC LIMIT $4",
        )
        .bind(workspace.0)
        .bind(contact.0)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool.0)
        .await?
        .iter()
        .map(stored_event)
        .collect()
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(sqlx::query_scalar(flows::NEXT_DUE)
            .fetch_one(&self.pool.0)
            .await?)
    }

    async fn fire_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Fired, StoreError> {
        crate::apply::timers::fire_batch(&*self.pool, &self.shared, now, limit).await
    }

    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<OutMessage>, StoreError> {
        crate::apply::outbox::claim(&*self.pool, now, limit, lease_until).await
    }

    async fn release_claims(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE messages SET next_attempt_at = $1, claimed_at = NULL WHERE claimed_at IS NOT NULL AND state = 'queued'",
        )
        .bind(now)
        .execute(&self.pool.0)
        .await?
        .rows_affected())
    }

    async fn next_message_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT min(next_attempt_at) FROM messages WHERE state = 'queued'")
                .fetch_one(&self.pool.0)
                .await?,
        )
    }

    async fn record_deliveries(
        &self,
        outcomes: &[(MessageId, Delivery)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let policy = self.shared.program().messages.soft_bounces;
        crate::apply::outbox::record(&*self.pool, outcomes, now, policy).await
    }

    async fn erase_contact(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::Erasure>, StoreError> {
        crate::apply::erase::erase(&*self.pool, workspace, contact, by, now).await
    }

    async fn prune(
        &self,
        events_before: Option<DateTime<Utc>>,
        messages_before: Option<DateTime<Utc>>,
        cursor: &crate::PruneCursor,
        batch: i64,
    ) -> Result<crate::Pruned, StoreError> {
        crate::apply::retention::prune(&*self.pool, events_before, messages_before, cursor, batch)
            .await
    }

    async fn erasures(
        &self,
        workspace: WorkspaceId,
        limit: i64,
    ) -> Result<Vec<crate::ErasureRecord>, StoreError> {
        crate::apply::erase::list(&*self.pool, workspace, limit).await
    }

    async fn record_bounces(
        &self,
        bounces: &[crate::Bounce],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let policy = self.shared.program().messages.soft_bounces;
        crate::apply::outbox::bounces(&*self.pool, bounces, now, policy).await
    }

    async fn suppressions(
        &self,
        workspace: WorkspaceId,
        query: &crate::SuppressionQuery,
    ) -> Result<Vec<pronto_domain::suppression::Suppression>, StoreError> {
        crate::apply::outbox::list(&*self.pool, workspace, query).await
    }

    async fn suppress(
        &self,
        workspace: WorkspaceId,
        entries: &[pronto_domain::suppression::Suppression],
    ) -> Result<u64, StoreError> {
        crate::apply::outbox::suppress(&*self.pool, workspace, entries).await
    }

    async fn unsuppress(
        &self,
        workspace: WorkspaceId,
        medium: pronto_domain::suppression::Medium,
        address: &str,
    ) -> Result<bool, StoreError> {
        crate::apply::outbox::unsuppress(&*self.pool, workspace, medium, address).await
    }

    async fn find_messages(
        &self,
        workspace: WorkspaceId,
        q: &crate::MessageQuery,
    ) -> Result<Vec<MessageView>, StoreError> {
        let (filter, binds) = crate::flows::message_listing_sql(q, |n| format!("${n}"));
        let sql = format!("SELECT * FROM messages {filter}");
        let mut query = sqlx::query(&sql).bind(workspace.0);
        for b in &binds {
            query = match b {
                crate::flows::MessageBind::Text(t) => query.bind(t.as_str()),
                crate::flows::MessageBind::Id(id) => query.bind(*id),
                crate::flows::MessageBind::Limit(n) => query.bind(*n),
            };
        }
        let rows = query.fetch_all(&self.pool.0).await?;
        rows.iter().map(message_view).collect()
    }

    async fn flow_stats(&self, workspace: WorkspaceId) -> Result<Vec<FlowStats>, StoreError> {
        let mut c = self.pool.0.acquire().await?;
        flows::flow_stats(&mut c, workspace).await
    }

    async fn run(&self, workspace: WorkspaceId, id: RunId) -> Result<Option<RunView>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM runs WHERE id = $1 AND workspace_id = $2")
            .bind(id.0)
            .bind(workspace.0)
            .fetch_optional(&self.pool.0)
            .await?
        else {
            return Ok(None);
        };
        let log = sqlx::query("SELECT * FROM run_log WHERE run_id = $1 ORDER BY id")
            .bind(id.0)
            .fetch_all(&self.pool.0)
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
        let mut c = self.pool.0.acquire().await?;
        sales::lead_view(&mut c, workspace, id).await
    }

    async fn lead_wins(
        &self,
        workspace: WorkspaceId,
        since: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, String, f64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT payload FROM events WHERE workspace_id = $1 AND name = 'Lead Won' AND received_at >= $2 \
             ORDER BY seq",
        )
        .bind(workspace.0)
        .bind(since)
        .fetch_all(&self.reports)
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
        let mut c = self.pool.0.acquire().await?;
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
            sqlx::query_as(&crate::sessions::commerce_by_hour_sql(HOUR, "seq", |n| {
                format!("${n}")
            }))
            .bind(workspace.0)
            .bind(from)
            .bind(to)
            .bind(upto)
            .fetch_all(&self.reports)
            .await?;
        crate::rows::commerce_hours(rows)
    }

    async fn commerce_mark(&self, workspace: WorkspaceId) -> Result<i64, StoreError> {
        let seq: Option<i64> =
            sqlx::query_scalar(&crate::sessions::commerce_mark_sql(|n| format!("${n}")))
                .bind(workspace.0)
                .fetch_optional(&self.reports)
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
                format!("${n}")
            }))
            .bind(workspace.0)
            .bind(after)
            .fetch_all(&self.reports)
            .await?;
        crate::rows::commerce_since(rows, after)
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

    async fn ownership_between(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, DateTime<Utc>, String)>, StoreError> {
        let rows = sqlx::query_as(&format!(
            "SELECT g.lead_id, g.at, g.rep FROM leads l JOIN lead_log g ON g.lead_id = l.id \
             WHERE l.workspace_id = $1 AND l.created_at >= $2 AND l.created_at < $3 {}",
            crate::sales::OWNERSHIP_STEPS
        ))
        .bind(workspace.0)
        .bind(from)
        .bind(to)
        .fetch_all(&self.reports)
        .await?;
        Ok(ownership(rows))
    }

    async fn ownership_of(
        &self,
        workspace: WorkspaceId,
        leads: &[LeadId],
    ) -> Result<Vec<(LeadId, DateTime<Utc>, String)>, StoreError> {
        let ids: Vec<Uuid> = leads.iter().map(|l| l.0).collect();
        let rows = sqlx::query_as(&format!(
            "SELECT g.lead_id, g.at, g.rep FROM leads l JOIN lead_log g ON g.lead_id = l.id \
             WHERE l.id = ANY($2) AND l.workspace_id = $1 {}",
            crate::sales::OWNERSHIP_STEPS
        ))
        .bind(workspace.0)
        .bind(&ids)
        .fetch_all(&self.reports)
        .await?;
        Ok(ownership(rows))
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

    async fn contact_runs(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
    ) -> Result<Vec<RunView>, StoreError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE contact_id = $1 AND workspace_id = $2 ORDER BY created_at DESC LIMIT 100",
        )
        .bind(contact.0)
        .bind(workspace.0)
        .fetch_all(&self.pool.0)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.run(workspace, RunId(id)).await? {
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
        let mut tx = self.pool.0.begin().await?;
        let row: Option<(Uuid, Json<Map<String, Value>>)> = sqlx::query_as(
            "SELECT live.id, live.traits FROM contacts c JOIN contacts live ON live.id = COALESCE(c.merged_into, c.id) \
             WHERE c.id = $1 AND c.workspace_id = $2 FOR UPDATE OF live",
        )
        .bind(contact.0)
        .bind(workspace.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((live, Json(traits))) = row else {
            return Ok(false);
        };
        let old = traits;
        let before = pronto_domain::consent::snapshot(&old);
        let mut merged = crate::contacts::merge_traits(old, patch);
        pronto_domain::consent::record_changes(&before, &mut merged, source, now);
        sqlx::query("UPDATE contacts SET traits = $2, updated_at = $3 WHERE id = $1")
            .bind(live)
            .bind(Json(Value::Object(merged)))
            .bind(now)
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
            "INSERT INTO clicks (workspace_id, message_key, url, clicked_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(workspace.0)
        .bind(message)
        .bind(url)
        .bind(at)
        .execute(&self.pool.0)
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
        crate::apply::offers::add_codes(&*self.pool, workspace, offer, codes, now).await
    }

    async fn offer_stock(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Vec<crate::OfferStock>, StoreError> {
        crate::apply::offers::stock(&*self.pool, workspace).await
    }

    async fn record_promotion(
        &self,
        workspace: WorkspaceId,
        promotion: &pronto_domain::experiment::Promotion,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO promotions (workspace_id, flow_id, experiment, variant, promoted_at, source) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(workspace.0)
        .bind(&promotion.flow)
        .bind(&promotion.experiment)
        .bind(&promotion.variant)
        .bind(promotion.promoted_at)
        .bind(&promotion.source)
        .execute(&self.pool.0)
        .await?;
        Ok(())
    }

    async fn promotions(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Vec<pronto_domain::experiment::Promotion>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PROMOTION_COLUMNS} FROM promotions WHERE workspace_id = $1 ORDER BY promoted_at"
        ))
        .bind(workspace.0)
        .fetch_all(&self.pool.0)
        .await?;
        rows.iter().map(promotion).collect()
    }

    async fn secret(&self, name: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(crate::random_secret())
            .execute(&self.pool.0)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool.0)
                .await?,
        )
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

    async fn quarantined(&self, workspace: WorkspaceId) -> Result<Vec<Quarantined>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, row_id, reason, at FROM quarantine \
             WHERE workspace_id = $1::text OR workspace_id IS NULL ORDER BY at, kind, row_id",
        )
        .bind(workspace.0.to_string())
        .fetch_all(&self.pool.0)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Quarantined {
                    kind: r.try_get(0)?,
                    id: r.try_get(1)?,
                    reason: r.try_get(2)?,
                    at: r.try_get(3)?,
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
             received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(workspace.0)
        .bind(&d.platform)
        .bind(&d.shop)
        .bind(&d.delivery_id)
        .bind(&d.topic)
        .bind(&d.reason)
        .bind(&d.body)
        .bind(d.received_at)
        .execute(&self.pool.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn unmapped(&self, workspace: WorkspaceId) -> Result<Vec<UnmappedDelivery>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {UNMAPPED_COLUMNS} FROM unmapped_deliveries WHERE workspace_id = $1 \
             ORDER BY received_at DESC LIMIT 100"
        ))
        .bind(workspace.0)
        .fetch_all(&self.pool.0)
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

    async fn fold_reports(
        &self,
        rules: &[pronto_domain::experiment::results::ConversionRule],
        batch: i64,
    ) -> Result<crate::Folded, StoreError> {
        crate::apply::reports::fold(&*self.pool, rules, batch).await
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
             WHERE workspace_id = $1 AND hour >= $2 AND hour < $3",
        )
        .bind(workspace.0)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool.0)
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
             WHERE workspace_id = $1 AND hour >= $2 AND hour < $3 GROUP BY flow_id, kind ORDER BY flow_id, kind",
        )
        .bind(workspace.0)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool.0)
        .await?)
    }

    async fn apply_catalog(
        &self,
        workspace: WorkspaceId,
        shop: &str,
        changes: &[pronto_domain::catalog::Change],
    ) -> Result<pronto_domain::catalog::Applied, StoreError> {
        crate::apply::catalog::apply_changes(&*self.pool, workspace, shop, changes).await
    }

    async fn related_products(
        &self,
        workspace: WorkspaceId,
        shop: &str,
        items: &[String],
    ) -> Result<pronto_domain::catalog::Related, StoreError> {
        crate::apply::catalog::related(&*self.pool, workspace, shop, items).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.shared.write_failure().is_none() {
            sqlx::query("SELECT 1").execute(&self.pool.0).await?;
            return Ok(());
        }
        sqlx::query("INSERT INTO store_probe (id, at) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = now()")
            .execute(&self.pool.0)
            .await?;
        self.shared.write_ok();
        Ok(())
    }

    async fn close(&self) {
        self.listener.abort();
        self.writers.close().await;
        self.pool.0.close().await;
    }
}

/// Ownership rows as read (`Store::ownership_between`, `Store::ownership_of`).
fn ownership(rows: Vec<(Uuid, DateTime<Utc>, String)>) -> Vec<(LeadId, DateTime<Utc>, String)> {
    rows.into_iter()
        .map(|(l, at, rep)| (LeadId(l), at, rep))
        .collect()
}
