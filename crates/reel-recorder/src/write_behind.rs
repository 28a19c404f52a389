//! The engine's changes, in order, even while the database refuses them for a while (a lock
//! held past `busy_timeout`, a full disk, PostgreSQL restarting): a batch refused as
//! *unavailable* is kept, every later batch queues behind it, and the queue is written in
//! order, off the brain, with backoff until the database takes it. The batches are
//! idempotent (inserts of new ids, updates guarded by state), so a retry after an unknown
//! outcome is safe.
//!
//! Jobs read what the brain wrote: each waits until every batch enqueued before it started
//! is in the database ([`WriteBehind::written_up_to`]).

use reel_db::{Change, Db, DbError};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What became of one batch given to [`WriteBehind::persist`].
#[derive(Debug)]
pub(crate) enum Persisted {
    Written,
    /// Kept for a retry: the database was unavailable (or earlier batches still wait).
    Held,
    /// Refused for good (a constraint, a corrupt row): dropped, as retrying cannot help.
    Refused(DbError),
}

type Batch = (u64, Vec<Change>);

pub(crate) struct WriteBehind {
    db: Db,
    queue: VecDeque<Batch>,
    /// The retry in flight: it owns the batches queued when it started and gives back those
    /// it could not write.
    retrying: Option<JoinHandle<VecDeque<Batch>>>,
    retry_at: Option<Instant>,
    backoff: Duration,
    enqueued: u64,
    written: Arc<watch::Sender<u64>>,
}

impl WriteBehind {
    pub(crate) fn new(db: Db) -> WriteBehind {
        WriteBehind {
            db,
            queue: VecDeque::new(),
            retrying: None,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            enqueued: 0,
            written: Arc::new(watch::channel(0).0),
        }
    }

    pub(crate) fn is_holding(&self) -> bool {
        !self.queue.is_empty() || self.retrying.is_some()
    }

    /// A receiver that turns `>= enqueued` once every batch given so far is written.
    pub(crate) fn written_up_to(&self) -> (u64, watch::Receiver<u64>) {
        (self.enqueued, self.written.subscribe())
    }

    /// Writes `changes` now, or keeps them behind the batches already waiting. Blocks the
    /// caller only when nothing waits (one `busy_timeout` at most, when the outage begins).
    pub(crate) async fn persist(&mut self, changes: Vec<Change>) -> Persisted {
        self.enqueued += 1;
        let seq = self.enqueued;
        if self.is_holding() {
            self.queue.push_back((seq, changes));
            return Persisted::Held;
        }
        match self.db.commit(&changes).await {
            Ok(()) => {
                self.written.send_replace(seq);
                Persisted::Written
            }
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "recorder: the database is unavailable; changes are kept and retried");
                self.queue.push_back((seq, changes));
                self.backoff = FIRST_BACKOFF;
                self.retry_at = Some(Instant::now() + self.backoff);
                Persisted::Held
            }
            Err(e) => {
                tracing::error!(error = %e, "recorder: the database refused a change");
                self.written.send_replace(seq);
                Persisted::Refused(e)
            }
        }
    }

    /// When the brain should call [`WriteBehind::retry`] (None: nothing to retry now).
    pub(crate) fn retry_at(&self) -> Option<Instant> {
        self.retry_at.filter(|_| self.retrying.is_none())
    }

    /// Starts writing the queue in order, off the brain.
    pub(crate) fn retry(&mut self) {
        self.retry_at = None;
        if self.retrying.is_some() || self.queue.is_empty() {
            return;
        }
        let mut batches = std::mem::take(&mut self.queue);
        let db = self.db.clone();
        let written = self.written.clone();
        self.retrying = Some(tokio::spawn(async move {
            while let Some((seq, changes)) = batches.front() {
                match db.commit(changes).await {
                    Ok(()) => {}
                    Err(e) if e.is_unavailable() => {
                        tracing::debug!(error = %e, "recorder: the database is still unavailable");
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "recorder: the database refused a kept change; dropped")
                    }
                }
                written.send_replace(*seq);
                batches.pop_front();
            }
            batches
        }));
    }

    /// Resolves when the retry in flight ends (pending forever when none is).
    pub(crate) async fn retried(&mut self) {
        let left = match self.retrying.as_mut() {
            Some(task) => match task.await {
                Ok(left) => left,
                Err(e) => {
                    tracing::error!(error = %e, "recorder: the retry of kept changes failed; they are lost");
                    VecDeque::new()
                }
            },
            None => std::future::pending().await,
        };
        self.retrying = None;
        let wrote_all = left.is_empty();
        // What it could not write goes back in front of what queued meanwhile.
        let mut queue = left;
        queue.extend(self.queue.drain(..));
        self.queue = queue;
        if self.queue.is_empty() {
            tracing::info!("recorder: the database took every kept change");
            self.backoff = FIRST_BACKOFF;
        } else if wrote_all {
            // The database is back; what queued during the retry goes now.
            self.retry_at = Some(Instant::now());
        } else {
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            self.retry_at = Some(Instant::now() + self.backoff);
        }
    }

    /// At shutdown: tries what is kept until the database takes it (the shutdown deadline
    /// bounds this; what it cuts off is lost, as a restart's recovery cannot rebuild it,
    /// so each try says what is still waiting).
    pub(crate) async fn finish(&mut self) {
        if self.retrying.is_some() {
            self.retried().await;
        }
        while !self.queue.is_empty() {
            self.retry();
            self.retried().await;
            if self.queue.is_empty() {
                break;
            }
            tracing::error!(
                batches = self.queue.len(),
                "shutting down with changes the database has not taken; still trying"
            );
            tokio::time::sleep(self.backoff).await;
        }
    }
}
