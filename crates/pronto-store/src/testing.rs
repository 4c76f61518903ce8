//! Throw-away databases for tests: a SQLite file in a temp dir, or a fresh PostgreSQL database created on the
//! server named by `PRONTO_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`) and dropped
//! when the guard drops. Every test gets its own, so tests run in parallel and leave nothing behind.
//!
//! PostgreSQL being unreachable is a test failure, never a skip: CI must run the PostgreSQL half.

use sqlx::Connection;

pub const POSTGRES_ENV: &str = "PRONTO_TEST_POSTGRES";
const POSTGRES_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists as long as this value does.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    drop_pg: Option<(String, String)>,
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("pronto.db").display());
        Self {
            url,
            _dir: Some(dir),
            drop_pg: None,
        }
    }

    pub async fn postgres() -> Self {
        let admin = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| POSTGRES_DEFAULT.to_string());
        let name = format!("pronto_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is required for these tests and is not reachable at {admin} ({POSTGRES_ENV}): {e}")
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Self {
            url: format!("{base}/{name}"),
            _dir: None,
            drop_pg: Some((admin, name)),
        }
    }

    /// `sqlite` or `postgres`.
    pub async fn of(backend: &str) -> Self {
        match backend {
            "sqlite" => Self::sqlite(),
            "postgres" => Self::postgres().await,
            other => panic!("unknown backend {other}"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.drop_pg.take() else {
            return;
        };
        // Drop runs inside the test's runtime; the cleanup gets a runtime of its own on a plain thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// Every `table.column` of the database at `url` (SQLite or PostgreSQL) whose text holds one of `needles`,
/// case-insensitive: each column of each table is read as text, so nothing the schema adds later escapes.
pub async fn columns_containing(url: &str, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url)
            .await
            .expect("open SQLite");
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name NOT LIKE '_sqlx%'",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        for (table,) in tables {
            let columns: Vec<(String,)> =
                sqlx::query_as(&format!("SELECT name FROM pragma_table_info('{table}')"))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            for (column,) in columns {
                for n in needles {
                    let (hits,): (i64,) = sqlx::query_as(&format!(
                        "SELECT count(*) FROM \"{table}\" WHERE lower(CAST(\"{column}\" AS TEXT)) LIKE ?1"
                    ))
                    .bind(format!("%{}%", n.to_lowercase()))
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                    if hits > 0 {
                        found.push(format!("{table}.{column} ({n})"));
                    }
                }
            }
        }
    } else {
        let mut c = sqlx::PgConnection::connect(url)
            .await
            .expect("open PostgreSQL");
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        for (table, column) in columns {
            for n in needles {
                let (hits,): (i64,) = sqlx::query_as(&format!(
                    "SELECT count(*) FROM \"{table}\" WHERE lower(\"{column}\"::text) LIKE $1"
                ))
                .bind(format!("%{}%", n.to_lowercase()))
                .fetch_one(&mut c)
                .await
                .unwrap();
                if hits > 0 {
                    found.push(format!("{table}.{column} ({n})"));
                }
            }
        }
    }
    found
}

/// Runs each named async case once against SQLite and once against PostgreSQL. `$env` is an async fn in the
/// calling module taking the backend name (`"sqlite"`, `"postgres"`) and returning what the cases take.
#[macro_export]
macro_rules! for_each_backend {
    ($env:ident; $($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $case() { super::$case(super::$env("sqlite").await).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $case() { super::$case(super::$env("postgres").await).await } )*
        }
    };
}
