//! The outbox's delivery side and the suppression list, as each backend states them ([`OutboxTx`]):
//! claiming due messages, recording attempts' outcomes, the list's entries and the soft bounces counted
//! towards one. `apply::outbox` puts them together; `pronto_domain::suppression` decides.

use crate::tx::ItemError;
use crate::{Delivery, OutMessage, SuppressionQuery};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::suppression::{Medium, Suppression};
use pronto_domain::{MessageId, WorkspaceId};

/// Where an entry is listed: the workspace, the medium, the address.
pub(crate) type ListKey = (WorkspaceId, Medium, String);

/// The outbox and suppression statements each backend implements.
#[async_trait]
pub(crate) trait OutboxTx: Send {
    /// Claims up to `limit` queued messages due at `now` (one more attempt each, leased until
    /// `lease_until`), in due order; rows that do not decode are quarantined.
    async fn claim_messages_due(
        &mut self,
        now: DateTime<Utc>,
        limit: i64,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<OutMessage>, ItemError>;

    /// Records attempts' outcomes in one statement; only a `queued` message changes (a message recorded
    /// twice, after a lease ran out, keeps its first outcome).
    async fn record_outcomes(
        &mut self,
        outcomes: &[(MessageId, Delivery)],
        now: DateTime<Utc>,
    ) -> Result<(), ItemError>;

    /// Claimed messages that are not to be attempted: `suppressed`, with the reason, their claim and the
    /// attempt it counted undone.
    async fn mark_suppressed(&mut self, rows: &[(MessageId, String)]) -> Result<(), ItemError>;

    /// The entries listed under these keys, running out or not.
    async fn listed(
        &mut self,
        keys: &[ListKey],
    ) -> Result<Vec<(WorkspaceId, Suppression)>, ItemError>;

    /// Writes entries, each replacing whatever its key held.
    async fn put_suppressions(
        &mut self,
        rows: &[(WorkspaceId, Suppression)],
    ) -> Result<(), ItemError>;

    /// Records a soft bounce per row (its key and the reply) at `now`, and answers per key how many it has
    /// had since `since`, this one included.
    async fn soft_bounces(
        &mut self,
        rows: &[(ListKey, String)],
        now: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> Result<Vec<(ListKey, i64)>, ItemError>;

    /// A workspace's entries, newest first.
    async fn list_suppressions(
        &mut self,
        ws: WorkspaceId,
        query: &SuppressionQuery,
    ) -> Result<Vec<(WorkspaceId, Suppression)>, ItemError>;

    /// Adds to the hour's deliverability counts: each row its workspace (none: the message's), the message
    /// (its flow is counted; none: no flow) and a kind (`sent`, `hard`, `soft`, `complaint`). Messages on other channels than
    /// email are not counted.
    async fn count_deliveries(
        &mut self,
        rows: &[(Option<WorkspaceId>, Option<MessageId>, &'static str)],
        hour: DateTime<Utc>,
    ) -> Result<(), ItemError>;

    /// Deletes the key's rows from `table` (`suppressions` or `soft_bounces`); answers how many.
    async fn delete_key(&mut self, table: KeyedTable, key: &ListKey) -> Result<u64, ItemError>;
}

/// The tables keyed by workspace, medium and address.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyedTable {
    Suppressions,
    SoftBounces,
}

impl KeyedTable {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Suppressions => "suppressions",
            Self::SoftBounces => "soft_bounces",
        }
    }
}

/// A parameter of [`listing_sql`]'s statement, in order after the workspace (`$1`).
pub(crate) enum ListingBind {
    Text(String),
    /// `None`: no limit.
    Limit(Option<i64>),
    Int(i64),
}

/// The WHERE … ORDER BY … LIMIT of a listing, written once; `p(n)` is the backend's n-th placeholder. The
/// workspace is parameter 1.
pub(crate) fn listing_sql(
    q: &SuppressionQuery,
    p: impl Fn(usize) -> String,
) -> (String, Vec<ListingBind>) {
    let mut sql = format!("WHERE workspace_id = {}", p(1));
    let mut binds = Vec::new();
    let mut add = |column: &str, value: ListingBind, sql: &mut String| {
        binds.push(value);
        sql.push_str(&format!(" AND {column} = {}", p(binds.len() + 1)));
    };
    if let Some(m) = q.medium {
        add("medium", ListingBind::Text(m.as_str().into()), &mut sql);
    }
    if let Some(a) = &q.address {
        add("address", ListingBind::Text(a.clone()), &mut sql);
    }
    if let Some(r) = q.reason {
        add("reason", ListingBind::Text(r.as_str().into()), &mut sql);
    }
    // Parameter n + 2 is binds[n] (the workspace is 1).
    let (limit, offset) = (p(binds.len() + 2), p(binds.len() + 3));
    sql.push_str(&format!(
        " ORDER BY since DESC, medium, address LIMIT {limit} OFFSET {offset}"
    ));
    binds.push(ListingBind::Limit(q.limit));
    binds.push(ListingBind::Int(q.offset.max(0)));
    (sql, binds)
}
