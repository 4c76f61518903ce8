//! The background workers of `pronto serve`: the scheduler, which fires due timers, the delivery worker,
//! which sends the outbox, and the counter, which keeps the flows report's counts up to date.
//!
//! Neither polls on a fixed beat. Each sleeps until the earliest due time it knows of, or until it is rung: by
//! a commit of this process (a timer scheduled, messages queued) or, on PostgreSQL, by another process's
//! `NOTIFY`. A capped idle sleep ([`IDLE`]) re-checks anyway, so a missed notification costs at most that.
//! Time comes from the injected [`Clock`], so tests move time instead of sleeping; the real-time sleep is only
//! the wake-up, never the decision.
//!
//! Each worker's unit of work is a public one-step function ([`fire_step`], [`deliver_step`]) answering a
//! [`Step`], as zero2prod's `try_execute_task` answers an `ExecutionOutcome`: tests run them until both are
//! [`Step::Idle`] instead of sleeping and hoping the background loop got there. The scheduler's loop is
//! `fire_step` repeated; the delivery loop pipelines the same claim, send and record that `deliver_step` does
//! once (sends overlap with claims and records; see [`SEND_CONCURRENCY`]).

use chrono::{DateTime, Utc};
use pronto_channels::email::{Email, SmtpSender};
use pronto_channels::sms::{Sms, SmsSender};
use pronto_channels::webhook::{Webhook, WebhookSender};
use pronto_channels::SendError;
use pronto_domain::suppression::{self, Medium, Verdict};
use pronto_domain::Clock;
use pronto_domain::MessageId;
use pronto_store::{Bounce, Delivery, OutMessage, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// The longest a worker sleeps without checking the store.
pub const IDLE: Duration = Duration::from_secs(5);
/// Runs fired per transaction.
pub const TIMER_BATCH: i64 = 1000;
/// Messages claimed and not yet recorded, at once: bounds the connections to the SMTP server and how many
/// messages a crash can leave sent but not recorded (a slot is freed when the outcome is committed).
/// Throughput needs many: a slot is held through the send and the wait for the commit that records it, so
/// messages per second ≈ slots ÷ (send + record wait). The SMTP pool keeps as many connections open.
pub const SEND_CONCURRENCY: usize = pronto_channels::email::IDLE_CONNECTIONS as usize;
/// How long a claimed message is reserved for its worker; a worker that dies mid-send leaves the message to
/// be retried after this (on SQLite at once, at the next start). Twice the SMTP timeout, so a slow send is
/// never taken over by another process while it is still running.
pub const LEASE: Duration = Duration::from_secs(60);
/// Temporary failures are retried this many times in all, then the message is marked failed.
pub const MAX_ATTEMPTS: i64 = 10;

/// Where messages go out. Without SMTP, emails go to the built-in dev mailbox; without an SMS provider, no SMS
/// is queued in the first place.
#[derive(Clone, Default)]
pub struct Channels {
    pub smtp: Option<SmtpSender>,
    pub sms: Option<SmsSender>,
    /// Signs webhooks (Standard Webhooks headers; Slack ignores them).
    pub webhook: Option<WebhookSender>,
    /// `[inbound] unsubscribe_address`: marketing mail's `List-Unsubscribe` also names it as a `mailto:`.
    pub unsubscribe_mailbox: Option<String>,
    /// `[smtp] per_domain_per_minute`: email over a domain's limit is held to the next minute.
    pub pace: Option<Arc<std::sync::Mutex<pronto_domain::pace::Pace>>>,
}

/// The running workers; [`Workers::stop`] lets each finish what it is doing and waits for them.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// Starts the scheduler and the delivery worker. Without an SMTP sender, emails go to the built-in dev
    /// mailbox (marked sent with transport `mailbox`, readable at `GET /v1/messages`).
    pub fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        channels: Channels,
        retention: Retention,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        // PostgreSQL claims with SKIP LOCKED, so several batches can fire in parallel (as several processes
        // would): while one batch waits for the database another renders its messages. Three drained a burst
        // of 10,000 due timers at 19,289 fires/s against 12,496 with two (`pronto bench timers`, 2 cores);
        // SQLite has one writer, where a second loop would only wait for it.
        let schedulers = if store.backend() == "postgres" { 3 } else { 1 };
        let mut tasks: Vec<_> = (0..schedulers)
            .map(|_| tokio::spawn(scheduler(store.clone(), clock.clone(), stopped.clone())))
            .collect();
        tasks.push(tokio::spawn(counter(
            store.clone(),
            clock.clone(),
            stopped.clone(),
        )));
        if retention.is_set() {
            tasks.push(tokio::spawn(pruner(
                store.clone(),
                clock.clone(),
                retention,
                stopped.clone(),
            )));
        }
        tasks.push(tokio::spawn(delivery(store, clock, channels, stopped)));
        Self { stop, tasks }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// `[retention]`: how long events and messages are kept (`None`: for good).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub events: Option<chrono::Duration>,
    pub messages: Option<chrono::Duration>,
}

impl Retention {
    pub fn is_set(&self) -> bool {
        self.events.is_some() || self.messages.is_some()
    }
}

/// Rows of each table one retention batch deletes: a millisecond or two of the SQLite writer, which is as
/// long as an ingestion group can be kept waiting by it.
const PRUNE_BATCH: i64 = 200;
/// Retention rests this many times as long as each batch took: it takes at most a quarter of the writer.
const PRUNE_REST: u32 = 3;
/// How often retention walks the tables again.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Retention's step: deletes one batch from `cursor` (moved on), of rows older than `retention` allows at
/// `now`; answers what it deleted ([`pronto_store::Pruned::done`]: nothing more this round).
pub async fn prune_step(
    store: &dyn Store,
    retention: &Retention,
    now: DateTime<Utc>,
    cursor: &mut pronto_store::PruneCursor,
) -> Result<pronto_store::Pruned, StoreError> {
    let p = store
        .prune(
            retention.events.map(|d| now - d),
            retention.messages.map(|d| now - d),
            cursor,
            PRUNE_BATCH,
        )
        .await?;
    metrics::counter!("pronto_pruned_total", "table" => "events").increment(p.events);
    metrics::counter!("pronto_pruned_total", "table" => "messages").increment(p.messages);
    *cursor = p.cursor.clone();
    Ok(p)
}

/// Retention's loop: once an hour, walks both tables from the oldest rows, a batch at a time, resting
/// [`PRUNE_REST`] times as long as each batch took, so it takes at most a quarter of the writer it shares
/// with ingestion (a million old rows go in a minute or two on this machine).
async fn pruner(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retention: Retention,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new("deleting old events and messages");
    loop {
        let mut cursor = pronto_store::PruneCursor::default();
        loop {
            let started = std::time::Instant::now();
            let wait = match prune_step(&*store, &retention, clock.now(), &mut cursor).await {
                Ok(p) if p.done() => break,
                Ok(_) => {
                    backoff.ok();
                    started.elapsed() * PRUNE_REST
                }
                Err(e) => backoff.failed(&e),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// What one step of a worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A full batch was done: more may be waiting now.
    More,
    /// Nothing more is due now; the next thing falls due at `next` (`None`: nothing is scheduled).
    Idle { next: Option<DateTime<Utc>> },
}

/// The scheduler's step: fires one batch of due timers (runs and lead escalations) at `now`.
pub async fn fire_step(store: &dyn Store, now: DateTime<Utc>) -> Result<Step, StoreError> {
    let f = store.fire_due(now, TIMER_BATCH).await?;
    metrics::counter!("pronto_timers_fired_total").increment(f.runs as u64);
    metrics::counter!("pronto_messages_queued_total").increment(f.messages as u64);
    // The pools' stock is counted at most every ten seconds: a count over a large pool is not free.
    static LOOKED: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let last = LOOKED.load(std::sync::atomic::Ordering::Relaxed);
    if !f.code_workspaces.is_empty() && now.timestamp() - last >= 10 {
        LOOKED.store(now.timestamp(), std::sync::atomic::Ordering::Relaxed);
        for ws in &f.code_workspaces {
            watch_offer_stock(store, *ws).await;
        }
    }
    Ok(if ((f.runs + f.quarantined) as i64) < TIMER_BATCH {
        Step::Idle { next: f.next_due }
    } else {
        Step::More
    })
}

/// After a batch drew offer codes: each pool's unused codes in `pronto_offer_codes_left`, and a warning when
/// a configured pool is below its `low_at` (a failed read only skips the look).
async fn watch_offer_stock(store: &dyn Store, ws: pronto_domain::WorkspaceId) {
    let Ok(stock) = store.offer_stock(ws).await else {
        return;
    };
    let program = store.shared().program();
    for s in stock {
        metrics::gauge!("pronto_offer_codes_left", "offer" => s.offer.clone()).set(s.unused as f64);
        if let Some(o) = program.offers.get(&s.offer) {
            if s.unused < u64::from(o.low_at) {
                tracing::warn!(
                    offer = %s.offer,
                    left = s.unused,
                    low_at = o.low_at,
                    "offer pool running low: add codes (pronto offers import / generate) before it empties"
                );
            }
        }
    }
}

/// The delivery worker's step: claims up to [`SEND_CONCURRENCY`] messages due at `now`, sends them at once and
/// records every outcome in one commit.
pub async fn deliver_step(
    store: &dyn Store,
    channels: &Channels,
    now: DateTime<Utc>,
) -> Result<Step, StoreError> {
    let batch = store
        .claim_messages(now, SEND_CONCURRENCY as i64, lease_until(now))
        .await?;
    let sends = batch.iter().map(|m| deliver(m, channels, now));
    let outcomes = futures_util::future::join_all(sends).await;
    let rows: Vec<(MessageId, Delivery)> = batch.iter().map(|m| m.id).zip(outcomes).collect();
    if !rows.is_empty() {
        store.record_deliveries(&rows, now).await?;
    }
    Ok(if rows.len() < SEND_CONCURRENCY {
        Step::Idle {
            next: store.next_message_due().await?,
        }
    } else {
        Step::More
    })
}

/// The workers' steps on demand, for a server built without background workers
/// (`App::build_stepped`).
#[derive(Clone)]
pub struct Stepper {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    channels: Arc<Channels>,
    retention: Retention,
}

impl Stepper {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        channels: Channels,
        retention: Retention,
    ) -> Self {
        Self {
            store,
            clock,
            channels: Arc::new(channels),
            retention,
        }
    }

    /// One retention round at the clock's now, batch by batch until both tables are done; answers how many
    /// events and messages it deleted.
    pub async fn prune(&self) -> Result<(u64, u64), StoreError> {
        let now = self.clock.now();
        let mut cursor = pronto_store::PruneCursor::default();
        let (mut events, mut messages) = (0, 0);
        loop {
            let p = prune_step(&*self.store, &self.retention, now, &mut cursor).await?;
            events += p.events;
            messages += p.messages;
            if p.done() {
                return Ok((events, messages));
            }
        }
    }

    /// The counter's look at the experiments ([`crate::experiments::promote_step`]) in the default
    /// workspace, now.
    pub async fn promote(&self) -> Result<Vec<pronto_domain::experiment::Promotion>, StoreError> {
        let ws = self.store.default_workspace().await?.id;
        crate::experiments::promote_step(&*self.store, ws, self.clock.now()).await
    }

    /// Fires every timer due at the clock's now and delivers every message due then (those the firing
    /// queued included), until both workers are idle; answers when the next timer falls due.
    pub async fn settle(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        loop {
            let now = self.clock.now();
            let fired = fire_step(&*self.store, now).await?;
            let sent = deliver_step(&*self.store, &self.channels, now).await?;
            if let (Step::Idle { next }, Step::Idle { .. }) = (fired, sent) {
                return Ok(next);
            }
        }
    }
}

/// When a message claimed at `now` may be claimed again (see [`LEASE`]).
fn lease_until(now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::from_std(LEASE).unwrap_or_default()
}

/// How long to sleep until `next` (capped at [`IDLE`]).
fn until(next: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Duration {
    next.map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
        .unwrap_or(IDLE)
        .min(IDLE)
}

/// A worker's wait after a failure: 100 ms doubling to [`IDLE`], so a database that is down or a batch that
/// keeps failing is retried without a hot loop; the first failure is logged at once, repeats at most every
/// 30 s (with how many there were), and recovery once.
struct Backoff {
    what: &'static str,
    failures: u32,
    logged: Option<std::time::Instant>,
    since_log: u32,
}

impl Backoff {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            failures: 0,
            logged: None,
            since_log: 0,
        }
    }

    /// Records a failure; answers how long to wait before the next try.
    fn failed(&mut self, e: &dyn std::fmt::Display) -> Duration {
        self.failures += 1;
        self.since_log += 1;
        let due = self
            .logged
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(30));
        if due {
            tracing::warn!(error = %e, failures = self.since_log, "{} failed; retrying with backoff", self.what);
            self.logged = Some(std::time::Instant::now());
            self.since_log = 0;
        }
        let exp = self.failures.saturating_sub(1).min(6);
        (Duration::from_millis(100) * 2u32.pow(exp)).min(IDLE)
    }

    fn ok(&mut self) {
        if self.failures > 0 {
            tracing::info!(after = self.failures, "{} works again", self.what);
        }
        *self = Self::new(self.what);
    }
}

async fn scheduler(store: Arc<dyn Store>, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    let shared = store.shared().clone();
    let mut backoff = Backoff::new("firing timers");
    loop {
        if *stop.borrow() {
            return;
        }
        // Fire everything due, batch after batch; the last batch says when the next timer is due.
        let (mut next, failed) = loop {
            match fire_step(&*store, clock.now()).await {
                Ok(Step::More) => backoff.ok(),
                Ok(Step::Idle { next }) => {
                    backoff.ok();
                    break (next, None);
                }
                Err(e) => break (None, Some(backoff.failed(&e))),
            }
        };
        // Sleep until then. A commit that set a timer due later than that needs no look (the one transaction
        // per ingest group it would cost took a fifth of SQLite's writer under load); one due earlier moves
        // the wake-up; a ring without a time (time moved, a reload, another process) looks at once.
        loop {
            let wait = failed.unwrap_or_else(|| until(next, clock.now()));
            tokio::select! {
                _ = tokio::time::sleep(wait) => break,
                _ = shared.timers.notified() => {}
                _ = stop.changed() => return,
            }
            match shared.take_timer_set() {
                Some(at) if failed.is_none() && at > clock.now() => {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
                _ => break,
            }
        }
    }
}

/// The counting worker's step: brings every flow's kept run counts (the flows report's and the owner's
/// recovery page's) up to date by one batch (see [`Store::fold_reports`]).
pub async fn count_step(store: &dyn Store) -> Result<Step, StoreError> {
    let program = store.shared().program();
    let rules = crate::experiments::conversion_rules(&program);
    let f = store
        .fold_reports(&rules, crate::experiments::FOLD_BATCH)
        .await?;
    Ok(if f.more {
        Step::More
    } else {
        Step::Idle { next: None }
    })
}

/// The counter's least rest between two catching-up steps. Every step is a transaction of its own (on SQLite
/// it holds the one writer and ends in an fsync), and since every flow's runs are counted, a burst of
/// checkouts keeps it catching up: resting only as long as each step took, it cost `pronto bench ingest` a
/// quarter of its requests per second (BENCHMARKS.md). A 2xx matters more than a report's freshness: a report
/// or the recovery page catches up what is left when it is opened, so the counter only has to keep the
/// backlog short (a few hundred runs a second, in the background, is far more than a shop starts), and it
/// yields to ingestion ([`CATCH_UP_YIELD`]).
pub const CATCH_UP_REST: Duration = Duration::from_millis(100);

/// While catching up, the counter waits for ingestion to pause (no group committed for [`CATCH_UP_REST`])
/// for at most this long between two steps: under sustained ingestion it still counts a step a second.
pub const CATCH_UP_YIELD: Duration = Duration::from_secs(1);

/// How often the counter applies promotions other processes recorded and checks `auto_promote` rules.
pub const PROMOTE_EVERY: Duration = Duration::from_secs(60);

/// Keeps the flows report's counts up to date: catches up, then looks again every [`IDLE`]; about every
/// [`PROMOTE_EVERY`] it also runs [`crate::experiments::promote_step`].
async fn counter(store: Arc<dyn Store>, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::new("counting the flows report");
    let mut looked: Option<std::time::Instant> = None;
    let mut catching_up = false;
    loop {
        // Catching up, yield to ingestion: while it commits groups, step only once per `CATCH_UP_YIELD`.
        if catching_up {
            let deferred = std::time::Instant::now();
            while deferred.elapsed() < CATCH_UP_YIELD
                && store
                    .shared()
                    .since_ingest()
                    .is_some_and(|t| t < CATCH_UP_REST)
            {
                tokio::select! {
                    _ = tokio::time::sleep(CATCH_UP_REST) => {}
                    _ = stop.changed() => return,
                }
            }
        }
        let started = std::time::Instant::now();
        let step = count_step(&*store).await;
        catching_up = matches!(step, Ok(Step::More));
        let wait = match step {
            // Catching up: rest three times as long as the step took, and at least `CATCH_UP_REST`, so the
            // counter takes at most a quarter of what it shares with ingestion and the scheduler (SQLite's
            // writer, PostgreSQL's cores) and commits at most ten times a second.
            Ok(Step::More) => {
                backoff.ok();
                (started.elapsed() * 3).max(CATCH_UP_REST)
            }
            Ok(Step::Idle { .. }) => {
                backoff.ok();
                if looked.is_none_or(|t| t.elapsed() >= PROMOTE_EVERY) {
                    looked = Some(std::time::Instant::now());
                    let promoted = match store.default_workspace().await {
                        Ok(ws) => {
                            crate::experiments::promote_step(&*store, ws.id, clock.now()).await
                        }
                        Err(e) => Err(e),
                    };
                    if let Err(e) = promoted {
                        tracing::warn!(error = %e, "checking experiments for promotion failed");
                    }
                }
                IDLE
            }
            Err(e) => backoff.failed(&e),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

async fn delivery(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    channels: Channels,
    mut stop: watch::Receiver<bool>,
) {
    let shared = store.shared().clone();
    let channels = Arc::new(channels);
    if store.backend() == "sqlite" {
        match store.release_claims(clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                messages = n,
                "messages in flight when pronto last stopped are retried now"
            ),
            Err(e) => tracing::warn!(error = %e, "releasing stale claims failed"),
        }
    }
    // A slot is held from the claim until the outcome is committed, not just until the send returns: a
    // message sent but not yet recorded is one a crash may repeat, so it counts against the bound too.
    let slots = Arc::new(Semaphore::new(SEND_CONCURRENCY));
    // Messages this process has claimed and not yet recorded. A lease that runs out before the outcome is
    // committed (a clock that jumps, a stalled commit) makes such a message claimable again; this process
    // must not send it a second time while its first send is still being recorded.
    let in_flight: InFlight = Arc::default();
    let (done, outcomes) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(record(
        store.clone(),
        clock.clone(),
        outcomes,
        in_flight.clone(),
    ));
    let mut sends = JoinSet::new();
    let mut backoff = Backoff::new("claiming messages");
    loop {
        if *stop.borrow() {
            break;
        }
        // Claim as many messages as there are free slots, as soon as one is free: sends overlap with the
        // claims and records of others instead of waiting for a whole round to finish.
        let first = tokio::select! {
            s = slots.clone().acquire_owned() => s,
            _ = stop.changed() => break,
        };
        let Ok(first) = first else { break };
        let want = slots.available_permits() + 1;
        let now = clock.now();
        let batch = match store
            .claim_messages(now, want as i64, lease_until(now))
            .await
        {
            Ok(b) => {
                backoff.ok();
                b
            }
            Err(e) => {
                let wait = backoff.failed(&e);
                drop(first);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => break,
                }
                continue;
            }
        };
        let drained = batch.len() < want;
        let taken_over = batch.iter().filter(|m| m.taken_over).count();
        if taken_over > 0 {
            metrics::counter!("pronto_message_leases_expired_total").increment(taken_over as u64);
            tracing::warn!(
                messages = taken_over,
                "messages were held by a worker whose lease ran out (a process that went away); sending them again"
            );
        }
        let mut first = Some(first);
        for m in batch {
            if !in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(m.id)
            {
                continue;
            }
            let slot = match first.take() {
                Some(s) => s,
                // Only this loop takes slots, and it saw them free.
                None => match slots.clone().acquire_owned().await {
                    Ok(s) => s,
                    Err(_) => break,
                },
            };
            let (clock, channels, done) = (clock.clone(), channels.clone(), done.clone());
            sends.spawn(async move {
                let outcome = deliver(&m, &channels, clock.now()).await;
                let label = match &outcome {
                    Delivery::Sent { .. } => "sent",
                    Delivery::Retry { .. } => "retry",
                    Delivery::Paced { .. } => "paced",
                    Delivery::Failed { .. } => "failed",
                };
                metrics::counter!("pronto_deliveries_total", "outcome" => label).increment(1);
                let _ = done.send((m.id, outcome, slot));
            });
        }
        drop(first);
        while sends.try_join_next().is_some() {}
        if !drained {
            continue;
        }
        let next = store.next_message_due().await.unwrap_or(None);
        let wait = until(next, clock.now());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.outbox.notified() => {}
            _ = stop.changed() => break,
        }
    }
    // Let what is on the wire finish and be recorded.
    while sends.join_next().await.is_some() {}
    drop(done);
    let _ = recorder.await;
}

/// A delivered message's outcome, and the slot it holds until the outcome is committed.
type Done = (MessageId, Delivery, OwnedSemaphorePermit);
type InFlight = Arc<std::sync::Mutex<std::collections::HashSet<MessageId>>>;

/// Commits outcomes as they come: everything that arrived while the previous commit ran goes into the next,
/// so under load one commit covers many messages and with none a message is recorded at once. Slots come
/// back only after the commit.
async fn record(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    mut outcomes: mpsc::UnboundedReceiver<Done>,
    in_flight: InFlight,
) {
    let mut group: Vec<Done> = Vec::new();
    while let Some(first) = outcomes.recv().await {
        group.push(first);
        while group.len() < SEND_CONCURRENCY {
            match outcomes.try_recv() {
                Ok(d) => group.push(d),
                Err(_) => break,
            }
        }
        let rows: Vec<(MessageId, Delivery)> = group
            .iter()
            .map(|(id, outcome, _)| (*id, outcome.clone()))
            .collect();
        if let Err(e) = store.record_deliveries(&rows, clock.now()).await {
            // The leases run out and the messages are tried again.
            tracing::error!(error = %e, messages = rows.len(), "recording deliveries failed");
        }
        {
            let mut held = in_flight.lock().unwrap_or_else(|e| e.into_inner());
            for (id, _) in &rows {
                held.remove(id);
            }
        }
        group.clear();
    }
}

/// One attempt at one message.
async fn deliver(m: &OutMessage, channels: &Channels, now: DateTime<Utc>) -> Delivery {
    let (result, transport) = match m.channel.as_str() {
        "email" => {
            let Some(smtp) = &channels.smtp else {
                return Delivery::Sent {
                    transport: "mailbox",
                };
            };
            if let Some(pace) = &channels.pace {
                let held = pace
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .admit(&m.to, now);
                if let Some(at) = held {
                    return Delivery::Paced { at };
                }
            }
            let email = Email {
                from: m.from.clone(),
                to: m.to.clone(),
                reply_to: m.reply_to.clone(),
                subject: m.subject.clone(),
                text: m.text.clone(),
                html: m.html.clone(),
                idempotency_key: m.idempotency_key.clone(),
                list_unsubscribe: m.unsubscribe_url.clone(),
                list_unsubscribe_mailto: channels.unsubscribe_mailbox.as_deref().and_then(
                    |mailbox| {
                        let url = m.unsubscribe_url.as_deref()?;
                        pronto_domain::message::links::unsubscribe_mailto(mailbox, url)
                    },
                ),
            };
            (smtp.send(&email).await, "smtp")
        }
        "sms" => {
            let Some(sms) = &channels.sms else {
                return Delivery::Failed {
                    error: "no SMS provider is configured ([sms])".into(),
                    bounce: None,
                };
            };
            let text = Sms {
                to: m.to.clone(),
                body: m.text.clone(),
            };
            (sms.send(&text).await.map(|_| ()), "sms")
        }
        "webhook" => {
            let Some(hooks) = &channels.webhook else {
                return Delivery::Failed {
                    error: "webhooks are not configured".into(),
                    bounce: None,
                };
            };
            let body =
                serde_json::from_str(&m.text).unwrap_or(serde_json::Value::String(m.text.clone()));
            let hook = Webhook {
                url: m.to.clone(),
                body,
                idempotency_key: m.idempotency_key.clone(),
            };
            (hooks.send(&hook, now.timestamp()).await, "webhook")
        }
        other => {
            return Delivery::Failed {
                error: format!("no {other} channel exists"),
                bounce: None,
            }
        }
    };
    match result {
        Ok(()) => Delivery::Sent { transport },
        Err(SendError::Temporary(e)) if m.attempts < MAX_ATTEMPTS => Delivery::Retry {
            at: now + chrono::Duration::from_std(backoff(m.attempts)).unwrap_or_default(),
            error: e,
        },
        // Not a soft bounce: temporary failures include our own relay being down, which says nothing
        // about the address.
        Err(SendError::Temporary(e)) => Delivery::Failed {
            error: format!("gave up after {} attempts: {e}", m.attempts),
            bounce: None,
        },
        Err(SendError::Permanent { code, reply }) => Delivery::Failed {
            bounce: Medium::of_channel(&m.channel).and_then(|medium| {
                bounce(
                    m,
                    transport,
                    suppression::after_refusal(medium, code.as_deref(), &reply),
                )
            }),
            error: reply,
        },
        Err(SendError::Invalid(e)) => Delivery::Failed {
            error: e,
            bounce: None,
        },
    }
}

/// What a failure means for the message's address, as the domain judged it (`None`: nothing, or the
/// address cannot be listed: a webhook, or one that does not parse).
/// Counted in `pronto_bounces_total{medium, kind}` (`hard`: listed at once; `soft`), so a bounce rate per
/// period is `rate()` of it over `pronto_deliveries_total`.
fn bounce(m: &OutMessage, source: &'static str, verdict: Verdict) -> Option<Bounce> {
    let kind = match verdict {
        Verdict::Keep => return None,
        Verdict::Suppress { .. } => "hard",
        Verdict::SoftBounce { .. } => "soft",
    };
    let (medium, address) = suppression::key_of(&m.channel, &m.to)?;
    metrics::counter!("pronto_bounces_total", "medium" => medium.as_str(), "kind" => kind)
        .increment(1);
    Some(Bounce {
        workspace: m.workspace,
        medium,
        address,
        verdict,
        source,
        message: Some(m.id),
    })
}

/// Exponential backoff with jitter: 30 s, 1 min, 2 min, … capped at 1 h, each ±25% at random so that
/// messages refused together do not all come back together.
pub fn backoff(attempts: i64) -> Duration {
    let base = 30u64.saturating_mul(1u64 << attempts.clamp(1, 8).saturating_sub(1) as u32);
    let capped = base.min(3600) as f64;
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let unit = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX);
    Duration::from_secs_f64(capped * (0.75 + 0.5 * unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_thirty_seconds_to_an_hour_with_a_quarter_of_jitter() {
        let cases = [
            (1, 30.0),
            (2, 60.0),
            (3, 120.0),
            (7, 1920.0),
            (8, 3600.0),
            (20, 3600.0),
        ];
        for (attempts, centre) in cases {
            for _ in 0..50 {
                let d = backoff(attempts).as_secs_f64();
                assert!(
                    d >= centre * 0.75 - 0.01 && d <= centre * 1.25 + 0.01,
                    "attempt {attempts}: {d}"
                );
            }
        }
    }
}
