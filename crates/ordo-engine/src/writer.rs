//! The group-commit writer. Commands queue up while a transaction is in flight;
//! the next transaction takes all of them (up to `batch_max`), the core decides each
//! one against the rows loaded once for the batch — so a hot SKU is read and written
//! once per batch however many orders it carries — and every caller is answered
//! only after the commit is durable.

use std::sync::Arc;

use ordo_core::batch::{self, Command, Context, LoadRequest, Outcome};
use ordo_store::{Committed, Decided, DynStore, StoreError};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::clock::Clock;
use crate::error::{EngineError, EngineResult};
use crate::ids::UuidV7;
use crate::metrics::Metrics;

pub(crate) struct Submission {
    pub command: Command,
    pub reply: oneshot::Sender<EngineResult<Outcome>>,
}

/// Transient failures are retried this many times before the batch is split.
const RETRIES_MAX: usize = 5;

pub(crate) struct Writer {
    pub store: DynStore,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub new_events: Arc<Notify>,
    pub batch_max: usize,
    pub crash_after_commits: Option<u64>,
}

impl Writer {
    /// Takes batches off the shared queue and commits them, until the queue closes.
    /// Several writers may share one queue: each takes the next batch while the
    /// others are committing theirs (the store orders them: row locks on
    /// PostgreSQL, the order batches reach the decider thread on SQLite).
    pub async fn run(self: Arc<Self>, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Submission>>>) {
        loop {
            let mut batch: Vec<Submission> = Vec::with_capacity(self.batch_max);
            let mut queue = rx.lock().await;
            // Holding the queue, so no other writer collects a batch meanwhile: the
            // batch is taken only when the store can start it, and so takes all
            // that arrived while the last one ran. A full batch already queued has
            // nothing to gather: it is taken at once, so the store finds it waiting
            // when it is done with the last one (a bulk import's case).
            if queue.len() < self.batch_max {
                self.store.wait_until_idle().await;
            }
            let taken = queue.recv_many(&mut batch, self.batch_max).await;
            drop(queue);
            if taken == 0 {
                return;
            }
            self.commit(batch).await;
        }
    }

    async fn commit(&self, batch: Vec<Submission>) {
        let (commands, replies): (Vec<Command>, Vec<_>) = batch.into_iter().map(|s| (s.command, s.reply)).unzip();
        let commands = Arc::new(commands);
        let started = std::time::Instant::now();
        match self.run_with_retries(&commands).await {
            Ok(committed) => {
                tracing::debug!(
                    batch.commands = commands.len(),
                    batch.latency_us = started.elapsed().as_micros() as u64,
                    "batch committed"
                );
                self.answer(committed, replies)
            }
            // Lost contact with the database: the commit may or may not have happened,
            // so nothing is re-run (callers retry with their Idempotency-Key).
            Err(e @ StoreError::Unavailable(_)) => self.fail(replies, e),
            // The database refused the transaction, so nothing of it was applied. One
            // command can cause that (e.g. a row another process inserted meanwhile);
            // isolate it by committing each command on its own.
            Err(_) if commands.len() > 1 => {
                for (command, reply) in Arc::unwrap_or_clone(commands).into_iter().zip(replies) {
                    let single = Arc::new(vec![command]);
                    match self.run_with_retries(&single).await {
                        Ok(committed) => self.answer(committed, vec![reply]),
                        Err(e) => self.fail(vec![reply], e),
                    }
                }
            }
            Err(e) => self.fail(replies, e),
        }
    }

    async fn run_with_retries(&self, commands: &Arc<Vec<Command>>) -> Result<Committed, StoreError> {
        let mut attempt = 0;
        loop {
            let now = self.clock.now();
            let request = LoadRequest::for_batch(commands.iter());
            let cmds = commands.clone();
            let decide = Box::new(move |ws: &mut ordo_core::WorkingSet| {
                let mut ids = UuidV7;
                let mut ctx = Context { now, ids: &mut ids };
                let outcomes = batch::apply_all(ws, &cmds, &mut ctx);
                Decided {
                    changes: std::mem::take(ws).into_changes(),
                    outcomes,
                }
            });
            match self.store.run_batch(request, decide).await {
                Err(StoreError::Retry(_) | StoreError::Conflict(_)) if attempt < RETRIES_MAX => {
                    attempt += 1;
                    Metrics::add(&self.metrics.batch_retries, 1);
                    tokio::time::sleep(std::time::Duration::from_millis(2 * attempt as u64)).await;
                }
                other => return other,
            }
        }
    }

    fn answer(&self, committed: Committed, replies: Vec<oneshot::Sender<EngineResult<Outcome>>>) {
        Metrics::add(&self.metrics.batches_committed, 1);
        Metrics::add(&self.metrics.batch_commands, replies.len() as u64);
        if let Some(n) = self.crash_after_commits
            && self
                .metrics
                .batches_committed
                .load(std::sync::atomic::Ordering::Relaxed)
                >= n
        {
            eprintln!("ordo: failpoint crash_after_commits={n} reached; aborting before replying");
            std::process::abort();
        }
        if committed.last_event.is_some() {
            self.new_events.notify_waiters();
        }
        for (outcome, reply) in committed.outcomes.into_iter().zip(replies) {
            let result = match outcome {
                Ok(o) => {
                    Metrics::add(&self.metrics.commands_ok, 1);
                    Ok(o)
                }
                Err(e) => {
                    Metrics::add(&self.metrics.commands_rejected, 1);
                    Err(EngineError::Rule(e))
                }
            };
            let _ = reply.send(result);
        }
    }

    fn fail(&self, replies: Vec<oneshot::Sender<EngineResult<Outcome>>>, e: StoreError) {
        Metrics::add(&self.metrics.batch_failures, 1);
        tracing::error!(error = %e, commands = replies.len(), "batch failed");
        let message = e.to_string();
        for reply in replies {
            let err = match &e {
                StoreError::Conflict(_) => EngineError::Conflict(message.clone()),
                StoreError::Unavailable(_) => EngineError::Store(StoreError::Unavailable(message.clone())),
                _ => EngineError::Store(StoreError::Backend(message.clone())),
            };
            let _ = reply.send(Err(err));
        }
    }
}
