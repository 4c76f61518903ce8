//! Live updates for open inboxes. One watcher per process reads the store's [`LeadMark`] (two index
//! reads) every [`POLL`] while any browser listens; when it moves, the watcher reads the leads that arrived or
//! changed since the previous mark (one indexed read) and hands them to every listener, which sends its
//! browser the cards of those it may see, drawn once per person (their tabs share them). So a change costs
//! one read per process and one drawing per person, not one page fetch per open inbox. Reading the store, not this process's own writes, is what makes a lead
//! taken by another node (PostgreSQL) appear too. With nobody listening, nothing is read.
//!
//! [`LeadMark`]: pronto_store::LeadMark

use pronto_domain::WorkspaceId;
use pronto_store::{LeadMark, LeadState, Store};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// How often the watcher looks while someone listens: a new lead reaches an open screen within this plus
/// one read.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// The most leads one change carries; past it (a burst, an import) every listener draws its page again.
pub const BATCH: i64 = 200;

/// The most cards one person is sent for one change; past it their pages draw themselves again (one fetch
/// each, rather than every tab receiving a long stream of cards).
pub const CARDS: usize = 50;

/// Stands for the session's CSRF token in cards drawn once per person: each stream puts its own in.
pub const CSRF_PLACEHOLDER: &str = "pronto-live-csrf";

/// What the watcher saw change.
#[derive(Debug, Default)]
pub struct Change {
    /// One more per change: a listener that sees a number skipped (it was busy) draws its page again.
    pub version: u64,
    /// The leads that arrived or changed, newest first; `None` when there were more than [`BATCH`] or they
    /// could not be read (every listener then draws its page again).
    pub leads: Option<Vec<LeadState>>,
    /// The cards drawn for each person (by user id), shared by all their open tabs; `None`: too many for
    /// them ([`CARDS`]), or none they may see is empty.
    drawn: Mutex<std::collections::HashMap<String, Option<Arc<str>>>>,
}

impl Change {
    /// `user`'s cards of this change, drawn by `draw` the first time one of their streams asks.
    pub fn drawn_for(&self, user: &str, draw: impl FnOnce() -> Option<String>) -> Option<Arc<str>> {
        let mut drawn = self.drawn.lock().unwrap_or_else(|p| p.into_inner());
        drawn
            .entry(user.to_string())
            .or_insert_with(|| draw().map(Arc::from))
            .clone()
    }
}

/// The watchers of this process, one per workspace that has listeners.
pub struct Live {
    watchers: Mutex<Vec<(WorkspaceId, watch::Sender<Arc<Change>>)>>,
    /// Set when the server shuts down: every stream ends, so a graceful shutdown does not wait forever for
    /// open inboxes.
    closing: watch::Sender<bool>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            watchers: Mutex::default(),
            closing: watch::channel(false).0,
        }
    }
}

impl Live {
    /// Ends every open stream (the server is shutting down).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`Live::close`] was called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// A receiver that changes whenever the workspace's leads do. Starts the workspace's watcher if none
    /// runs; the watcher stops by itself once its last receiver is dropped.
    pub fn subscribe(
        &self,
        store: &Arc<dyn Store>,
        ws: WorkspaceId,
    ) -> watch::Receiver<Arc<Change>> {
        let mut watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        watchers.retain(|(_, tx)| !tx.is_closed());
        if let Some((_, tx)) = watchers.iter().find(|(w, _)| *w == ws) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(Arc::new(Change::default()));
        watchers.push((ws, tx.clone()));
        tokio::spawn(watch_leads(store.clone(), ws, tx));
        rx
    }
}

async fn watch_leads(store: Arc<dyn Store>, ws: WorkspaceId, tx: watch::Sender<Arc<Change>>) {
    let mut last: Option<LeadMark> = None;
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tx.closed() => return,
        }
        let mark = match store.lead_mark(ws).await {
            Ok(mark) => mark,
            // Logged once per outage by the store's own paths; a listener simply sees no change.
            Err(e) => {
                tracing::debug!(error = %e, "the live inbox watcher could not read the leads");
                continue;
            }
        };
        if let Some(before) = last.as_ref().filter(|l| **l != mark) {
            // Everything after the previous mark: a lead written between the two reads is sent now and
            // again with the next change (a card replaced by itself), never missed.
            let leads = store
                .leads_since(ws, before, BATCH + 1)
                .await
                .map_err(|e| tracing::debug!(error = %e, "the live inbox watcher could not read the changes"))
                .ok()
                .filter(|l| l.len() <= BATCH as usize);
            let version = tx.borrow().version + 1;
            tx.send_replace(Arc::new(Change {
                version,
                leads,
                drawn: Mutex::default(),
            }));
        }
        last = Some(mark);
    }
}
