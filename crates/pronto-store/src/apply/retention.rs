//! Retention: events and messages older than `[retention]` allows are deleted, a small batch per
//! transaction, oldest first, so ingestion (which shares the SQLite writer) waits for one short batch at most.
//!
//! (Orders and filters name `events.seq` and `messages.id`: on PostgreSQL a bare `seq` would be the text the
//! select list reads it as, sorted as text, through a sort of the whole table.)
//!
//! Both tables are walked in key order (events by `seq`, messages by their time-ordered UUID v7 `id`) from a
//! cursor, which is the order they were written in: a batch reads the next keys after the cursor, deletes
//! those old enough, and stops the walk at the first row that is not (everything after it is newer). What
//! is kept though old: an event a lead was made from (the lead points at it), a message still queued.

use crate::text::{read_time, Kind, TextTx};
use crate::tx::ItemError;
use crate::writer::Begin;
use crate::StoreError;
use chrono::{DateTime, Utc};

/// Where a walk is; `Default` starts at the oldest rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneCursor {
    /// The last event `seq` looked at.
    pub events: i64,
    /// The last message id looked at.
    pub messages: Option<String>,
    /// A table whose walk reached rows too new to delete (or its end): nothing more there this round.
    pub events_done: bool,
    pub messages_done: bool,
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub messages: u64,
    pub cursor: PruneCursor,
}

impl Pruned {
    /// Both walks are done until the next round.
    pub fn done(&self) -> bool {
        self.cursor.events_done && self.cursor.messages_done
    }
}

/// One batch: up to `batch` events received before `events_before` and `batch` messages created before
/// `messages_before` (`None`: that table is kept forever), from `cursor`.
pub(crate) async fn prune<B: Begin>(
    db: &B,
    events_before: Option<DateTime<Utc>>,
    messages_before: Option<DateTime<Utc>>,
    cursor: &PruneCursor,
    batch: i64,
) -> Result<Pruned, StoreError>
where
    B::Tx: TextTx,
{
    let mut tx = db.begin().await?;
    let result = prune_in(&mut tx, events_before, messages_before, cursor, batch).await;
    super::finish(tx, result).await
}

async fn prune_in<T: TextTx>(
    tx: &mut T,
    events_before: Option<DateTime<Utc>>,
    messages_before: Option<DateTime<Utc>>,
    cursor: &PruneCursor,
    batch: i64,
) -> Result<Pruned, ItemError> {
    let d = tx.dialect();
    let mut out = Pruned {
        cursor: cursor.clone(),
        ..Pruned::default()
    };
    match events_before {
        Some(cutoff) if !cursor.events_done => {
            let rows = tx
                .text_rows(
                    &format!(
                        "SELECT {}, {} FROM events WHERE events.seq > {} ORDER BY events.seq LIMIT {}",
                        d.text("seq"),
                        d.text("received_at"),
                        d.bind(1, Kind::BigInt),
                        d.bind(2, Kind::BigInt)
                    ),
                    &[cursor.events.to_string(), batch.to_string()],
                )
                .await?;
            let (old, done) = walk(&rows, cutoff, batch);
            if let Some(last) = old.last() {
                out.cursor.events = last.parse().unwrap_or(cursor.events);
                let binds: Vec<Option<String>> = old.iter().cloned().map(Some).collect();
                let list = d.in_list("seq", 1, binds.len(), Kind::BigInt);
                out.events = tx
                    .run(
                        &format!(
                            "DELETE FROM events WHERE {list} \
                             AND NOT EXISTS (SELECT 1 FROM leads WHERE leads.event_id = events.id)"
                        ),
                        &binds,
                    )
                    .await?;
            }
            out.cursor.events_done = done;
        }
        _ => out.cursor.events_done = true,
    }
    match messages_before {
        Some(cutoff) if !cursor.messages_done => {
            let after = cursor.messages.clone().unwrap_or_default();
            let (filter, binds) = if after.is_empty() {
                (String::new(), vec![batch.to_string()])
            } else {
                (
                    format!("WHERE messages.id > {}", d.bind(2, Kind::Uuid)),
                    vec![batch.to_string(), after],
                )
            };
            let rows = tx
                .text_rows(
                    &format!(
                        "SELECT {}, {} FROM messages {filter} ORDER BY messages.id LIMIT {}",
                        d.text("id"),
                        d.text("created_at"),
                        d.bind(1, Kind::BigInt)
                    ),
                    &binds,
                )
                .await?;
            let (old, done) = walk(&rows, cutoff, batch);
            if let Some(last) = old.last() {
                out.cursor.messages = Some(last.clone());
                let binds: Vec<Option<String>> = old.iter().cloned().map(Some).collect();
                let list = d.in_list("id", 1, binds.len(), Kind::Uuid);
                out.messages = tx
                    .run(
                        &format!("DELETE FROM messages WHERE {list} AND state <> 'queued'"),
                        &binds,
                    )
                    .await?;
            }
            out.cursor.messages_done = done;
        }
        _ => out.cursor.messages_done = true,
    }
    Ok(out)
}

/// Of rows `(key, time)` in key order, the keys of those before `cutoff` up to the first that is not, and
/// whether the walk is done (it met a newer row, or the table ended).
fn walk(rows: &[Vec<Option<String>>], cutoff: DateTime<Utc>, batch: i64) -> (Vec<String>, bool) {
    let mut old = Vec::new();
    for r in rows {
        let (Some(Some(key)), Some(Some(at))) = (r.first(), r.get(1)) else {
            continue;
        };
        match read_time(at) {
            Some(t) if t < cutoff => old.push(key.clone()),
            _ => return (old, true),
        }
    }
    let ended = (rows.len() as i64) < batch;
    (old, ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_timestamps_read_back() {
        for text in [
            "2026-12-07T09:00:00.123456Z",
            "2026-12-07 09:00:00.123456+00",
            "2026-12-07 09:00:00+00",
        ] {
            assert!(read_time(text).is_some(), "{text}");
        }
    }
}
