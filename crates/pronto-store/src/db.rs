//! The bind half of the column codec (`crate::rows::Cols` is the decoding half), and the ways a
//! statement runs, for code written once over either database.
//!
//! The databases store ids, timestamps and JSON in different types (SQLite: TEXT; PostgreSQL: `uuid`,
//! `timestamptz`, `jsonb`), so a value is bound through [`Db::id`], [`Db::ts`] or [`Db::json`], which each
//! backend answers with its own type. Statements written once use `$1`-style placeholders, which both
//! drivers accept (sqlx's SQLite driver reads `$N` as the N-th argument, as PostgreSQL does).
//!
//! Why the statements run through [`Db`]'s functions and not sqlx's generic `Executor`: code generic over
//! the database would have to carry sqlx's higher-ranked executor bounds everywhere it runs one; each
//! backend's impl here names its concrete pool once instead.

use crate::rows::Cols;
use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, Pool, Type};
use uuid::Uuid;

/// A boxed, sendable future, as `Db`'s runs answer.
pub(crate) type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A statement with its binds, on database `D`.
pub(crate) type Query<'q, D> = sqlx::query::Query<'q, D, <D as Database>::Arguments<'q>>;

/// A database the store runs on, as code written once for both sees it: how a value is bound, and how a
/// statement runs on a pool. Rows decode through [`Cols`].
pub(crate) trait Db: Database<Row: Cols> {
    /// An id as this database stores it (TEXT or `uuid`).
    type Id: for<'q> Encode<'q, Self> + Type<Self> + Send + 'static;
    /// A point in time as this database stores it (RFC 3339 TEXT with microseconds, or `timestamptz`).
    type Ts: for<'q> Encode<'q, Self> + Type<Self> + Send + 'static;
    /// A JSON value as this database stores it (TEXT or `jsonb`).
    type Json: for<'q> Encode<'q, Self> + Type<Self> + Send + 'static;

    fn id(id: Uuid) -> Self::Id;
    fn ts(at: DateTime<Utc>) -> Self::Ts;
    fn json(value: serde_json::Value) -> Self::Json;

    fn fetch_all<'a>(
        pool: &'a Pool<Self>,
        q: Query<'a, Self>,
    ) -> BoxFuture<'a, Result<Vec<Self::Row>, sqlx::Error>>;
    fn fetch_optional<'a>(
        pool: &'a Pool<Self>,
        q: Query<'a, Self>,
    ) -> BoxFuture<'a, Result<Option<Self::Row>, sqlx::Error>>;
    fn fetch_one<'a>(
        pool: &'a Pool<Self>,
        q: Query<'a, Self>,
    ) -> BoxFuture<'a, Result<Self::Row, sqlx::Error>>;
    /// Runs the statement and answers the rows it changed.
    fn execute<'a>(
        pool: &'a Pool<Self>,
        q: Query<'a, Self>,
    ) -> BoxFuture<'a, Result<u64, sqlx::Error>>;
    /// [`Db::fetch_all`] on one connection (an open transaction).
    fn fetch_all_in<'a>(
        conn: &'a mut Self::Connection,
        q: Query<'a, Self>,
    ) -> BoxFuture<'a, Result<Vec<Self::Row>, sqlx::Error>>;
    /// [`Db::fetch_optional`] on one connection (an open transaction).
    fn fetch_optional_in<'a>(
        conn: &'a mut Self::Connection,
        q: Query<'a, Self>,
    ) -> BoxFuture<'a, Result<Option<Self::Row>, sqlx::Error>>;
    /// [`Db::execute`] on one connection (an open transaction).
    fn execute_in<'a>(
        conn: &'a mut Self::Connection,
        q: Query<'a, Self>,
    ) -> BoxFuture<'a, Result<u64, sqlx::Error>>;
}

/// Implements [`Db`]'s runs for a backend whose pool is `sqlx::Pool<$db>`.
macro_rules! runs_on_pool {
    () => {
        fn fetch_all<'a>(
            pool: &'a sqlx::Pool<Self>,
            q: crate::db::Query<'a, Self>,
        ) -> crate::db::BoxFuture<'a, Result<Vec<Self::Row>, sqlx::Error>> {
            Box::pin(q.fetch_all(pool))
        }
        fn fetch_optional<'a>(
            pool: &'a sqlx::Pool<Self>,
            q: crate::db::Query<'a, Self>,
        ) -> crate::db::BoxFuture<'a, Result<Option<Self::Row>, sqlx::Error>> {
            Box::pin(q.fetch_optional(pool))
        }
        fn fetch_one<'a>(
            pool: &'a sqlx::Pool<Self>,
            q: crate::db::Query<'a, Self>,
        ) -> crate::db::BoxFuture<'a, Result<Self::Row, sqlx::Error>> {
            Box::pin(q.fetch_one(pool))
        }
        fn execute<'a>(
            pool: &'a sqlx::Pool<Self>,
            q: crate::db::Query<'a, Self>,
        ) -> crate::db::BoxFuture<'a, Result<u64, sqlx::Error>> {
            Box::pin(async move { Ok(q.execute(pool).await?.rows_affected()) })
        }
        fn fetch_all_in<'a>(
            conn: &'a mut Self::Connection,
            q: crate::db::Query<'a, Self>,
        ) -> crate::db::BoxFuture<'a, Result<Vec<Self::Row>, sqlx::Error>> {
            Box::pin(q.fetch_all(conn))
        }
        fn fetch_optional_in<'a>(
            conn: &'a mut Self::Connection,
            q: crate::db::Query<'a, Self>,
        ) -> crate::db::BoxFuture<'a, Result<Option<Self::Row>, sqlx::Error>> {
            Box::pin(q.fetch_optional(conn))
        }
        fn execute_in<'a>(
            conn: &'a mut Self::Connection,
            q: crate::db::Query<'a, Self>,
        ) -> crate::db::BoxFuture<'a, Result<u64, sqlx::Error>> {
            Box::pin(async move { Ok(q.execute(conn).await?.rows_affected()) })
        }
    };
}
pub(crate) use runs_on_pool;
