//! The web app's sign-in links and sessions ([`Sessions`]), written once over a [`Backend`]; the statements'
//! text that the board and the live inboxes share lives in `crate::sessions`.

use super::{q, Backend};
use crate::db::Db;
use crate::rows::{lead_state, session, Cols};
use crate::sessions::{leads_since_sql, LeadMark, NewSession, Session, Sessions};
use crate::tx::Commit;
use crate::writer::Begin;
use crate::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::WorkspaceId;
use sqlx::{ColumnIndex, Database, Encode, Type};

const SESSION_COLUMNS: &str =
    "id, workspace_id, user_id, method, agent, created_at, expires_at, revoked_at";

#[async_trait]
impl<B> Sessions for B
where
    B: Backend,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Type<B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'a> &'a str: ColumnIndex<<B::Db as Database>::Row>,
{
    async fn add_sign_in(
        &self,
        ws: WorkspaceId,
        user: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await?;
        let expired = q("DELETE FROM sign_ins WHERE expires_at < $1").bind(B::Db::ts(now));
        let insert = q(
            "INSERT INTO sign_ins (token_hash, workspace_id, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(B::Db::id(ws.0))
        .bind(user)
        .bind(B::Db::ts(now))
        .bind(B::Db::ts(expires_at));
        let done = match B::Db::execute_in(B::conn(&mut tx), expired).await {
            Ok(_) => B::Db::execute_in(B::conn(&mut tx), insert).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            tx.rollback().await;
            return Err(e.into());
        }
        tx.commit().await
    }

    async fn sign_in_user(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(WorkspaceId, String)>, StoreError> {
        let sql = q("SELECT workspace_id, user_id FROM sign_ins \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2")
        .bind(token_hash)
        .bind(B::Db::ts(now));
        B::Db::fetch_optional(self.read(), sql)
            .await?
            .map(|r| Ok((WorkspaceId(r.id(0)?), r.text(1)?)))
            .transpose()
    }

    async fn redeem_sign_in(
        &self,
        token_hash: &str,
        new: NewSession<'_>,
    ) -> Result<Option<Session>, StoreError> {
        let mut tx = self.writer().begin().await?;
        let sql = q("UPDATE sign_ins SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING workspace_id, user_id")
        .bind(token_hash)
        .bind(B::Db::ts(new.now));
        let redeemed = match B::Db::fetch_optional_in(B::conn(&mut tx), sql).await {
            Ok(Some(r)) => match (r.id(0), r.text(1)) {
                (Ok(ws), Ok(user)) => insert_session::<B>(&mut tx, WorkspaceId(ws), &user, &new)
                    .await
                    .map(Some),
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
            Ok(None) => Ok(None),
            Err(e) => Err(e.into()),
        };
        match redeemed {
            Ok(Some(s)) => {
                tx.commit().await?;
                Ok(Some(s))
            }
            other => {
                tx.rollback().await;
                other
            }
        }
    }

    async fn start_session(
        &self,
        ws: WorkspaceId,
        user: &str,
        new: NewSession<'_>,
    ) -> Result<Session, StoreError> {
        let mut tx = self.writer().begin().await?;
        match insert_session::<B>(&mut tx, ws, user, &new).await {
            Ok(s) => {
                tx.commit().await?;
                Ok(s)
            }
            Err(e) => {
                tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions \
             WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2"
        );
        let sql = q(&sql).bind(token_hash).bind(B::Db::ts(now));
        B::Db::fetch_optional(self.read(), sql)
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
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions \
             WHERE workspace_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id"
        );
        let sql = q(&sql).bind(B::Db::id(ws.0)).bind(B::Db::ts(now));
        B::Db::fetch_all(self.read(), sql)
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
        let sql = format!(
            "UPDATE sessions SET revoked_at = coalesce(revoked_at, $3) WHERE workspace_id = $1 AND id = $2 \
             RETURNING {SESSION_COLUMNS}"
        );
        let sql = q(&sql).bind(B::Db::id(ws.0)).bind(id).bind(B::Db::ts(now));
        B::Db::fetch_optional(self.write(), sql)
            .await?
            .as_ref()
            .map(session)
            .transpose()
    }

    async fn lead_mark(&self, ws: WorkspaceId) -> Result<LeadMark, StoreError> {
        let sql = q(
            "SELECT (SELECT max(created_at) FROM leads WHERE workspace_id = $1), (SELECT max(id) FROM lead_log)",
        )
        .bind(B::Db::id(ws.0));
        let row = B::Db::fetch_one(self.reports(), sql).await?;
        Ok(LeadMark {
            newest_lead: row.opt_at(0)?,
            newest_log: row.opt_int(1)?,
        })
    }

    async fn leads_since(
        &self,
        ws: WorkspaceId,
        since: &LeadMark,
        limit: i64,
    ) -> Result<Vec<crate::LeadState>, StoreError> {
        let sql = leads_since_sql(|n| format!("${n}"));
        let sql = q(&sql)
            .bind(B::Db::id(ws.0))
            .bind(B::Db::ts(since.newest_lead.unwrap_or(DateTime::UNIX_EPOCH)))
            .bind(since.newest_log.unwrap_or(0))
            .bind(limit);
        B::Db::fetch_all(self.reports(), sql)
            .await?
            .iter()
            .map(lead_state)
            .collect()
    }
}

/// Opens a session in the open transaction `tx`.
async fn insert_session<B>(
    tx: &mut <B::Writer as Begin>::Tx,
    ws: WorkspaceId,
    user: &str,
    new: &NewSession<'_>,
) -> Result<Session, StoreError>
where
    B: Backend,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db> + Type<B::Db>,
    for<'a> &'a str: ColumnIndex<<B::Db as Database>::Row>,
{
    let sql = format!(
        "INSERT INTO sessions (id, token_hash, workspace_id, user_id, method, agent, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {SESSION_COLUMNS}"
    );
    let sql = q(&sql)
        .bind(crate::key_id(new.token_hash))
        .bind(new.token_hash)
        .bind(B::Db::id(ws.0))
        .bind(user)
        .bind(new.method)
        .bind(new.agent.map(str::to_string))
        .bind(B::Db::ts(new.now))
        .bind(B::Db::ts(new.expires_at));
    match B::Db::fetch_optional_in(B::conn(tx), sql).await? {
        Some(r) => session(&r),
        None => Err(StoreError::Corrupt(
            "a session insert returned no row".into(),
        )),
    }
}
