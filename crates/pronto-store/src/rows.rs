//! Row decoding, written once for both backends.
//!
//! The two databases store the same columns in different types: SQLite keeps ids, timestamps and JSON as
//! TEXT and every integer as INTEGER (i64); PostgreSQL has `uuid`, `timestamptz`, `jsonb`, and `int4` where
//! a column is small. [`Cols`] is the column codec that hides that difference, implemented once per row type;
//! every decoder below reads a row through it, so a row type is decoded by one function whichever database
//! it came from. The SELECT lists that feed a decoder name the same columns (or the same positions) in both
//! backends' SQL.
//!
//! A value that does not decode is [`StoreError::Corrupt`] (or sqlx's decode error), never a panic; callers
//! that read many rows quarantine the bad one ([`bad_row`]) and go on.

use crate::flows::{DueRun, LiveRun, Mark};
use crate::reports::{Bucket, Cursor, OutcomeRow};
use crate::sales::LeadState;
use crate::tx::BadRow;
use crate::{
    ApiKey, Ingested, LogEntry, MessageView, OutMessage, RunView, StoreError, StoredEvent,
    UnmappedDelivery,
};
use chrono::{DateTime, Utc};
use pronto_domain::catalog::Product;
use pronto_domain::experiment::results::{BucketKey, Conversion, Counts, RunOutcome, Touch};
use pronto_domain::experiment::Arm;
use pronto_domain::{ContactId, EventId, LeadId, MessageId, RunId, WorkspaceId};
use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column, ColumnIndex, Row, TypeInfo};
use uuid::Uuid;

/// One column of a row, read as the type the domain wants whatever type the database stored it in.
pub(crate) trait Cols: Row + Sized {
    fn id<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Uuid, StoreError>;
    fn opt_id<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Option<Uuid>, StoreError>;
    fn at<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<DateTime<Utc>, StoreError>;
    fn opt_at<I: ColumnIndex<Self> + Copy>(
        &self,
        i: I,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
    fn int<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<i64, StoreError>;
    fn opt_int<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Option<i64>, StoreError>;
    fn text<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<String, StoreError>;
    fn opt_text<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Option<String>, StoreError>;
    fn flag<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<bool, StoreError>;
    /// A nullable floating-point column (SQLite REAL, PostgreSQL `double precision`).
    fn opt_float<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Option<f64>, StoreError>;
    /// A JSON column (`jsonb` or JSON kept as text).
    fn json<T: DeserializeOwned, I: ColumnIndex<Self> + Copy>(&self, i: I)
        -> Result<T, StoreError>;
    /// The column as text, for naming a row that did not decode.
    fn raw<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Option<String>;
}

fn corrupt_json(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("json: {e}"))
}

pub(crate) fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp `{s}`: {e}")))
}

fn parse_id(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|_| StoreError::Corrupt(format!("id `{s}`")))
}

impl Cols for SqliteRow {
    fn id<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Uuid, StoreError> {
        parse_id(&self.try_get::<String, _>(i)?)
    }
    fn opt_id<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Option<Uuid>, StoreError> {
        self.try_get::<Option<String>, _>(i)?
            .as_deref()
            .map(parse_id)
            .transpose()
    }
    fn at<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<DateTime<Utc>, StoreError> {
        parse_ts(&self.try_get::<String, _>(i)?)
    }
    fn opt_at<I: ColumnIndex<Self> + Copy>(
        &self,
        i: I,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.try_get::<Option<String>, _>(i)?
            .as_deref()
            .map(parse_ts)
            .transpose()
    }
    fn int<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<i64, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_int<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn text<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<String, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_text<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn flag<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<bool, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_float<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Option<f64>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn json<T: DeserializeOwned, I: ColumnIndex<Self> + Copy>(
        &self,
        i: I,
    ) -> Result<T, StoreError> {
        serde_json::from_str(&self.try_get::<String, _>(i)?).map_err(corrupt_json)
    }
    fn raw<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Option<String> {
        self.try_get::<String, _>(i).ok()
    }
}

impl Cols for PgRow {
    fn id<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Uuid, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_id<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Option<Uuid>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn at<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<DateTime<Utc>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_at<I: ColumnIndex<Self> + Copy>(
        &self,
        i: I,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.try_get(i)?)
    }
    /// Small counters (steps, attempts, ranks) are `int4`; sequence numbers and counts are `int8`.
    fn int<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<i64, StoreError> {
        Ok(self.opt_int(i)?.ok_or(sqlx::Error::ColumnDecode {
            index: "?".into(),
            source: "unexpected NULL".into(),
        })?)
    }
    fn opt_int<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Option<i64>, StoreError> {
        match self.try_column(i)?.type_info().name() {
            "INT4" => Ok(self.try_get::<Option<i32>, _>(i)?.map(i64::from)),
            "INT2" => Ok(self.try_get::<Option<i16>, _>(i)?.map(i64::from)),
            _ => Ok(self.try_get(i)?),
        }
    }
    fn text<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<String, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_text<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn flag<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<bool, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_float<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Result<Option<f64>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn json<T: DeserializeOwned, I: ColumnIndex<Self> + Copy>(
        &self,
        i: I,
    ) -> Result<T, StoreError> {
        match self.try_column(i)?.type_info().name() {
            "JSONB" | "JSON" => Ok(self.try_get::<sqlx::types::Json<T>, _>(i)?.0),
            _ => serde_json::from_str(&self.try_get::<String, _>(i)?).map_err(corrupt_json),
        }
    }
    fn raw<I: ColumnIndex<Self> + Copy>(&self, i: I) -> Option<String> {
        self.try_get::<Uuid, _>(i)
            .map(|u| u.to_string())
            .or_else(|_| self.try_get::<String, _>(i))
            .ok()
    }
}

/// A row that did not decode, named by its first column (the id) and its workspace when it has one.
pub(crate) fn bad_row<R: Cols>(kind: &'static str, row: &R, e: StoreError) -> BadRow
where
    usize: ColumnIndex<R>,
    for<'a> &'a str: ColumnIndex<R>,
{
    BadRow {
        kind,
        id: row.raw(0usize).unwrap_or_default(),
        workspace: row.raw("workspace_id"),
        reason: e.to_string(),
    }
}

/// An exit mark whose six columns ([`MARK_COLUMNS`]) start at `at`.
pub(crate) fn mark<R: Cols>(row: &R, at: usize) -> Result<Mark, StoreError>
where
    usize: ColumnIndex<R>,
{
    Ok(Mark {
        flow: row.text(at)?,
        rule: row.int(at + 1)?,
        name: row.text(at + 2)?,
        key: row.opt_text(at + 3)?,
        contact: ContactId(row.id(at + 4)?),
        happened: row.at(at + 5)?,
    })
}

/// The columns [`mark`] reads, from `exit_marks m`.
pub(crate) const MARK_COLUMNS: &str =
    "m.flow_id, m.rule, m.name, m.run_key, m.contact_id, m.happened_at";

/// The columns [`live_run`] reads, from `runs r`.
pub(crate) const LIVE_RUN_COLUMNS: &str =
    "r.id, r.flow_id, r.run_key, r.contact_id, r.step, r.due_at, r.started_at, r.experiment, r.arm";

/// A run in progress for a group, from [`LIVE_RUN_COLUMNS`].
pub(crate) fn live_run<R: Cols>(r: &R) -> Result<LiveRun, StoreError>
where
    usize: ColumnIndex<R>,
{
    Ok(LiveRun {
        id: RunId(r.id(0)?),
        flow: r.text(1)?,
        key: r.text(2)?,
        contact: ContactId(r.id(3)?),
        step: r.int(4)?,
        due: r.opt_at(5)?,
        started: r.at(6)?,
        arm: r.opt_text(7)?.zip(r.opt_text(8)?).map(|(e, a)| {
            let arm = Arm::parse(&a);
            (e, arm)
        }),
    })
}

/// A due run, from `id, workspace_id, flow_id, run_key, contact_id, step, started_at, snapshot` of `runs`.
/// A snapshot that is not JSON is read as null: the run still moves on.
pub(crate) fn due_run<R: Cols>(r: &R) -> Result<DueRun, StoreError>
where
    usize: ColumnIndex<R>,
{
    Ok(DueRun {
        id: RunId(r.id(0)?),
        ws: WorkspaceId(r.id(1)?),
        flow: r.text(2)?,
        key: r.text(3)?,
        contact: ContactId(r.id(4)?),
        step: r.int(5)?,
        started: r.at(6)?,
        snapshot: serde_json::from_str(&r.text(7)?).unwrap_or(serde_json::Value::Null),
        arm: r.opt_text(8)?.as_deref().map(Arm::parse),
    })
}

/// A queued message to send. `taken_over`: it was still leased by a worker whose lease ran out.
pub(crate) fn out_message<R: Cols>(r: &R, taken_over: bool) -> Result<OutMessage, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(OutMessage {
        id: MessageId(r.id("id")?),
        workspace: WorkspaceId(r.id("workspace_id")?),
        idempotency_key: r.text("idempotency_key")?,
        channel: r.text("channel")?,
        to: r.text("to_addr")?,
        from: r.text("from_addr")?,
        reply_to: r.opt_text("reply_to")?,
        subject: r.text("subject")?,
        text: r.text("body_text")?,
        html: r.opt_text("body_html")?,
        unsubscribe_url: r.opt_text("unsubscribe_url")?,
        attempts: r.int("attempts")?,
        taken_over,
    })
}

/// A suppression-list entry with its workspace (`SELECT *` of `suppressions`).
pub(crate) fn suppression<R: Cols>(
    r: &R,
) -> Result<(WorkspaceId, pronto_domain::suppression::Suppression), StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    use pronto_domain::suppression::{Medium, Reason, Suppression};
    let medium = match r.text("medium")?.as_str() {
        "email" => Medium::Email,
        "sms" => Medium::Sms,
        other => return Err(StoreError::Corrupt(format!("unknown medium `{other}`"))),
    };
    let reason = r.text("reason")?;
    let reason = Reason::parse(&reason)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown suppression reason `{reason}`")))?;
    Ok((
        WorkspaceId(r.id("workspace_id")?),
        Suppression {
            medium,
            address: r.text("address")?,
            reason,
            source: r.text("source")?,
            detail: r.opt_text("detail")?,
            since: r.at("since")?,
            until: r.opt_at("until")?,
        },
    ))
}

pub(crate) fn message_view<R: Cols>(r: &R) -> Result<MessageView, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(MessageView {
        id: MessageId(r.id("id")?),
        idempotency_key: r.text("idempotency_key")?,
        run_id: r.opt_id("run_id")?.map(RunId),
        flow: r.opt_text("flow_id")?,
        step: r.opt_int("step")?,
        contact_id: ContactId(r.id("contact_id")?),
        channel: r.text("channel")?,
        to: r.text("to_addr")?,
        from: r.text("from_addr")?,
        reply_to: r.opt_text("reply_to")?,
        subject: r.text("subject")?,
        text: r.text("body_text")?,
        html: r.opt_text("body_html")?,
        state: r.text("state")?,
        attempts: r.int("attempts")?,
        next_attempt_at: r.opt_at("next_attempt_at")?,
        last_error: r.opt_text("last_error")?,
        transport: r.opt_text("transport")?,
        created_at: r.at("created_at")?,
        sent_at: r.opt_at("sent_at")?,
    })
}

pub(crate) fn run_view<R: Cols>(r: &R, log: Vec<LogEntry>) -> Result<RunView, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(RunView {
        id: RunId(r.id("id")?),
        flow: r.text("flow_id")?,
        key: r.text("run_key")?,
        contact_id: ContactId(r.id("contact_id")?),
        state: r.text("state")?,
        step: r.int("step")?,
        due_at: r.opt_at("due_at")?,
        started_at: r.at("started_at")?,
        outcome: r.opt_text("outcome")?,
        created_at: r.at("created_at")?,
        updated_at: r.at("updated_at")?,
        snapshot: r.json("snapshot")?,
        experiment: r.opt_text("experiment")?,
        arm: r.opt_text("arm")?,
        log,
    })
}

pub(crate) fn log_entry<R: Cols>(r: &R) -> Result<LogEntry, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(LogEntry {
        at: r.at("at")?,
        step: r.opt_int("step")?,
        kind: r.text("kind")?,
        detail: r.text("detail")?,
    })
}

/// The columns [`lead_state`] reads, in its order, from `leads`.
pub(crate) const LEAD_COLUMNS: &str = "id, workspace_id, contact_id, created_at, name, email, phone, company, \
    message, source, form, fields, owner, team, route, status, sla_deadline, sla_step, due_at, tried, promised_at, \
    claimed_at, claimed_by, first_contact_at, replied_at, outcome, closed_at";

/// A lead, from [`LEAD_COLUMNS`]. A `tried` that is not a list of rep ids makes the row unreadable (it is
/// quarantined), on both backends.
pub(crate) fn lead_state<R: Cols>(r: &R) -> Result<LeadState, StoreError>
where
    usize: ColumnIndex<R>,
{
    Ok(LeadState {
        id: LeadId(r.id(0)?),
        workspace_id: WorkspaceId(r.id(1)?),
        contact_id: ContactId(r.id(2)?),
        created_at: r.at(3)?,
        name: r.opt_text(4)?,
        email: r.opt_text(5)?,
        phone: r.opt_text(6)?,
        company: r.opt_text(7)?,
        message: r.opt_text(8)?,
        source: r.opt_text(9)?,
        form: r.opt_text(10)?,
        fields: r.json(11)?,
        owner: r.opt_text(12)?,
        team: r.opt_text(13)?,
        route: r.opt_text(14)?,
        status: r.text(15)?.parse().map_err(StoreError::Corrupt)?,
        sla_deadline: r.opt_at(16)?,
        sla_step: r.int(17)?,
        due_at: r.opt_at(18)?,
        tried: r.json(19)?,
        promised_at: r.opt_at(20)?,
        claimed_at: r.opt_at(21)?,
        claimed_by: r.opt_text(22)?,
        first_contact_at: r.opt_at(23)?,
        replied_at: r.opt_at(24)?,
        outcome: r.opt_text(25)?,
        closed_at: r.opt_at(26)?,
    })
}

pub(crate) fn api_key<R: Cols>(r: &R) -> Result<ApiKey, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    ApiKey::decode(
        r.text("id")?,
        &r.text("kind")?,
        &r.text("origin")?,
        r.opt_text("label")?,
        r.at("created_at")?,
        r.opt_at("revoked_at")?,
    )
}

/// A stored event's answer, for a retry of it.
pub(crate) fn ingested<R: Cols>(r: &R) -> Result<Ingested, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(Ingested {
        event_id: EventId(r.id("id")?),
        seq: r.int("seq")?,
        contact_id: ContactId(r.id("contact_id")?),
        lead_id: r.opt_id("lead_id")?.map(LeadId),
        duplicate: true,
        request_hash: r.opt_text("request_hash")?,
    })
}

pub(crate) fn stored_event<R: Cols>(r: &R) -> Result<StoredEvent, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(StoredEvent {
        id: EventId(r.id("id")?),
        seq: r.int("seq")?,
        contact_id: ContactId(r.id("contact_id")?),
        kind: r.text("type")?,
        name: r.opt_text("name")?,
        message_id: r.opt_text("message_id")?,
        timestamp: r.opt_at("client_ts")?,
        received_at: r.at("received_at")?,
        payload: r.json("payload")?,
    })
}

/// The columns [`unmapped_delivery`] reads, from `unmapped_deliveries`.
pub(crate) const UNMAPPED_COLUMNS: &str =
    "platform, shop, delivery_id, topic, reason, body, received_at";

pub(crate) fn unmapped_delivery<R: Cols>(r: &R) -> Result<UnmappedDelivery, StoreError>
where
    usize: ColumnIndex<R>,
{
    Ok(UnmappedDelivery {
        platform: r.text(0)?,
        shop: r.text(1)?,
        delivery_id: r.text(2)?,
        topic: r.text(3)?,
        reason: r.text(4)?,
        body: r.text(5)?,
        received_at: r.at(6)?,
    })
}

/// The columns [`product`] reads, from `products`.
pub(crate) const PRODUCT_COLUMNS: &str =
    "product_key, product_id, skus, title, url, image_url, price, \
     available, kind, tags, collections, updated_at";

pub(crate) fn product<R: Cols>(r: &R) -> Result<Product, StoreError>
where
    usize: ColumnIndex<R>,
{
    Ok(Product {
        key: r.text(0)?,
        product_id: r.opt_text(1)?,
        skus: r.json(2)?,
        title: r.text(3)?,
        url: r.opt_text(4)?,
        image_url: r.opt_text(5)?,
        price: r.opt_float(6)?,
        available: r.flag(7)?,
        kind: r.opt_text(8)?,
        tags: r.json(9)?,
        collections: r.json(10)?,
        updated_at: r.opt_at(11)?,
    })
}

/// A run of an experiment for its report, from `id, flow_id, experiment, arm, conversion time, conversion
/// payload, workspace_id, started_at` (the conversion's two null without one); its touches are added by
/// [`experiment_outcomes`].
pub(crate) fn experiment_run<R: Cols>(r: &R) -> Result<OutcomeRow, StoreError>
where
    usize: ColumnIndex<R>,
{
    let conversion = match (r.opt_at(4)?, r.opt_text(5)?) {
        (Some(at), Some(payload)) => Some(Conversion {
            at,
            event: serde_json::from_str(&payload).map_err(corrupt_json)?,
        }),
        _ => None,
    };
    Ok(OutcomeRow {
        run: RunId(r.id(0)?),
        workspace: WorkspaceId(r.id(6)?),
        started: r.at(7)?,
        outcome: RunOutcome {
            flow: r.text(1)?,
            experiment: r.text(2)?,
            arm: Arm::parse(&r.text(3)?),
            touches: Vec::new(),
            conversion,
        },
    })
}

/// A message of a run, from `run_id, step, created_at, first click time`.
pub(crate) fn experiment_touch<R: Cols>(r: &R) -> Result<(RunId, Touch), StoreError>
where
    usize: ColumnIndex<R>,
{
    Ok((
        RunId(r.id(0)?),
        Touch {
            step: r.opt_int(1)?.unwrap_or(-1),
            sent: r.at(2)?,
            clicked: r.opt_at(3)?,
        },
    ))
}

/// The runs with their touches attached (a touch of a run not among `runs` is dropped).
pub(crate) fn experiment_outcomes(
    mut runs: Vec<OutcomeRow>,
    touches: Vec<(RunId, Touch)>,
) -> Vec<OutcomeRow> {
    let at: std::collections::HashMap<RunId, usize> =
        runs.iter().enumerate().map(|(i, r)| (r.run, i)).collect();
    for (run, t) in touches {
        if let Some(&i) = at.get(&run) {
            runs[i].outcome.touches.push(t);
        }
    }
    runs
}

/// The columns [`report_cursor`] reads, from `report_cursor`.
pub(crate) const CURSOR_COLUMNS: &str = "rules, runs, messages, clicks, marks";

/// How far the flows report's counts have read, from [`CURSOR_COLUMNS`].
pub(crate) fn report_cursor<R: Cols>(r: &R) -> Result<Cursor, StoreError>
where
    usize: ColumnIndex<R>,
{
    Ok(Cursor {
        rules: r.text(0)?,
        runs: r.int(1)?,
        messages: r.int(2)?,
        clicks: r.int(3)?,
        marks: r.int(4)?,
    })
}

/// A bucket of the flows report's counts, from `workspace_id, hour, flow_id, experiment, counts`.
pub(crate) fn report_bucket<R: Cols>(r: &R) -> Result<(Bucket, Counts), StoreError>
where
    usize: ColumnIndex<R>,
{
    Ok((
        (
            WorkspaceId(r.id(0)?),
            BucketKey {
                flow: r.text(2)?,
                experiment: r.text(3)?,
                hour: r.at(1)?,
            },
        ),
        r.json(4)?,
    ))
}

/// The columns [`promotion`] reads, from `promotions`.
pub(crate) const PROMOTION_COLUMNS: &str = "flow_id, experiment, variant, promoted_at, source";

/// A recorded promotion, from [`PROMOTION_COLUMNS`].
pub(crate) fn promotion<R: Cols>(r: &R) -> Result<pronto_domain::experiment::Promotion, StoreError>
where
    usize: ColumnIndex<R>,
{
    Ok(pronto_domain::experiment::Promotion {
        flow: r.text(0)?,
        experiment: r.text(1)?,
        variant: r.text(2)?,
        promoted_at: r.at(3)?,
        source: r.text(4)?,
    })
}

/// A won attempt's value from a `Lead Won` event's payload (column 0): `None` when it names no lead or no
/// value (a win logged without one).
pub(crate) fn lead_win<R: Cols>(r: &R) -> Result<Option<(LeadId, String, f64)>, StoreError>
where
    usize: ColumnIndex<R>,
{
    let payload: serde_json::Value = r.json(0)?;
    let p = payload.get("properties");
    let lead = p
        .and_then(|p| p.get("lead_id"))
        .and_then(serde_json::Value::as_str)
        .and_then(|s| s.parse().ok())
        .map(LeadId);
    let value = p
        .and_then(|p| p.get("value"))
        .and_then(serde_json::Value::as_f64);
    let currency = p
        .and_then(|p| p.get("currency"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(lead.zip(value).map(|(l, v)| (l, currency, v)))
}

/// A web app session.
pub(crate) fn session<R: Cols>(r: &R) -> Result<crate::Session, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(crate::Session {
        id: r.text("id")?,
        workspace_id: pronto_domain::WorkspaceId(r.id("workspace_id")?),
        user: r.text("user_id")?,
        method: r.text("method")?,
        agent: r.opt_text("agent")?,
        created_at: r.at("created_at")?,
        expires_at: r.at("expires_at")?,
        revoked_at: r.opt_at("revoked_at")?,
    })
}

/// An hour written by a statement as `YYYY-MM-DDTHH:00:00Z` (the same text on both backends).
pub(crate) fn parse_hour(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("an hour that does not read: {text:?}: {e}")))
}

/// Checkouts and orders per hour as both backends' statements return them: `(hour as text, name, count)`.
pub(crate) fn commerce_hours(
    rows: Vec<(String, String, i64)>,
) -> Result<crate::CommerceHours, StoreError> {
    rows.into_iter()
        .map(|(hour, name, n)| Ok((parse_hour(&hour)?, name, n)))
        .collect()
}

/// [`commerce_hours`] with each row's newest `seq`: the hours and the mark they bring `after` to.
pub(crate) fn commerce_since(
    rows: Vec<(String, String, i64, i64)>,
    after: i64,
) -> Result<(crate::CommerceHours, i64), StoreError> {
    let mark = rows.iter().map(|r| r.3).max().unwrap_or(after).max(after);
    let hours = commerce_hours(
        rows.into_iter()
            .map(|(h, name, n, _)| (h, name, n))
            .collect(),
    )?;
    Ok((hours, mark))
}

/// One step of a lead's ownership, from `g.lead_id, g.at, g.rep` of `lead_log g`
/// (`Store::ownership_between`, `Store::ownership_of`).
pub(crate) fn ownership<R: Cols>(r: &R) -> Result<(LeadId, DateTime<Utc>, String), StoreError>
where
    usize: ColumnIndex<R>,
{
    Ok((LeadId(r.id(0)?), r.at(1)?, r.text(2)?))
}
