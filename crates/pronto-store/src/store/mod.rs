//! The one [`Store`] implementation, written once over a [`Backend`]: what is the same on both databases
//! (every unit of work in `apply/`, and every statement that reads or writes alike once ids, times and JSON are
//! bound through [`Db`]) lives here; a backend implements [`Backend`] with its pools and only the methods
//! whose statements differ in dialect (JSON functions against arrays, transactions on SQLite's own writer,
//! PostgreSQL's row locks and shared rate limits) or that read through its own per-concern modules.
//!
//! Statements here use `$N` placeholders (both drivers read them) and bind through [`Db::id`], [`Db::ts`]
//! and [`Db::json`]; rows decode through `crate::rows`. Which pool a statement runs on is part of its
//! meaning and kept as each backend had it: [`Backend::write`] where a read must see this process's own
//! latest commit (keys, secrets, the default workspace), [`Backend::reports`] for the reports (a replica on
//! PostgreSQL when one is configured), [`Backend::read`] for the rest.

mod sessions;

use crate::db::{Db, Query};
use crate::rows::{
    api_key, lead_win, log_entry, message_view, promotion, run_view, stored_event,
    unmapped_delivery, Cols, PROMOTION_COLUMNS, UNMAPPED_COLUMNS,
};
use crate::tx::Commit;
use crate::writer::{Begin, Writers};
use crate::{
    ApiKey, Contact, DefaultWorkspace, Delivery, Fired, FlowStats, IngestItem, Ingested, KeyKind,
    KeyOrigin, MessageView, OutMessage, Quarantined, RunView, Shared, Store, StoreError,
    StoredEvent, UnmappedDelivery,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::{ContactId, Identity, LeadId, MessageId, RunId, WorkspaceId};
use serde_json::{Map, Value};
use sqlx::{ColumnIndex, Database, Encode, Pool, Type};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a database backend gives the one [`Store`] implementation: its pools, its writers, and the methods
/// written per dialect.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    type Db: Db;
    type Writer: Begin<Tx: crate::text::TextTx>;
    /// `sqlite` or `postgres`.
    const NAME: &'static str;
    /// An event's hour (client time, else received), as RFC 3339 text, in this dialect.
    const EVENT_HOUR: &'static str;
    /// How the commerce counts' load names `seq` (SQLite writes `+seq` to keep its planner on the period's
    /// index; see `crate::sessions::commerce_by_hour_sql`).
    const COMMERCE_SEQ: &'static str;
    /// What locks the rows a read-modify-write reads until its transaction ends (PostgreSQL's
    /// `FOR UPDATE`); nothing on SQLite, whose one writer connection already serialises them.
    const LOCK_ROWS: &'static str;

    /// Reads that may come from any connection.
    fn read(&self) -> &Pool<Self::Db>;
    /// Reads and writes that must see this process's latest commit.
    fn write(&self) -> &Pool<Self::Db>;
    /// The reports' reads.
    fn reports(&self) -> &Pool<Self::Db>;
    /// Transactions for the units of work in `crate::apply`.
    fn writer(&self) -> &Self::Writer;
    /// A read-only transaction that sees one snapshot, where the reports read, of the writer's
    /// transaction type (so the leaves' reads run in it); it is ended by rolling back.
    async fn snapshot(&self) -> Result<<Self::Writer as Begin>::Tx, StoreError>;
    /// The connection under one of [`Backend::writer`]'s transactions.
    fn conn(tx: &mut <Self::Writer as Begin>::Tx) -> &mut <Self::Db as Database>::Connection;
    fn writers(&self) -> &Writers;
    fn state(&self) -> &Arc<Shared>;

    async fn ownership_of(
        &self,
        workspace: WorkspaceId,
        leads: &[LeadId],
    ) -> Result<Vec<(LeadId, DateTime<Utc>, String)>, StoreError>;
    async fn count_hits(
        &self,
        buckets: &[(String, std::time::Duration)],
        now: DateTime<Utc>,
    ) -> Result<Vec<u64>, StoreError>;
    /// Answers once a write commits again after one failed (see [`Store::ping`]).
    async fn probe_write(&self) -> Result<(), StoreError>;
    async fn close_pools(&self);

    // Reads through the backend's per-concern modules.
    async fn flow_stats(&self, workspace: WorkspaceId) -> Result<Vec<FlowStats>, StoreError>;
    async fn lead(
        &self,
        workspace: WorkspaceId,
        id: LeadId,
    ) -> Result<Option<crate::LeadView>, StoreError>;
    async fn leads(
        &self,
        workspace: WorkspaceId,
        filter: &crate::LeadFilter,
        limit: i64,
    ) -> Result<Vec<crate::LeadState>, StoreError>;
    async fn leads_between(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::LeadState>, StoreError>;
    async fn rep_status(
        &self,
        workspace: WorkspaceId,
        reps: &[String],
    ) -> Result<crate::RepStatus, StoreError>;
    async fn tasks(
        &self,
        workspace: WorkspaceId,
        rep: Option<&str>,
        open_only: bool,
    ) -> Result<Vec<crate::Task>, StoreError>;
    async fn set_away(
        &self,
        workspace: WorkspaceId,
        rep: &str,
        away: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn run_outcomes(
        &self,
        workspace: WorkspaceId,
        of: crate::RunsOf,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rules: &[pronto_domain::experiment::results::ConversionRule],
    ) -> Result<Vec<pronto_domain::experiment::results::RunOutcome>, StoreError>;
}

/// The kept counts of a workspace's hours in `[$2, $3)`.
const REPORT_COUNTS: &str =
    "SELECT workspace_id, hour, flow_id, experiment, counts FROM report_counts \
     WHERE workspace_id = $1 AND hour >= $2 AND hour < $3";

/// A statement in `$N` form.
fn q<D: Db>(sql: &str) -> Query<'_, D> {
    sqlx::query::<D>(sql)
}

#[async_trait]
impl<B> Store for B
where
    B: Backend,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Type<B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'a> &'a str: ColumnIndex<<B::Db as Database>::Row>,
{
    fn backend(&self) -> &'static str {
        B::NAME
    }

    async fn ingest(
        &self,
        workspace: WorkspaceId,
        items: Vec<IngestItem>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Ingested>, StoreError> {
        self.writers().submit(workspace, items, received_at).await
    }

    async fn default_workspace(&self) -> Result<DefaultWorkspace, StoreError> {
        let insert = q("INSERT INTO workspaces (id, name, is_default, created_at) VALUES ($1, 'default', $2, $3) \
             ON CONFLICT DO NOTHING")
        .bind(B::Db::id(WorkspaceId::new().0))
        .bind(true)
        .bind(B::Db::ts(Utc::now()));
        let created = B::Db::execute(self.write(), insert).await? == 1;
        let found = q("SELECT id FROM workspaces WHERE is_default = $1").bind(true);
        let row = B::Db::fetch_one(self.write(), found).await?;
        Ok(DefaultWorkspace {
            id: WorkspaceId(row.id(0)?),
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
        let mut tx = self.writer().begin().await?;
        for (kind, key_hash) in keys {
            let insert = q(
                "INSERT INTO api_keys (key_hash, id, workspace_id, kind, origin, label, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(*key_hash)
            .bind(crate::key_id(key_hash))
            .bind(B::Db::id(workspace.0))
            .bind(kind.as_str())
            .bind(origin.as_str())
            .bind(label.map(str::to_string))
            .bind(B::Db::ts(Utc::now()));
            match B::Db::execute_in(B::conn(&mut tx), insert).await {
                Ok(1) => {}
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
        let sql = q("SELECT count(*) FROM api_keys WHERE workspace_id = $1 AND kind = $2 AND revoked_at IS NULL")
            .bind(B::Db::id(workspace.0))
            .bind(kind.as_str());
        Ok(B::Db::fetch_one(self.write(), sql).await?.int(0)? > 0)
    }

    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = q("SELECT id, kind, origin, label, created_at, revoked_at FROM api_keys WHERE key_hash = $1")
            .bind(key_hash);
        B::Db::fetch_optional(self.write(), sql)
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
        let sql = q("SELECT workspace_id FROM api_keys WHERE key_hash = $1 AND kind = $2 AND revoked_at IS NULL")
            .bind(key_hash)
            .bind(kind.as_str());
        B::Db::fetch_optional(self.read(), sql)
            .await?
            .map(|r| r.id(0).map(WorkspaceId))
            .transpose()
    }

    async fn keys(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>, StoreError> {
        let sql = q(
            "SELECT id, kind, origin, label, created_at, revoked_at FROM api_keys WHERE workspace_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(B::Db::id(workspace.0));
        B::Db::fetch_all(self.read(), sql)
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
        let sql = q(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3) WHERE workspace_id = $1 AND id = $2 \
             RETURNING id, kind, origin, label, created_at, revoked_at",
        )
        .bind(B::Db::id(workspace.0))
        .bind(id)
        .bind(B::Db::ts(now));
        B::Db::fetch_optional(self.write(), sql)
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
        let sql = q(
            "UPDATE api_keys SET revoked_at = $4 WHERE workspace_id = $1 AND kind = $2 AND origin = 'env' \
             AND key_hash <> $3 AND revoked_at IS NULL",
        )
        .bind(B::Db::id(workspace.0))
        .bind(kind.as_str())
        .bind(keep)
        .bind(B::Db::ts(now));
        Ok(B::Db::execute(self.write(), sql).await?)
    }

    async fn contact(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
    ) -> Result<Option<Contact>, StoreError> {
        let sql = q(
            "SELECT c.id, c.traits, c.created_at, c.updated_at FROM contacts c \
             WHERE c.workspace_id = $1 AND c.id = (SELECT coalesce(merged_into, id) FROM contacts WHERE id = $2)",
        )
        .bind(B::Db::id(workspace.0))
        .bind(B::Db::id(id.0));
        let Some(row) = B::Db::fetch_optional(self.read(), sql).await? else {
            return Ok(None);
        };
        let live = row.id("id")?;
        let sql =
            q("SELECT kind, value FROM identities WHERE contact_id = $1 ORDER BY kind, value")
                .bind(B::Db::id(live));
        let identities = B::Db::fetch_all(self.read(), sql)
            .await?
            .iter()
            .map(|r| {
                Ok(Identity {
                    kind: r.text(0)?.parse().map_err(StoreError::Corrupt)?,
                    value: r.text(1)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let sql = q("SELECT from_contact FROM contact_merges WHERE into_contact = $1 ORDER BY id")
            .bind(B::Db::id(live));
        let merged_from = B::Db::fetch_all(self.read(), sql)
            .await?
            .iter()
            .map(|r| r.id(0).map(ContactId))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Contact {
            id: ContactId(live),
            traits: row.json("traits")?,
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
        let sql = q("SELECT contact_id FROM identities WHERE workspace_id = $1 AND kind = $2 AND value = $3")
            .bind(B::Db::id(workspace.0))
            .bind(identity.kind.as_str())
            .bind(identity.value.as_str());
        B::Db::fetch_optional(self.read(), sql)
            .await?
            .map(|r| r.id(0).map(ContactId))
            .transpose()
    }

    async fn timeline(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = q(
            "SELECT seq, id, contact_id, type, name, message_id, payload, client_ts, received_at FROM events \
             WHERE workspace_id = $1 AND contact_id = (SELECT coalesce(merged_into, id) FROM contacts WHERE id = $2) \
             AND seq < $3 ORDER BY seq DESC LIMIT $4",
        )
        .bind(B::Db::id(workspace.0))
        .bind(B::Db::id(contact.0))
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit));
        B::Db::fetch_all(self.read(), sql)
            .await?
            .iter()
            .map(stored_event)
            .collect()
    }

    fn shared(&self) -> &Arc<Shared> {
        self.state()
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        B::Db::fetch_one(self.read(), q(crate::flows::NEXT_DUE))
            .await?
            .opt_at(0)
    }

    async fn fire_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Fired, StoreError> {
        crate::apply::timers::fire_batch(self.writer(), self.state(), now, limit).await
    }

    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<OutMessage>, StoreError> {
        crate::apply::outbox::claim(self.writer(), now, limit, lease_until).await
    }

    async fn release_claims(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let sql = q(
            "UPDATE messages SET next_attempt_at = $1, claimed_at = NULL WHERE claimed_at IS NOT NULL AND state = 'queued'",
        )
        .bind(B::Db::ts(now));
        Ok(B::Db::execute(self.write(), sql).await?)
    }

    async fn next_message_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let sql = q("SELECT min(next_attempt_at) FROM messages WHERE state = 'queued'");
        B::Db::fetch_one(self.read(), sql).await?.opt_at(0)
    }

    async fn record_deliveries(
        &self,
        outcomes: &[(MessageId, Delivery)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let policy = self.state().program().messages.soft_bounces;
        crate::apply::outbox::record(self.writer(), outcomes, now, policy).await
    }

    async fn erase_contact(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::Erasure>, StoreError> {
        crate::apply::erase::erase(self.writer(), workspace, contact, by, now).await
    }

    async fn prune(
        &self,
        events_before: Option<DateTime<Utc>>,
        messages_before: Option<DateTime<Utc>>,
        cursor: &crate::PruneCursor,
        batch: i64,
    ) -> Result<crate::Pruned, StoreError> {
        crate::apply::retention::prune(self.writer(), events_before, messages_before, cursor, batch)
            .await
    }

    async fn erasures(
        &self,
        workspace: WorkspaceId,
        limit: i64,
    ) -> Result<Vec<crate::ErasureRecord>, StoreError> {
        crate::apply::erase::list(self.writer(), workspace, limit).await
    }

    async fn record_bounces(
        &self,
        bounces: &[crate::Bounce],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let policy = self.state().program().messages.soft_bounces;
        crate::apply::outbox::bounces(self.writer(), bounces, now, policy).await
    }

    async fn suppressions(
        &self,
        workspace: WorkspaceId,
        query: &crate::SuppressionQuery,
    ) -> Result<Vec<pronto_domain::suppression::Suppression>, StoreError> {
        crate::apply::outbox::list(self.writer(), workspace, query).await
    }

    async fn suppress(
        &self,
        workspace: WorkspaceId,
        entries: &[pronto_domain::suppression::Suppression],
    ) -> Result<u64, StoreError> {
        crate::apply::outbox::suppress(self.writer(), workspace, entries).await
    }

    async fn unsuppress(
        &self,
        workspace: WorkspaceId,
        medium: pronto_domain::suppression::Medium,
        address: &str,
    ) -> Result<bool, StoreError> {
        crate::apply::outbox::unsuppress(self.writer(), workspace, medium, address).await
    }

    async fn find_messages(
        &self,
        workspace: WorkspaceId,
        query: &crate::MessageQuery,
    ) -> Result<Vec<MessageView>, StoreError> {
        let (filter, binds) = crate::flows::message_listing_sql(query, |n| format!("${n}"));
        let sql = format!("SELECT * FROM messages {filter}");
        let mut sql = q(&sql).bind(B::Db::id(workspace.0));
        for b in binds {
            sql = match b {
                crate::flows::MessageBind::Text(t) => sql.bind(t),
                crate::flows::MessageBind::Id(id) => sql.bind(B::Db::id(id)),
                crate::flows::MessageBind::Limit(n) => sql.bind(n),
            };
        }
        B::Db::fetch_all(self.read(), sql)
            .await?
            .iter()
            .map(message_view)
            .collect()
    }

    async fn flow_stats(&self, workspace: WorkspaceId) -> Result<Vec<FlowStats>, StoreError> {
        Backend::flow_stats(self, workspace).await
    }

    async fn run(&self, workspace: WorkspaceId, id: RunId) -> Result<Option<RunView>, StoreError> {
        let sql = q("SELECT * FROM runs WHERE id = $1 AND workspace_id = $2")
            .bind(B::Db::id(id.0))
            .bind(B::Db::id(workspace.0));
        let Some(row) = B::Db::fetch_optional(self.read(), sql).await? else {
            return Ok(None);
        };
        let sql = q("SELECT * FROM run_log WHERE run_id = $1 ORDER BY id").bind(B::Db::id(id.0));
        let log = B::Db::fetch_all(self.read(), sql)
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
        Backend::lead(self, workspace, id).await
    }

    async fn lead_wins(
        &self,
        workspace: WorkspaceId,
        since: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, String, f64)>, StoreError> {
        let sql = q(
            "SELECT payload FROM events WHERE workspace_id = $1 AND name = 'Lead Won' AND received_at >= $2 \
             ORDER BY seq",
        )
        .bind(B::Db::id(workspace.0))
        .bind(B::Db::ts(since));
        let mut out = Vec::new();
        for r in &B::Db::fetch_all(self.reports(), sql).await? {
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
        Backend::leads(self, workspace, filter, limit).await
    }

    async fn commerce_by_hour(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        upto: i64,
    ) -> Result<crate::CommerceHours, StoreError> {
        let sql = crate::sessions::commerce_by_hour_sql(B::EVENT_HOUR, B::COMMERCE_SEQ, |n| {
            format!("${n}")
        });
        let sql = q(&sql)
            .bind(B::Db::id(workspace.0))
            .bind(B::Db::ts(from))
            .bind(B::Db::ts(to))
            .bind(upto);
        let rows = B::Db::fetch_all(self.reports(), sql).await?;
        crate::rows::commerce_hours(
            rows.iter()
                .map(|r| Ok((r.text(0)?, r.text(1)?, r.int(2)?)))
                .collect::<Result<_, StoreError>>()?,
        )
    }

    async fn commerce_mark(&self, workspace: WorkspaceId) -> Result<i64, StoreError> {
        let sql = crate::sessions::commerce_mark_sql(|n| format!("${n}"));
        let sql = q(&sql).bind(B::Db::id(workspace.0));
        match B::Db::fetch_optional(self.reports(), sql).await? {
            Some(r) => r.int(0),
            None => Ok(0),
        }
    }

    async fn commerce_since(
        &self,
        workspace: WorkspaceId,
        after: i64,
    ) -> Result<(crate::CommerceHours, i64), StoreError> {
        let sql = crate::sessions::commerce_since_sql(B::EVENT_HOUR, |n| format!("${n}"));
        let sql = q(&sql).bind(B::Db::id(workspace.0)).bind(after);
        let rows = B::Db::fetch_all(self.reports(), sql).await?;
        crate::rows::commerce_since(
            rows.iter()
                .map(|r| Ok((r.text(0)?, r.text(1)?, r.int(2)?, r.int(3)?)))
                .collect::<Result<_, StoreError>>()?,
            after,
        )
    }

    async fn leads_between(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::LeadState>, StoreError> {
        Backend::leads_between(self, workspace, from, to).await
    }

    async fn ownership_between(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, DateTime<Utc>, String)>, StoreError> {
        let sql = format!(
            "SELECT g.lead_id, g.at, g.rep FROM leads l JOIN lead_log g ON g.lead_id = l.id \
             WHERE l.workspace_id = $1 AND l.created_at >= $2 AND l.created_at < $3 {}",
            crate::sales::OWNERSHIP_STEPS
        );
        let sql = q(&sql)
            .bind(B::Db::id(workspace.0))
            .bind(B::Db::ts(from))
            .bind(B::Db::ts(to));
        B::Db::fetch_all(self.reports(), sql)
            .await?
            .iter()
            .map(crate::rows::ownership)
            .collect()
    }

    async fn ownership_of(
        &self,
        workspace: WorkspaceId,
        leads: &[LeadId],
    ) -> Result<Vec<(LeadId, DateTime<Utc>, String)>, StoreError> {
        Backend::ownership_of(self, workspace, leads).await
    }

    async fn rep_status(
        &self,
        workspace: WorkspaceId,
        reps: &[String],
    ) -> Result<crate::RepStatus, StoreError> {
        Backend::rep_status(self, workspace, reps).await
    }

    async fn tasks(
        &self,
        workspace: WorkspaceId,
        rep: Option<&str>,
        open_only: bool,
    ) -> Result<Vec<crate::Task>, StoreError> {
        Backend::tasks(self, workspace, rep, open_only).await
    }

    async fn set_away(
        &self,
        workspace: WorkspaceId,
        rep: &str,
        away: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Backend::set_away(self, workspace, rep, away, now).await
    }

    async fn contact_runs(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
    ) -> Result<Vec<RunView>, StoreError> {
        let sql = q(
            "SELECT id FROM runs WHERE contact_id = $1 AND workspace_id = $2 ORDER BY created_at DESC LIMIT 100",
        )
        .bind(B::Db::id(contact.0))
        .bind(B::Db::id(workspace.0));
        let ids = B::Db::fetch_all(self.read(), sql).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(r) = Store::run(self, workspace, RunId(id.id(0)?)).await? {
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
        let sql = format!(
            "SELECT live.id, live.traits FROM contacts c JOIN contacts live ON live.id = COALESCE(c.merged_into, c.id) \
             WHERE c.id = $1 AND c.workspace_id = $2{}",
            B::LOCK_ROWS
        );
        // On the writer's own transactions: on SQLite those survive the database rolling a transaction back
        // by itself (a full disk), which sqlx's `Transaction` on the writer connection does not (`crate::sqlite`).
        let mut tx = self.writer().begin().await?;
        let read = q(&sql)
            .bind(B::Db::id(contact.0))
            .bind(B::Db::id(workspace.0));
        let patched = match B::Db::fetch_optional_in(B::conn(&mut tx), read).await {
            Ok(Some(row)) => match (row.id(0), row.json::<Map<String, Value>, _>(1)) {
                (Ok(live), Ok(old)) => {
                    let before = pronto_domain::consent::snapshot(&old);
                    let mut merged = crate::contacts::merge_traits(old, patch);
                    pronto_domain::consent::record_changes(&before, &mut merged, source, now);
                    let write = q("UPDATE contacts SET traits = $2, updated_at = $3 WHERE id = $1")
                        .bind(B::Db::id(live))
                        .bind(B::Db::json(Value::Object(merged)))
                        .bind(B::Db::ts(now));
                    B::Db::execute_in(B::conn(&mut tx), write)
                        .await
                        .map(|_| true)
                        .map_err(Into::into)
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
            Ok(None) => Ok(false),
            Err(e) => Err(e.into()),
        };
        match patched {
            Ok(true) => {
                tx.commit().await?;
                Ok(true)
            }
            other => {
                tx.rollback().await;
                other
            }
        }
    }

    async fn record_click(
        &self,
        workspace: WorkspaceId,
        message: &str,
        url: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let sql = q(
            "INSERT INTO clicks (workspace_id, message_key, url, clicked_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(B::Db::id(workspace.0))
        .bind(message)
        .bind(url)
        .bind(B::Db::ts(at));
        B::Db::execute(self.write(), sql).await?;
        Ok(())
    }

    async fn add_offer_codes(
        &self,
        workspace: WorkspaceId,
        offer: &str,
        codes: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        crate::apply::offers::add_codes(self.writer(), workspace, offer, codes, now).await
    }

    async fn offer_stock(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Vec<crate::OfferStock>, StoreError> {
        crate::apply::offers::stock(self.writer(), workspace).await
    }

    async fn record_promotion(
        &self,
        workspace: WorkspaceId,
        promotion: &pronto_domain::experiment::Promotion,
    ) -> Result<(), StoreError> {
        let sql = q(
            "INSERT INTO promotions (workspace_id, flow_id, experiment, variant, promoted_at, source) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(B::Db::id(workspace.0))
        .bind(promotion.flow.as_str())
        .bind(promotion.experiment.as_str())
        .bind(promotion.variant.as_str())
        .bind(B::Db::ts(promotion.promoted_at))
        .bind(promotion.source.as_str());
        B::Db::execute(self.write(), sql).await?;
        Ok(())
    }

    async fn promotions(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Vec<pronto_domain::experiment::Promotion>, StoreError> {
        let sql = format!(
            "SELECT {PROMOTION_COLUMNS} FROM promotions WHERE workspace_id = $1 ORDER BY promoted_at"
        );
        let sql = q(&sql).bind(B::Db::id(workspace.0));
        B::Db::fetch_all(self.read(), sql)
            .await?
            .iter()
            .map(promotion)
            .collect()
    }

    async fn secret(&self, name: &str) -> Result<String, StoreError> {
        let sql = q("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(crate::random_secret());
        B::Db::execute(self.write(), sql).await?;
        let sql = q("SELECT value FROM secrets WHERE name = $1").bind(name);
        B::Db::fetch_one(self.write(), sql).await?.text(0)
    }

    async fn count_hits(
        &self,
        buckets: &[(String, std::time::Duration)],
        now: DateTime<Utc>,
    ) -> Result<Vec<u64>, StoreError> {
        Backend::count_hits(self, buckets, now).await
    }

    async fn quarantined(&self, workspace: WorkspaceId) -> Result<Vec<Quarantined>, StoreError> {
        // `quarantine.workspace_id` is text on both: a row that did not decode may not name a valid id.
        let sql = q("SELECT kind, row_id, reason, at FROM quarantine \
             WHERE workspace_id = $1 OR workspace_id IS NULL ORDER BY at, kind, row_id")
        .bind(workspace.0.to_string());
        B::Db::fetch_all(self.read(), sql)
            .await?
            .iter()
            .map(|r| {
                Ok(Quarantined {
                    kind: r.text(0)?,
                    id: r.text(1)?,
                    reason: r.text(2)?,
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
        let sql = q(
            "INSERT INTO unmapped_deliveries (workspace_id, platform, shop, delivery_id, topic, reason, body, \
             received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(B::Db::id(workspace.0))
        .bind(d.platform.as_str())
        .bind(d.shop.as_str())
        .bind(d.delivery_id.as_str())
        .bind(d.topic.as_str())
        .bind(d.reason.as_str())
        .bind(d.body.as_str())
        .bind(B::Db::ts(d.received_at));
        Ok(B::Db::execute(self.write(), sql).await? == 1)
    }

    async fn unmapped(&self, workspace: WorkspaceId) -> Result<Vec<UnmappedDelivery>, StoreError> {
        let sql = format!(
            "SELECT {UNMAPPED_COLUMNS} FROM unmapped_deliveries WHERE workspace_id = $1 \
             ORDER BY received_at DESC LIMIT 100"
        );
        let sql = q(&sql).bind(B::Db::id(workspace.0));
        B::Db::fetch_all(self.read(), sql)
            .await?
            .iter()
            .map(unmapped_delivery)
            .collect()
    }

    async fn run_outcomes(
        &self,
        workspace: WorkspaceId,
        of: crate::RunsOf,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rules: &[pronto_domain::experiment::results::ConversionRule],
    ) -> Result<Vec<pronto_domain::experiment::results::RunOutcome>, StoreError> {
        Backend::run_outcomes(self, workspace, of, from, to, rules).await
    }

    async fn fold_reports(
        &self,
        rules: &[pronto_domain::experiment::results::ConversionRule],
        batch: i64,
    ) -> Result<crate::Folded, StoreError> {
        crate::apply::reports::fold(self.writer(), rules, batch).await
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
        let sql = q(REPORT_COUNTS)
            .bind(B::Db::id(workspace.0))
            .bind(B::Db::ts(from))
            .bind(B::Db::ts(to));
        B::Db::fetch_all(self.read(), sql)
            .await?
            .iter()
            .map(|r| crate::rows::report_bucket(r).map(|((_, b), c)| (b, c)))
            .collect()
    }

    async fn runs_started_in(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let sql = q("SELECT 1 FROM runs WHERE workspace_id = $1 AND started_at >= $2 AND started_at < $3 LIMIT 1")
            .bind(B::Db::id(workspace.0))
            .bind(B::Db::ts(from))
            .bind(B::Db::ts(to));
        Ok(B::Db::fetch_optional(self.reports(), sql).await?.is_some())
    }

    async fn report_counts_now(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rules: &[pronto_domain::experiment::results::ConversionRule],
        batch: i64,
    ) -> Result<
        Option<
            Vec<(
                pronto_domain::experiment::results::BucketKey,
                pronto_domain::experiment::results::Counts,
            )>,
        >,
        StoreError,
    > {
        let mut tx = self.snapshot().await?;
        let now = match crate::apply::reports::look(&mut tx, rules, batch).await {
            Ok(Some(changed)) => {
                let kept = q(REPORT_COUNTS)
                    .bind(B::Db::id(workspace.0))
                    .bind(B::Db::ts(from))
                    .bind(B::Db::ts(to));
                match B::Db::fetch_all_in(B::conn(&mut tx), kept).await {
                    Ok(rows) => rows
                        .iter()
                        .map(|r| crate::rows::report_bucket(r).map(|((_, b), c)| (b, c)))
                        .collect::<Result<BTreeMap<_, _>, _>>()
                        .map(|mut kept| {
                            // The changed buckets' counts replace the kept ones.
                            kept.extend(changed.into_iter().filter_map(|((ws, b), c)| {
                                (ws == workspace && b.hour >= from && b.hour < to).then_some((b, c))
                            }));
                            Some(kept.into_iter().collect())
                        }),
                    Err(e) => Err(e.into()),
                }
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e.into_store()),
        };
        tx.rollback().await;
        now
    }

    async fn delivery_counts(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let sql = q(
            "SELECT flow_id, kind, CAST(sum(n) AS BIGINT) FROM delivery_counts \
             WHERE workspace_id = $1 AND hour >= $2 AND hour < $3 GROUP BY flow_id, kind ORDER BY flow_id, kind",
        )
        .bind(B::Db::id(workspace.0))
        .bind(B::Db::ts(crate::hour_of(from)))
        .bind(B::Db::ts(to));
        B::Db::fetch_all(self.read(), sql)
            .await?
            .iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?, r.int(2)?)))
            .collect()
    }

    async fn apply_catalog(
        &self,
        workspace: WorkspaceId,
        shop: &str,
        changes: &[pronto_domain::catalog::Change],
    ) -> Result<pronto_domain::catalog::Applied, StoreError> {
        crate::apply::catalog::apply_changes(self.writer(), workspace, shop, changes).await
    }

    async fn related_products(
        &self,
        workspace: WorkspaceId,
        shop: &str,
        items: &[String],
    ) -> Result<pronto_domain::catalog::Related, StoreError> {
        crate::apply::catalog::related(self.writer(), workspace, shop, items).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.state().write_failure().is_none() {
            B::Db::execute(self.read(), q("SELECT 1")).await?;
            return Ok(());
        }
        self.probe_write().await?;
        self.state().write_ok();
        Ok(())
    }

    async fn close(&self) {
        self.writers().close().await;
        self.close_pools().await;
    }
}
