//! The web app's sign-in links and sessions, as the store keeps them: only tokens' hashes, never a token;
//! and the marks of what the web app keeps or watches (a lead changed, a checkout or order stored), with
//! the statements that read from them, written once for both databases. A leaf: `store/` runs the
//! statements (`store/sessions.rs`, the commerce reads in `store/mod.rs`); `rows::session` decodes a row.

use crate::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::WorkspaceId;

/// A browser signed in as a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Public (the first 16 characters of the token's hash): what an admin revokes by.
    pub id: String,
    pub workspace_id: WorkspaceId,
    /// The user's id (an email, or `admin-key`).
    pub user: String,
    /// How it began: `link`, `password` or `admin-key`.
    pub method: String,
    /// The browser's User-Agent, to tell sessions apart in the list.
    pub agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A session to open.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// The SHA-256 (hex) of the cookie's token.
    pub token_hash: &'a str,
    pub method: &'a str,
    pub agent: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Where the workspace's leads stand: the newest lead and the newest step logged on any lead. Two equal
/// marks mean no lead arrived or changed in between, so an open inbox need not be drawn again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeadMark {
    pub newest_lead: Option<DateTime<Utc>>,
    pub newest_log: Option<i64>,
}

/// What the web app's sign-in needs from the store (a supertrait of [`crate::Store`]; implemented once for
/// both databases in `crate::store::sessions`).
#[async_trait]
pub trait Sessions {
    /// Keeps a sign-in link (its token's hash) for `user` until `expires_at`; expired links go here.
    async fn add_sign_in(
        &self,
        workspace: WorkspaceId,
        user: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The workspace and user of a live (unused, unexpired) sign-in link, without using it: a link scanner
    /// that opens the page signs nobody in.
    async fn sign_in_user(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(WorkspaceId, String)>, StoreError>;

    /// Uses a live sign-in link and opens a session for its user, in one transaction: of two browsers
    /// racing with one link, exactly one gets a session. `None` for a used, expired or unknown link.
    async fn redeem_sign_in(
        &self,
        token_hash: &str,
        session: NewSession<'_>,
    ) -> Result<Option<Session>, StoreError>;

    /// Opens a session for a user who proved who they are otherwise (a password, the admin key).
    async fn start_session(
        &self,
        workspace: WorkspaceId,
        user: &str,
        session: NewSession<'_>,
    ) -> Result<Session, StoreError>;

    /// The live (unrevoked, unexpired) session with this token hash.
    async fn session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError>;

    /// The workspace's live sessions, newest first.
    async fn sessions(
        &self,
        workspace: WorkspaceId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError>;

    /// Ends a session (sign-out, or an admin's revocation) at once, for every process. Answers it as it
    /// is now; `None` when there is no such session.
    async fn end_session(
        &self,
        workspace: WorkspaceId,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError>;

    /// Where the workspace's leads stand (two reads of an index's end): open inboxes redraw when it moves,
    /// and the speed-to-lead report kept in memory reads what changed. Read where the reports read (the
    /// PostgreSQL replica when there is one), as [`Sessions::leads_since`] is, so that what the mark says
    /// and what is read after it come from one source.
    async fn lead_mark(&self, workspace: WorkspaceId) -> Result<LeadMark, StoreError>;

    /// The workspace's leads that arrived or changed after `since` (created after its newest lead, or with a
    /// step logged after its newest step), newest first, at most `limit`: what open inboxes are sent when the
    /// mark moves.
    async fn leads_since(
        &self,
        workspace: WorkspaceId,
        since: &LeadMark,
        limit: i64,
    ) -> Result<Vec<crate::LeadState>, StoreError>;
}

/// [`Sessions::leads_since`]'s statement (`p(n)` writes the n-th placeholder): `$1` the workspace, `$2` the
/// newest lead's time, `$3` the newest step's id, `$4` the limit.
///
/// The few changed ids are found first and each lead read by its key (`CROSS JOIN` keeps that order on
/// SQLite). Written as `id IN (…)` beside `workspace_id = …`, SQLite walked every lead of the workspace to test
/// membership: 0.24 s idle, 1.4 s under load at a million leads, per mark moved (`pronto bench app`).
pub(crate) fn leads_since_sql(p: impl Fn(usize) -> String) -> String {
    format!(
        "SELECT {cols} FROM (\
         SELECT id AS changed FROM leads WHERE workspace_id = {ws} AND created_at > {at} \
         UNION SELECT lead_id FROM lead_log WHERE id > {log}) c CROSS JOIN leads \
         WHERE leads.id = c.changed AND leads.workspace_id = {ws} ORDER BY leads.id DESC LIMIT {limit}",
        cols = crate::rows::LEAD_COLUMNS,
        ws = p(1),
        at = p(2),
        log = p(3),
        limit = p(4)
    )
}

/// The checkouts and orders the board counts. Every statement below repeats it word for word: it is the
/// predicate of the partial indexes `events_commerce` and `events_commerce_seq`, which serve them only then.
const COMMERCE: &str = "name IN ('Checkout Started', 'Order Completed')";

/// Checkouts and orders per hour in a period, up to a commerce mark: `(hour, name, count)`. `hour` is the
/// backend's expression of an event's hour as RFC 3339 text; `seq` how the bound on `seq` is written
/// (SQLite's `+seq` keeps it from choosing `events_commerce_seq`, which reads every checkout and order ever
/// stored, over the period's `events_commerce`: 3 s at 900,000 against 0.6 s for 100 days); binds:
/// workspace, from, to, mark.
pub(crate) fn commerce_by_hour_sql(hour: &str, seq: &str, p: impl Fn(usize) -> String) -> String {
    let time = "COALESCE(client_ts, received_at)";
    format!(
        "SELECT {hour}, name, COUNT(*) FROM events WHERE workspace_id = {ws} AND {COMMERCE} \
         AND {time} >= {from} AND {time} < {to} AND {seq} <= {upto} GROUP BY 1, 2 ORDER BY 1, 2",
        ws = p(1),
        from = p(2),
        to = p(3),
        upto = p(4)
    )
}

/// The `seq` of the workspace's last checkout or order; binds: workspace.
pub(crate) fn commerce_mark_sql(p: impl Fn(usize) -> String) -> String {
    format!(
        "SELECT seq FROM events WHERE workspace_id = {} AND {COMMERCE} ORDER BY seq DESC LIMIT 1",
        p(1)
    )
}

/// Checkouts and orders stored after a commerce mark, per hour: `(hour, name, count, newest seq)`; binds:
/// workspace, mark.
pub(crate) fn commerce_since_sql(hour: &str, p: impl Fn(usize) -> String) -> String {
    format!(
        "SELECT {hour}, name, COUNT(*), MAX(seq) FROM events WHERE workspace_id = {ws} AND {COMMERCE} \
         AND seq > {after} GROUP BY 1, 2 ORDER BY 1, 2",
        ws = p(1),
        after = p(2)
    )
}
