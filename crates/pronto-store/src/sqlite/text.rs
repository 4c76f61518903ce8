//! SQLite runs text statements (`crate::text`) as they are written; every column is read as text.

use super::SqliteTx;
use crate::text::{Dialect, TextTx};
use crate::tx::ItemError;
use async_trait::async_trait;
use sqlx::Row;

#[async_trait]
impl TextTx for SqliteTx {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn text_rows(
        &mut self,
        sql: &str,
        binds: &[String],
    ) -> Result<Vec<Vec<Option<String>>>, ItemError> {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(b.as_str());
        }
        let rows = q.fetch_all(&mut **self).await?;
        Ok(rows
            .iter()
            .map(|r| (0..r.len()).map(|i| r.try_get(i).ok().flatten()).collect())
            .collect())
    }

    async fn run(&mut self, sql: &str, binds: &[Option<String>]) -> Result<u64, ItemError> {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(b.as_deref());
        }
        Ok(q.execute(&mut **self).await?.rows_affected())
    }
}
