//! SQL text shared by both backends where only the placeholder style differs (`?N` in SQLite, `$N` in PostgreSQL).

/// The identities of every contact that owns one of `n` (kind, value) pairs. Parameters: 1 = workspace, then
/// kind and value for each pair.
pub(crate) fn owners(n: usize, p: fn(usize) -> String) -> String {
    let pairs: Vec<String> = (0..n)
        .map(|i| format!("(kind = {} AND value = {})", p(2 + 2 * i), p(3 + 2 * i)))
        .collect();
    format!(
        "SELECT contact_id, kind, value FROM identities WHERE workspace_id = {ws} AND contact_id IN \
         (SELECT contact_id FROM identities WHERE workspace_id = {ws} AND ({pairs}))",
        ws = p(1),
        pairs = pairs.join(" OR ")
    )
}

pub(crate) fn sqlite_param(i: usize) -> String {
    format!("?{i}")
}

pub(crate) fn pg_param(i: usize) -> String {
    format!("${i}")
}
