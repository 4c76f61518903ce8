//! Statements written once as text, in either dialect, with the backend's placeholders and casts: the rare,
//! wide units of work (an erasure reads and cleans many tables; retention deletes old rows in batches) where one
//! text beats a statement per backend. `apply::erase` and `apply::retention` decide what to run; each backend
//! runs the text through [`TextTx`] with every bind a string, cast in SQL to its column's type.

use crate::tx::ItemError;
use async_trait::async_trait;

/// The two SQL dialects the statements are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// What a column (or a bind compared with one) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    /// JSON text (SQLite) or `json` (PostgreSQL).
    Json,
    /// JSON text (SQLite) or `jsonb` (PostgreSQL).
    Jsonb,
    Uuid,
    BigInt,
    /// RFC 3339 text (SQLite) or `timestamptz` (PostgreSQL).
    Timestamp,
}

impl Kind {
    pub(crate) fn is_json(self) -> bool {
        matches!(self, Kind::Json | Kind::Jsonb)
    }
}

impl Dialect {
    /// The `n`th bind, as a value of `kind`.
    pub(crate) fn bind(self, n: usize, kind: Kind) -> String {
        match (self, kind) {
            (Dialect::Sqlite, _) => format!("?{n}"),
            (Dialect::Postgres, Kind::Text) => format!("${n}"),
            (Dialect::Postgres, Kind::Json) => format!("${n}::json"),
            (Dialect::Postgres, Kind::Jsonb) => format!("${n}::jsonb"),
            (Dialect::Postgres, Kind::Uuid) => format!("${n}::uuid"),
            (Dialect::Postgres, Kind::BigInt) => format!("${n}::bigint"),
            (Dialect::Postgres, Kind::Timestamp) => format!("${n}::timestamptz"),
        }
    }

    /// `column` read as text.
    pub(crate) fn text(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("CAST({column} AS TEXT)"),
            Dialect::Postgres => format!("{column}::text"),
        }
    }

    /// `column IN (…)` over binds `first..first + count`.
    pub(crate) fn in_list(self, column: &str, first: usize, count: usize, kind: Kind) -> String {
        let binds: Vec<String> = (first..first + count).map(|n| self.bind(n, kind)).collect();
        format!("{column} IN ({})", binds.join(", "))
    }
}

/// A timestamp column read as text: SQLite keeps RFC 3339; PostgreSQL's `timestamptz::text` is
/// `2026-12-07 09:00:00.123+00`.
pub(crate) fn read_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// A backend's transaction running erasure statements.
#[async_trait]
pub(crate) trait TextTx: Send {
    fn dialect(&self) -> Dialect;

    /// The rows `sql` selects, every column read as text.
    async fn text_rows(
        &mut self,
        sql: &str,
        binds: &[String],
    ) -> Result<Vec<Vec<Option<String>>>, ItemError>;

    /// Runs `sql`; answers the rows it changed.
    async fn run(&mut self, sql: &str, binds: &[Option<String>]) -> Result<u64, ItemError>;
}
