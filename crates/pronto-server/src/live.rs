//! Live updates for open inboxes. One watcher per process reads the store's [`LeadMark`] (two index
//! reads) every [`POLL`] while any browser listens, and tells every listener when it moves; each browser
//! then fetches its inbox again. Reading the store, not this process's own writes, is what makes a lead
//! taken by another node (PostgreSQL) appear too. With nobody listening, nothing is read.
//!
//! [`LeadMark`]: pronto_store::LeadMark

use pronto_domain::WorkspaceId;
use pronto_store::Store;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// How often the watcher looks while someone listens: a new lead reaches an open screen within this plus
/// one page fetch.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// The watchers of this process, one per workspace that has listeners.
pub struct Live {
    watchers: Mutex<Vec<(WorkspaceId, watch::Sender<u64>)>>,
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
    pub fn subscribe(&self, store: &Arc<dyn Store>, ws: WorkspaceId) -> watch::Receiver<u64> {
        let mut watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        watchers.retain(|(_, tx)| !tx.is_closed());
        if let Some((_, tx)) = watchers.iter().find(|(w, _)| *w == ws) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(0u64);
        watchers.push((ws, tx.clone()));
        tokio::spawn(watch_leads(store.clone(), ws, tx));
        rx
    }
}

async fn watch_leads(store: Arc<dyn Store>, ws: WorkspaceId, tx: watch::Sender<u64>) {
    let mut last = None;
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tx.closed() => return,
        }
        match store.lead_mark(ws).await {
            Ok(mark) => {
                if last.as_ref().is_some_and(|l| *l != mark) {
                    tx.send_modify(|v| *v += 1);
                }
                last = Some(mark);
            }
            // Logged once per outage by the store's own paths; a listener simply sees no change.
            Err(e) => {
                tracing::debug!(error = %e, "the live inbox watcher could not read the leads")
            }
        }
    }
}
