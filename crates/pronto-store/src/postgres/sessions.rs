//! PostgreSQL's statements for sign-in links and sessions.

use super::PostgresStore;
use crate::rows::session;
use crate::sessions::{LeadMark, NewSession, Session, Sessions};
use crate::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::WorkspaceId;

const SESSION_COLUMNS: &str =
    "id, workspace_id, user_id, method, agent, created_at, expires_at, revoked_at";

#[async_trait]
impl Sessions for PostgresStore {
    async fn add_sign_in(
        &self,
        ws: WorkspaceId,
        user: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.0.begin().await?;
        sqlx::query("DELETE FROM sign_ins WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sign_ins (token_hash, workspace_id, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(ws.0)
        .bind(user)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sign_in_user(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(WorkspaceId, String)>, StoreError> {
        let row: Option<(uuid::Uuid, String)> = sqlx::query_as(
            "SELECT workspace_id, user_id FROM sign_ins \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool.0)
        .await?;
        Ok(row.map(|(ws, user)| (WorkspaceId(ws), user)))
    }

    async fn redeem_sign_in(
        &self,
        token_hash: &str,
        new: NewSession<'_>,
    ) -> Result<Option<Session>, StoreError> {
        let mut tx = self.pool.0.begin().await?;
        let used: Option<(uuid::Uuid, String)> = sqlx::query_as(
            "UPDATE sign_ins SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING workspace_id, user_id",
        )
        .bind(token_hash)
        .bind(new.now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((ws, user)) = used else {
            tx.rollback().await?;
            return Ok(None);
        };
        let s = insert_session(&mut tx, WorkspaceId(ws), &user, &new).await?;
        tx.commit().await?;
        Ok(Some(s))
    }

    async fn start_session(
        &self,
        ws: WorkspaceId,
        user: &str,
        new: NewSession<'_>,
    ) -> Result<Session, StoreError> {
        let mut tx = self.pool.0.begin().await?;
        let s = insert_session(&mut tx, ws, user, &new).await?;
        tx.commit().await?;
        Ok(s)
    }

    async fn session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions \
             WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool.0)
        .await?
        .as_ref()
        .map(session)
        .transpose()
    }

    async fn sessions(
        &self,
        ws: WorkspaceId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError> {
        sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions \
             WHERE workspace_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id"
        ))
        .bind(ws.0)
        .bind(now)
        .fetch_all(&self.pool.0)
        .await?
        .iter()
        .map(session)
        .collect()
    }

    async fn end_session(
        &self,
        ws: WorkspaceId,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        sqlx::query(&format!(
            "UPDATE sessions SET revoked_at = coalesce(revoked_at, $3) WHERE workspace_id = $1 AND id = $2 \
             RETURNING {SESSION_COLUMNS}"
        ))
        .bind(ws.0)
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool.0)
        .await?
        .as_ref()
        .map(session)
        .transpose()
    }

    async fn lead_mark(&self, ws: WorkspaceId) -> Result<LeadMark, StoreError> {
        let (lead, log): (Option<DateTime<Utc>>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT max(created_at) FROM leads WHERE workspace_id = $1), (SELECT max(id) FROM lead_log)",
        )
        .bind(ws.0)
        .fetch_one(&self.reports)
        .await?;
        Ok(LeadMark {
            newest_lead: lead,
            newest_log: log,
        })
    }

    async fn leads_since(
        &self,
        ws: WorkspaceId,
        since: &LeadMark,
        limit: i64,
    ) -> Result<Vec<crate::LeadState>, StoreError> {
        let rows = sqlx::query(&crate::sessions::leads_since_sql(|n| format!("${n}")))
            .bind(ws.0)
            .bind(since.newest_lead.unwrap_or(DateTime::UNIX_EPOCH))
            .bind(since.newest_log.unwrap_or(0))
            .bind(limit)
            .fetch_all(&self.reports)
            .await?;
        rows.iter().map(crate::rows::lead_state).collect()
    }
}

async fn insert_session(
    conn: &mut sqlx::PgConnection,
    ws: WorkspaceId,
    user: &str,
    new: &NewSession<'_>,
) -> Result<Session, StoreError> {
    sqlx::query(&format!(
        "INSERT INTO sessions (id, token_hash, workspace_id, user_id, method, agent, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {SESSION_COLUMNS}"
    ))
    .bind(crate::key_id(new.token_hash))
    .bind(new.token_hash)
    .bind(ws.0)
    .bind(user)
    .bind(new.method)
    .bind(new.agent)
    .bind(new.now)
    .bind(new.expires_at)
    .fetch_one(conn)
    .await
    .map_err(Into::into)
    .and_then(|r| session(&r))
}
