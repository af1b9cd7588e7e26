//! Two threads per batch, so the core decides batch k+1 while SQLite writes batch k.
//!
//! Every write goes to the **decider** thread first, in submission order. A plain
//! write is passed straight on to the writer thread. A batch is loaded from the
//! decider's own read snapshot plus the changes of the one batch the writer may
//! still be writing (`overlay`), decided by the core, its documents encoded, and
//! then passed on. The writer thread only writes and commits.
//!
//! Why the order of writes is kept: the decider starts a batch only when the writer
//! has finished everything passed on before it except the batch immediately before
//! it — whose changes it overlays — so each batch is decided on exactly the state
//! all earlier writes leave behind.
//!
//! Why a decision is never written over a state it did not see: every batch, and
//! every other write to a table batches read, moves the `batch_epoch` row forward as
//! it commits (`epoch`). The writer checks, inside its write transaction, that since
//! the decider's snapshot nothing committed but the batch overlaid; otherwise (that
//! batch failed, or another process sharing the file wrote) it refuses with
//! `StoreError::Retry` and the engine runs the batch again. Once another process's
//! write has been seen there, batches are decided on the writer thread inside its
//! write transaction for a second (`WriterMemory::serial`), as they were before
//! this pipeline, so two busy processes cannot keep refusing each other.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use ordo_core::batch::{Changes, LoadRequest};
use ordo_store::{Committed, Decide, StoreError, StoreResult};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{Notify, oneshot};

use crate::batch::{self, Documents};
use crate::codec::err;
use crate::epoch::{Epoch, NOT_A_BATCH};
use crate::overlay::Overlay;
use crate::{Answer, Job};

/// How long batches are decided on the writer thread after another process's write.
const SERIAL_FOR: Duration = Duration::from_secs(1);

pub(crate) enum Work {
    /// Any write but a batch: done by the writer thread in its turn.
    Write(Job),
    Batch {
        request: Box<LoadRequest>,
        decide: Decide,
        reply: oneshot::Sender<StoreResult<Committed>>,
    },
}

/// How many jobs the writer thread has finished, and whether it has stopped; the
/// decider waits on it.
#[derive(Default)]
pub(crate) struct Progress {
    state: Mutex<(u64, bool)>,
    moved: Condvar,
}

impl Progress {
    pub fn finished_one(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.0 += 1;
            self.moved.notify_all();
        }
    }

    /// Called as the writer thread ends, however it ends.
    pub fn writer_stopped(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.1 = true;
            self.moved.notify_all();
        }
    }

    /// Waits until `n` jobs are finished; returns how many are, or `None` if the
    /// writer thread has stopped.
    fn wait_for(&self, n: u64) -> Option<u64> {
        let mut state = self.state.lock().ok()?;
        while state.0 < n && !state.1 {
            state = self.moved.wait(state).ok()?;
        }
        (!state.1).then_some(state.0)
    }
}

/// Tells [`Progress`] the writer thread stopped when dropped, also by a panic.
pub(crate) struct StopsProgress(pub Arc<Progress>);

impl Drop for StopsProgress {
    fn drop(&mut self) {
        self.0.writer_stopped();
    }
}

/// Shared by the two threads: this writer's id in the epoch, its last failed
/// batch, and until when batches are decided on the writer thread.
pub(crate) struct WriterMemory {
    id: i64,
    started: Instant,
    /// The last batch that did not commit (0: none).
    failed: AtomicU64,
    /// Milliseconds after `started` until which batches run serially.
    serial_until: AtomicI64,
}

impl WriterMemory {
    pub fn new() -> WriterMemory {
        // Random per open store, so two processes on one file tell their batches
        // apart; never NOT_A_BATCH.
        let id = std::collections::hash_map::RandomState::new().build_hasher().finish() as i64;
        WriterMemory {
            id: if id == NOT_A_BATCH { 1 } else { id },
            started: Instant::now(),
            failed: AtomicU64::new(0),
            serial_until: AtomicI64::new(0),
        }
    }

    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    fn serial(&self) -> bool {
        self.now_ms() < self.serial_until.load(Ordering::Relaxed)
    }

    fn go_serial(&self) {
        self.serial_until
            .store(self.now_ms() + SERIAL_FOR.as_millis() as i64, Ordering::Relaxed);
    }
}

/// Counts the writes handed to the store and not yet taken on; the store's
/// `wait_until_idle` waits for none. A batch is taken on once the decider has
/// passed it on, any other write once the writer thread has done it.
#[derive(Clone, Default)]
pub(crate) struct Idle {
    busy: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl Idle {
    pub fn one_more(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
    }

    pub fn one_done(&self) {
        if self.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    pub async fn wait(&self) {
        let notified = self.idle.notified();
        tokio::pin!(notified);
        // Registered before the check, so a write finishing in between still wakes us.
        notified.as_mut().enable();
        if self.busy.load(Ordering::Acquire) == 0 {
            return;
        }
        notified.await;
    }
}

pub(crate) struct Decider {
    pub reader: Connection,
    pub to_writer: mpsc::SyncSender<Job>,
    pub progress: Arc<Progress>,
    pub memory: Arc<WriterMemory>,
    pub idle: Idle,
}

/// The batch passed on last, while the writer may still be writing it.
struct InFlight {
    seq: u64,
    after: Option<u64>,
    changes: Arc<Changes>,
}

impl InFlight {
    /// Whether it failed, or the batch it was decided after did, so the writer
    /// refuses it (or did).
    fn doomed(&self, memory: &WriterMemory) -> bool {
        let failed = memory.failed.load(Ordering::Relaxed);
        failed == self.seq || self.after == Some(failed)
    }
}

impl Decider {
    pub fn run(mut self, work: mpsc::Receiver<Work>) {
        let mut passed_on: u64 = 0;
        let mut seq: u64 = 0;
        let mut last: Option<InFlight> = None;
        while let Ok(work) = work.recv() {
            let job = match work {
                Work::Write(job) => {
                    last = None;
                    job
                }
                Work::Batch { request, decide, reply } => {
                    seq += 1;
                    let job = self.batch_job(seq, &mut last, passed_on, *request, decide, reply);
                    self.idle.one_done();
                    match job {
                        Some(job) => job,
                        None => continue,
                    }
                }
            };
            if self.to_writer.send(job).is_err() {
                return;
            }
            passed_on += 1;
        }
    }

    /// The writer's job for batch `seq`, decided here unless batches run serially;
    /// `None` if it could not be decided (its caller has been answered).
    fn batch_job(
        &mut self,
        seq: u64,
        last: &mut Option<InFlight>,
        passed_on: u64,
        request: LoadRequest,
        decide: Decide,
        reply: oneshot::Sender<StoreResult<Committed>>,
    ) -> Option<Job> {
        let memory = self.memory.clone();
        if memory.serial() {
            *last = None;
            let writer = memory.id;
            return Some(batch_job(seq, memory, reply, move |conn| {
                let tx = begin_write(conn)?;
                let mut ws = batch::load(&tx, &request, None)?;
                let decided = decide(&mut ws);
                let docs = Documents::of(&decided.changes)?;
                let last_event = write_and_commit(tx, &decided.changes, docs, writer, seq)?;
                Ok(Committed {
                    outcomes: decided.outcomes,
                    last_event,
                })
            }));
        }
        let mut done = self.progress.wait_for(passed_on - u64::from(last.is_some()));
        if last.as_ref().is_some_and(|l| l.doomed(&memory)) {
            // It will be refused: deciding on top of it would be too.
            done = self.progress.wait_for(passed_on);
        }
        let Some(done) = done else {
            let _ = reply.send(Err(StoreError::Unavailable("writer thread stopped".into())));
            return None;
        };
        if done == passed_on {
            // The last batch is finished: the snapshot has it if it committed, and
            // nothing of it is pending if it did not.
            *last = None;
        }
        let overlay = last.as_ref().map(|l| &*l.changes);
        let (seen, decided, docs) = match self.decide(&request, decide, overlay) {
            Ok(decided) => decided,
            Err(e) => {
                let _ = reply.send(Err(e));
                return None;
            }
        };
        let changes = Arc::new(decided.changes);
        let after = last.as_ref().map(|l| l.seq);
        *last = Some(InFlight {
            seq,
            after,
            changes: changes.clone(),
        });
        let outcomes = decided.outcomes;
        Some(batch_job(seq, memory.clone(), reply, move |conn| {
            let tx = begin_write(conn)?;
            let now = Epoch::read(&tx)?;
            if !still_valid(seen, after, now, memory.id) {
                // Plain writes of this process cannot fall between a snapshot and
                // its batch (they wait for the batches before them and stop the
                // overlay), so a commit since by another writer id is another process's.
                if now.n != seen.n && now.writer != memory.id {
                    memory.go_serial();
                }
                return Err(StoreError::Retry(
                    "the state the batch was decided on changed before it was written".into(),
                ));
            }
            let last_event = write_and_commit(tx, &changes, docs, memory.id, seq)?;
            Ok(Committed { outcomes, last_event })
        }))
    }

    /// Loads the working set from a snapshot (with `overlay` on top), decides, and
    /// encodes the documents; returns the epoch the snapshot saw too.
    fn decide(
        &mut self,
        request: &LoadRequest,
        decide: Decide,
        overlay: Option<&Changes>,
    ) -> StoreResult<(Epoch, ordo_store::Decided, Documents)> {
        // Deferred: the snapshot is taken at the first read and let go after the load.
        let snapshot = self.reader.transaction().map_err(err)?;
        let seen = Epoch::read(&snapshot)?;
        let overlay = overlay.map(Overlay::of);
        let mut ws = batch::load(&snapshot, request, overlay.as_ref())?;
        drop(overlay);
        snapshot.finish().map_err(err)?;
        let decided = decide(&mut ws);
        let docs = Documents::of(&decided.changes)?;
        Ok((seen, decided, docs))
    }
}

/// Whether `now` is the state a batch was decided on: what its snapshot saw
/// (`seen`), plus the commit of the batch it was decided after (`after`) if the
/// snapshot did not hold that yet.
fn still_valid(seen: Epoch, after: Option<u64>, now: Epoch, writer: i64) -> bool {
    let is_after = |e: Epoch| after.is_some_and(|a| e.writer == writer && e.batch == a as i64);
    match after {
        None => now.n == seen.n,
        Some(_) => (now.n == seen.n && is_after(seen)) || (now.n == seen.n + 1 && is_after(now)),
    }
}

fn begin_write(conn: &mut Connection) -> StoreResult<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)
}

/// Writes a batch's changes, moves the epoch and commits.
fn write_and_commit(
    tx: Transaction<'_>,
    changes: &Changes,
    docs: Documents,
    writer: i64,
    seq: u64,
) -> StoreResult<Option<i64>> {
    let last_event = batch::persist(&tx, changes, docs)?;
    Epoch::advance(&tx, writer, seq)?;
    tx.commit().map_err(err)?;
    Ok(last_event)
}

/// The writer thread's job for batch `seq`: runs `write`, remembers a failure,
/// and answers once the commit is durable.
fn batch_job(
    seq: u64,
    memory: Arc<WriterMemory>,
    reply: oneshot::Sender<StoreResult<Committed>>,
    write: impl FnOnce(&mut Connection) -> StoreResult<Committed> + Send + 'static,
) -> Job {
    Box::new(move |conn: &mut Connection| -> Answer {
        let result = write(conn);
        if result.is_err() {
            memory.failed.store(seq, Ordering::Relaxed);
        }
        crate::reply_when_durable(reply, result)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: i64 = 77;
    const OTHER: i64 = 99;

    fn epoch(n: i64, writer: i64, batch: i64) -> Epoch {
        Epoch { n, writer, batch }
    }

    #[test]
    fn a_batch_decided_on_its_own_is_written_only_if_nothing_committed_since() {
        let seen = epoch(10, OTHER, 3);
        assert!(still_valid(seen, None, seen, ME));
        assert!(!still_valid(seen, None, epoch(11, ME, 5), ME), "even our own batch");
        assert!(
            !still_valid(seen, None, epoch(11, NOT_A_BATCH, 0), ME),
            "a catalogue write"
        );
    }

    #[test]
    fn a_batch_decided_on_top_of_another_needs_exactly_that_one_committed() {
        // The snapshot did not hold batch 5 yet: it must be the one commit since.
        let seen = epoch(10, OTHER, 3);
        assert!(still_valid(seen, Some(5), epoch(11, ME, 5), ME));
        assert!(!still_valid(seen, Some(5), seen, ME), "batch 5 failed");
        assert!(
            !still_valid(seen, Some(5), epoch(11, OTHER, 5), ME),
            "another process's batch 5"
        );
        assert!(
            !still_valid(seen, Some(5), epoch(12, ME, 5), ME),
            "something else committed too"
        );
        // The snapshot held batch 5 already: nothing may have committed since.
        let seen = epoch(11, ME, 5);
        assert!(still_valid(seen, Some(5), seen, ME));
        assert!(!still_valid(seen, Some(5), epoch(12, NOT_A_BATCH, 0), ME));
    }
}
