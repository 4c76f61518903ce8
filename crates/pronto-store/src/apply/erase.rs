//! Erasing a person, in one transaction: every row that is theirs is cleaned of their personal data
//! (`pronto_domain::erasure` decides what that is), rows elsewhere that name their address or number are
//! cleaned too, their identities are deleted, their queued messages are not sent, and their addresses stay on
//! the suppression list as hashes only. Rows are kept, cleaned, so counts and reports stay right. The
//! erasure itself is recorded in `erasures` (who, when, how many rows of each table), which holds no
//! personal data.

use crate::text::{Dialect, Kind, TextTx};
use crate::tx::{Commit, ItemError};
use crate::writer::Begin;
use crate::StoreError;
use chrono::{DateTime, Utc};
use pronto_domain::erasure::Needles;
use pronto_domain::suppression::{self, Medium};
use pronto_domain::{ContactId, WorkspaceId};
use serde::Serialize;
use std::collections::BTreeMap;

/// What an erasure did, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Erasure {
    pub contact: ContactId,
    pub erased_at: DateTime<Utc>,
    /// Who asked (`admin key`, a user's email is not kept: their id).
    pub by: String,
    /// Rows cleaned, deleted or stopped, by table.
    pub rows: BTreeMap<String, u64>,
    /// The suppression-list entries the person's addresses now stand under (`sha256:…`).
    pub listed: Vec<String>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErasureRecord {
    pub contact: ContactId,
    pub erased_at: DateTime<Utc>,
    pub by: String,
    /// `{rows: {table: count}, listed: [hash]}`.
    pub summary: serde_json::Value,
}

/// The audit log, newest first.
pub(crate) async fn list<B: Begin>(
    db: &B,
    ws: WorkspaceId,
    limit: i64,
) -> Result<Vec<ErasureRecord>, StoreError>
where
    B::Tx: TextTx,
{
    let mut tx = db.begin().await?;
    let d = tx.dialect();
    let sql = format!(
        "SELECT {}, {}, by_whom, {} FROM erasures WHERE workspace_id = {} ORDER BY id DESC LIMIT {}",
        d.text("contact_id"),
        d.text("erased_at"),
        d.text("summary"),
        d.bind(1, Kind::Uuid),
        d.bind(2, Kind::BigInt)
    );
    let rows = tx
        .text_rows(&sql, &[ws.to_string(), limit.to_string()])
        .await;
    tx.rollback().await;
    let corrupt = |what: &str| StoreError::Corrupt(format!("erasures: {what}"));
    rows.map_err(ItemError::into_store)?
        .into_iter()
        .map(|r| {
            let [contact, at, by, summary] =
                <[Option<String>; 4]>::try_from(r).map_err(|_| corrupt("columns"))?;
            let erased_at = crate::text::read_time(&at.unwrap_or_default())
                .ok_or_else(|| corrupt("erased_at"))?;
            Ok(ErasureRecord {
                contact: contact
                    .unwrap_or_default()
                    .parse()
                    .map_err(|_| corrupt("contact_id"))?,
                erased_at,
                by: by.unwrap_or_default(),
                summary: serde_json::from_str(&summary.unwrap_or_default())
                    .map_err(|_| corrupt("summary"))?,
            })
        })
        .collect()
}

/// Which rows of a table are the person's, given the binds `2..` holding their contact ids.
#[derive(Clone, Copy)]
enum Whose {
    Contact,
    Runs,
    Leads,
    Messages,
}

/// A table whose text columns are cleaned: its key column, which rows, and the columns (with whether
/// each holds JSON).
struct Scrub {
    table: &'static str,
    /// The key column: its name on PostgreSQL, on SQLite (which keys some tables by `rowid`), its kind.
    key: (&'static str, &'static str, Kind),
    whose: Whose,
    columns: &'static [(&'static str, Kind, bool)],
}

const SCRUB: &[Scrub] = &[
    Scrub {
        table: "events",
        key: ("id", "id", Kind::Uuid),
        whose: Whose::Contact,
        columns: &[("payload", Kind::Json, true)],
    },
    Scrub {
        table: "runs",
        key: ("id", "id", Kind::Uuid),
        whose: Whose::Contact,
        columns: &[
            ("snapshot", Kind::Text, true),
            ("run_key", Kind::Text, false),
        ],
    },
    Scrub {
        table: "run_log",
        key: ("id", "id", Kind::BigInt),
        whose: Whose::Runs,
        columns: &[("detail", Kind::Text, false), ("reason", Kind::Text, false)],
    },
    Scrub {
        table: "run_summaries",
        key: ("run_id", "run_id", Kind::Uuid),
        whose: Whose::Runs,
        columns: &[("summary", Kind::Jsonb, true)],
    },
    Scrub {
        table: "messages",
        key: ("id", "id", Kind::Uuid),
        whose: Whose::Contact,
        columns: &[
            ("to_addr", Kind::Text, false),
            ("reply_to", Kind::Text, false),
            ("subject", Kind::Text, false),
            ("body_text", Kind::Text, false),
            ("body_html", Kind::Text, false),
            ("last_error", Kind::Text, false),
        ],
    },
    Scrub {
        table: "leads",
        key: ("id", "id", Kind::Uuid),
        whose: Whose::Contact,
        columns: &[
            ("name", Kind::Text, false),
            ("email", Kind::Text, false),
            ("phone", Kind::Text, false),
            ("company", Kind::Text, false),
            ("message", Kind::Text, false),
            ("fields", Kind::Jsonb, true),
        ],
    },
    Scrub {
        table: "lead_log",
        key: ("id", "id", Kind::BigInt),
        whose: Whose::Leads,
        columns: &[("detail", Kind::Text, false)],
    },
    Scrub {
        table: "attempts",
        key: ("id", "id", Kind::Uuid),
        whose: Whose::Leads,
        columns: &[("note", Kind::Text, false)],
    },
    Scrub {
        table: "tasks",
        key: ("id", "id", Kind::Uuid),
        whose: Whose::Contact,
        columns: &[
            ("title", Kind::Text, false),
            ("script", Kind::Text, false),
            ("outcome", Kind::Text, false),
            ("key", Kind::Text, false),
        ],
    },
    Scrub {
        table: "exit_marks",
        key: ("seq", "rowid", Kind::BigInt),
        whose: Whose::Contact,
        columns: &[("run_key", Kind::Text, false)],
    },
    Scrub {
        table: "clicks",
        key: ("seq", "rowid", Kind::BigInt),
        whose: Whose::Messages,
        columns: &[("url", Kind::Text, false)],
    },
];

/// What an erased person's queued messages say instead of being sent.
const STOPPED: &str = "erased at the person's request: not sent";

/// Erases contact `contact` of `ws`; `None` when there is no such contact.
pub(crate) async fn erase<B: Begin>(
    db: &B,
    ws: WorkspaceId,
    contact: ContactId,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Option<Erasure>, StoreError>
where
    B::Tx: TextTx,
{
    let mut tx = db.begin().await?;
    let result = erase_in(&mut tx, ws, contact, by, now).await;
    super::finish(tx, result).await
}

async fn erase_in<T: TextTx>(
    tx: &mut T,
    ws: WorkspaceId,
    contact: ContactId,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Option<Erasure>, ItemError> {
    let d = tx.dialect();
    let found = tx
        .text_rows(
            &format!(
                "SELECT {} FROM contacts WHERE id = {} AND workspace_id = {}",
                d.text("traits"),
                d.bind(1, Kind::Uuid),
                d.bind(2, Kind::Uuid)
            ),
            &[contact.to_string(), ws.to_string()],
        )
        .await?;
    let Some(row) = found.into_iter().next() else {
        return Ok(None);
    };
    let traits: serde_json::Value = row[0]
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    // The contact and those merged into it: the rows of both are theirs.
    let mut ids = vec![contact.to_string()];
    for r in tx
        .text_rows(
            &format!(
                "SELECT {} FROM contacts WHERE merged_into = {}",
                d.text("id"),
                d.bind(1, Kind::Uuid)
            ),
            &[contact.to_string()],
        )
        .await?
    {
        ids.extend(r.into_iter().flatten());
    }
    let of_contacts = |column: &str, first: usize| d.in_list(column, first, ids.len(), Kind::Uuid);
    let identities: Vec<(String, String)> = tx
        .text_rows(
            &format!(
                "SELECT kind, value FROM identities WHERE {}",
                of_contacts("contact_id", 1)
            ),
            &ids,
        )
        .await?
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter().map(Option::unwrap_or_default);
            (r.next().unwrap_or_default(), r.next().unwrap_or_default())
        })
        .collect();
    let leads: Vec<[Option<String>; 4]> = tx
        .text_rows(
            &format!(
                "SELECT name, email, phone, company FROM leads WHERE {}",
                of_contacts("contact_id", 1)
            ),
            &ids,
        )
        .await?
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter();
            [
                r.next().flatten(),
                r.next().flatten(),
                r.next().flatten(),
                r.next().flatten(),
            ]
        })
        .collect();
    let needles = Needles::of(&traits, &identities, &leads);
    let mut rows: BTreeMap<String, u64> = BTreeMap::new();

    // Queued messages are not sent (their address is about to be erased).
    let stopped = tx
        .run(
            &format!(
                "UPDATE messages SET state = 'suppressed', last_error = {} WHERE state = 'queued' AND {}",
                d.bind(1, Kind::Text),
                of_contacts("contact_id", 2)
            ),
            &std::iter::once(Some(STOPPED.to_string()))
                .chain(ids.iter().cloned().map(Some))
                .collect::<Vec<_>>(),
        )
        .await?;
    if stopped > 0 {
        rows.insert("messages (stopped)".into(), stopped);
    }

    for s in SCRUB {
        let whose = match s.whose {
            Whose::Contact => of_contacts("contact_id", 1),
            Whose::Runs => format!(
                "run_id IN (SELECT id FROM runs WHERE {})",
                of_contacts("contact_id", 1)
            ),
            Whose::Leads => format!(
                "lead_id IN (SELECT id FROM leads WHERE {})",
                of_contacts("contact_id", 1)
            ),
            Whose::Messages => format!(
                "message_key IN (SELECT idempotency_key FROM messages WHERE {})",
                of_contacts("contact_id", 1)
            ),
        };
        let n = scrub(tx, s, &whose, &ids, &needles).await?;
        if n > 0 {
            *rows.entry(s.table.into()).or_default() += n;
        }
    }
    // A step on each of their leads: what is kept of a lead outside this database (the speed-to-lead report
    // each server holds in memory, open inboxes) follows the leads' change mark, so this moves it and their
    // cleaned rows are read again. The story says what happened, with nothing of theirs.
    tx.run(
        &format!(
            "INSERT INTO lead_log (lead_id, at, kind, rep, detail) SELECT id, {}, 'erased', NULL, {} FROM leads WHERE {}",
            d.bind(1, Kind::Timestamp),
            d.bind(2, Kind::Text),
            of_contacts("contact_id", 3)
        ),
        &[
            Some(now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            Some("personal data erased on request".to_string()),
        ]
        .into_iter()
        .chain(ids.iter().cloned().map(Some))
        .collect::<Vec<_>>(),
    )
    .await?;
    // Rows that are not theirs but name them: a rep's alert about their lead (its Reply-To is theirs), a
    // shop's webhook kept raw because it could not be mapped.
    const NAMING: &[(Scrub, &str)] = &[
        (
            Scrub {
                table: "messages",
                key: ("id", "id", Kind::Uuid),
                whose: Whose::Contact,
                columns: &[
                    ("reply_to", Kind::Text, false),
                    ("subject", Kind::Text, false),
                    ("body_text", Kind::Text, false),
                    ("body_html", Kind::Text, false),
                ],
            },
            "lower(reply_to) LIKE {b} OR lower(body_text) LIKE {b}",
        ),
        (
            Scrub {
                table: "unmapped_deliveries",
                key: ("delivery_id", "delivery_id", Kind::Text),
                whose: Whose::Contact,
                columns: &[("body", Kind::Text, true)],
            },
            "lower(body) LIKE {b}",
        ),
    ];
    for point in needles.contact_points() {
        for (s, filter) in NAMING {
            let whose = filter.replace("{b}", &d.bind(1, Kind::Text));
            let n = scrub(tx, s, &whose, &[format!("%{point}%")], &needles).await?;
            if n > 0 {
                *rows.entry(s.table.into()).or_default() += n;
            }
        }
    }
    let cleared = tx
        .run(
            &format!(
                "UPDATE contacts SET traits = {} WHERE {}",
                d.bind(1, Kind::Jsonb),
                of_contacts("id", 2)
            ),
            &std::iter::once(Some("{}".to_string()))
                .chain(ids.iter().cloned().map(Some))
                .collect::<Vec<_>>(),
        )
        .await?;
    rows.insert("contacts".into(), cleared);
    let gone = tx
        .run(
            &format!(
                "DELETE FROM identities WHERE {}",
                of_contacts("contact_id", 1)
            ),
            &ids.iter().cloned().map(Some).collect::<Vec<_>>(),
        )
        .await?;
    rows.insert("identities".into(), gone);

    // The suppression list keeps each address as its hash: entries already there move to it, and every
    // address is listed so nothing is sent to it again.
    let mut listed = Vec::new();
    for point in needles.contact_points() {
        let medium = Medium::of_address(point);
        let Ok(address) = suppression::address(medium, point) else {
            continue;
        };
        let hash = suppression::hashed(&address);
        let key = |first: usize| {
            format!(
                "workspace_id = {} AND medium = {} AND address = {}",
                d.bind(first, Kind::Uuid),
                d.bind(first + 1, Kind::Text),
                d.bind(first + 2, Kind::Text)
            )
        };
        let bind = |a: &str| -> Vec<Option<String>> {
            vec![
                Some(ws.to_string()),
                Some(medium.as_str().to_string()),
                Some(a.to_string()),
            ]
        };
        let mut moved = vec![Some(hash.clone())];
        moved.extend(bind(&address));
        moved.extend(bind(&hash));
        let n = tx
            .run(
                &format!(
                    "UPDATE suppressions SET address = {}, detail = NULL WHERE {} AND NOT EXISTS \
                     (SELECT 1 FROM suppressions WHERE {})",
                    d.bind(1, Kind::Text),
                    key(2),
                    key(5)
                ),
                &moved,
            )
            .await?;
        let n = n + tx
            .run(
                &format!("DELETE FROM suppressions WHERE {}", key(1)),
                &bind(&address),
            )
            .await?;
        let mut entry = bind(&hash);
        entry.push(Some(
            now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ));
        tx.run(
            &format!(
                "INSERT INTO suppressions (workspace_id, medium, address, reason, source, detail, since) \
                 VALUES ({}, {}, {}, 'manual', 'erasure', 'erased at the person''s request', {}) \
                 ON CONFLICT DO NOTHING",
                d.bind(1, Kind::Uuid),
                d.bind(2, Kind::Text),
                d.bind(3, Kind::Text),
                d.bind(4, Kind::Timestamp)
            ),
            &entry,
        )
        .await?;
        let soft = tx
            .run(
                &format!("DELETE FROM soft_bounces WHERE {}", key(1)),
                &bind(&address),
            )
            .await?;
        *rows.entry("suppressions".into()).or_default() += n;
        *rows.entry("soft_bounces".into()).or_default() += soft;
        if d == Dialect::Postgres {
            // Lead limits count by recipient (`lead-to:<address>`) for an hour.
            let n = tx
                .run(
                    "DELETE FROM rate_limits WHERE lower(bucket) LIKE $1",
                    &[Some(format!("%{point}%"))],
                )
                .await?;
            *rows.entry("rate_limits".into()).or_default() += n;
        }
        listed.push(hash);
    }
    rows.retain(|_, n| *n > 0);
    let erasure = Erasure {
        contact,
        erased_at: now,
        by: by.to_string(),
        rows,
        listed,
    };
    tx.run(
        &format!(
            "INSERT INTO erasures (workspace_id, contact_id, erased_at, by_whom, summary) VALUES ({}, {}, {}, {}, {})",
            d.bind(1, Kind::Uuid),
            d.bind(2, Kind::Uuid),
            d.bind(3, Kind::Timestamp),
            d.bind(4, Kind::Text),
            d.bind(5, Kind::Jsonb)
        ),
        &[
            Some(ws.to_string()),
            Some(contact.to_string()),
            Some(now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            Some(by.to_string()),
            Some(serde_json::json!({"rows": erasure.rows, "listed": erasure.listed}).to_string()),
        ],
    )
    .await?;
    Ok(Some(erasure))
}

/// Cleans `s`'s text columns in the rows `whose` selects (binds from 1); answers how many rows changed.
async fn scrub<T: TextTx>(
    tx: &mut T,
    s: &Scrub,
    whose: &str,
    binds: &[String],
    needles: &Needles,
) -> Result<u64, ItemError> {
    let d = tx.dialect();
    let key = match d {
        Dialect::Postgres => s.key.0,
        Dialect::Sqlite => s.key.1,
    };
    let columns: Vec<String> = std::iter::once(key)
        .chain(s.columns.iter().map(|c| c.0))
        .map(|c| d.text(c))
        .collect();
    let found = tx
        .text_rows(
            &format!(
                "SELECT {} FROM {} WHERE {whose}",
                columns.join(", "),
                s.table
            ),
            binds,
        )
        .await?;
    let mut changed = 0;
    for row in found {
        let mut row = row.into_iter();
        let Some(row_key) = row.next().flatten() else {
            continue;
        };
        let mut sets = Vec::new();
        let mut values = Vec::new();
        for ((column, kind, json), value) in s.columns.iter().zip(row) {
            let Some(value) = value else { continue };
            if let Some(clean) = needles.redact_column(&value, *json || kind.is_json()) {
                values.push(Some(clean));
                sets.push(format!("{column} = {}", d.bind(values.len(), *kind)));
            }
        }
        if sets.is_empty() {
            continue;
        }
        values.push(Some(row_key));
        let sql = format!(
            "UPDATE {} SET {} WHERE {} = {}",
            s.table,
            sets.join(", "),
            key,
            d.bind(values.len(), s.key.2)
        );
        changed += tx.run(&sql, &values).await?;
    }
    Ok(changed)
}
