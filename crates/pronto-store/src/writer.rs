//! Group commit.
//!
//! A durable commit (an fsync) costs about as much for a hundred rows as for one, so requests do not each open
//! a transaction: they queue here, and a writer task takes whatever is waiting (up to a bound), applies each
//! request in its own savepoint, commits once, and only then answers every request. Under load many requests
//! share one fsync; with no load a request is committed alone, at once. A request's answer is sent after the
//! commit returned, so a 2xx built on it always means "durable".

use crate::apply::ingest::ingest_group;
use crate::contacts::IngestTx;
use crate::tx::{Commit, Job};
use crate::{IngestItem, Ingested, Shared, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::WorkspaceId;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Opens transactions for the writer; each backend implements it.
#[async_trait]
pub(crate) trait Begin: Send + Sync + 'static {
    type Tx: IngestTx + Commit;
    async fn begin(&self) -> Result<Self::Tx, StoreError>;
}

/// The handle requests queue on, and the writer tasks behind it. `close` stops taking requests, lets the
/// writers drain what is queued, and waits for them.
pub(crate) struct Writers {
    queue: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Writers {
    /// Starts `writers` tasks over `db`. Each group holds at most `max_events` events.
    pub fn start<B: Begin>(
        db: Arc<B>,
        writers: usize,
        max_events: usize,
        shared: Arc<Shared>,
    ) -> Self {
        let (queue, rx) = mpsc::channel::<Job>(4096);
        let rx = Arc::new(Mutex::new(rx));
        let tasks = (0..writers.max(1))
            .map(|_| tokio::spawn(run(db.clone(), rx.clone(), max_events, shared.clone())))
            .collect();
        Self {
            queue: std::sync::Mutex::new(Some(queue)),
            tasks: Mutex::new(tasks),
        }
    }

    pub async fn submit(
        &self,
        workspace: WorkspaceId,
        items: Vec<IngestItem>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Ingested>, StoreError> {
        let queue = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Job {
                workspace,
                items,
                received_at,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn close(&self) {
        drop(self.queue.lock().unwrap_or_else(|e| e.into_inner()).take());
        for task in self.tasks.lock().await.drain(..) {
            let _ = task.await;
        }
    }
}

async fn run<B: Begin>(
    db: Arc<B>,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    max_events: usize,
    shared: Arc<Shared>,
) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(job) => jobs.push(job),
                None => return,
            }
            let mut events = jobs[0].items.len();
            while events < max_events {
                match rx.try_recv() {
                    Ok(job) => {
                        events += job.items.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        metrics::histogram!("pronto_group_commit_requests").record(jobs.len() as f64);
        commit_group(&*db, jobs, &shared).await;
    }
}

async fn commit_group<B: Begin>(db: &B, jobs: Vec<Job>, shared: &Shared) {
    let refuse = |jobs: Vec<Job>, e: &StoreError| {
        let msg = e.to_string();
        for job in jobs {
            let _ = job.reply.send(Err(StoreError::Unavailable(msg.clone())));
        }
    };
    let mut tx = match db.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            shared.write_failed(&e);
            return refuse(jobs, &e);
        }
    };
    let program = shared.program();
    let (results, touched) = match ingest_group(&mut tx, &jobs, &program).await {
        Ok(r) => r,
        Err(e) => {
            // Nothing of the group is committed.
            tx.rollback().await;
            shared.write_failed(&e);
            return refuse(jobs, &e);
        }
    };
    match tx.commit().await {
        Ok(()) => {
            shared.write_ok();
            shared.ingest_committed();
            if let Some(at) = touched.timers {
                shared.timer_set(at);
            }
            if touched.outbox {
                shared.outbox.notify_one();
            }
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(Ok(result));
            }
        }
        Err(e) => {
            shared.write_failed(&e);
            refuse(
                jobs,
                &StoreError::Unavailable(format!("commit failed: {e}")),
            );
        }
    }
}
