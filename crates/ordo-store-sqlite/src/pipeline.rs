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
//! Why a decision is never written over a state it did not see: every batch moves
//! the `batch_epoch` row forward as it commits. The writer checks, inside its write
//! transaction, that since the decider's snapshot nothing committed but the batch
//! overlaid; otherwise (that batch failed, or another process sharing the file
//! committed a batch) it refuses with `StoreError::Retry` and the engine runs the
//! batch again. After another process's batch has been seen, batches are decided
//! on the writer thread inside its transaction for a while (`Serial`), as they
//! were before this pipeline, so two busy processes cannot keep refusing each other.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use ordo_core::batch::{Changes, LoadRequest};
use ordo_store::{BatchOutcomes, Committed, Decide, Decided, StoreError, StoreResult};
use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::{Notify, oneshot};

use crate::batch::{self, Documents};
use crate::codec::err;
use crate::overlay::Overlay;
use crate::{Answer, Job};

/// How long batches are decided on the writer thread after another process's batch.
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

/// How many jobs the writer thread has finished; the decider waits on it.
#[derive(Default)]
pub(crate) struct Progress {
    done: Mutex<u64>,
    moved: Condvar,
}

impl Progress {
    pub fn finished_one(&self) {
        if let Ok(mut done) = self.done.lock() {
            *done += 1;
            self.moved.notify_all();
        }
    }

    /// Waits until `n` jobs are finished; returns how many are.
    fn wait_for(&self, n: u64) -> u64 {
        let Ok(mut done) = self.done.lock() else { return n };
        while *done < n {
            done = match self.moved.wait(done) {
                Ok(d) => d,
                Err(_) => return n,
            };
        }
        *done
    }
}

/// The `batch_epoch` row: batches committed, and the last one's writer and number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Epoch {
    n: i64,
    writer: i64,
    batch: i64,
}

impl Epoch {
    fn read(conn: &Connection) -> StoreResult<Epoch> {
        conn.prepare_cached("SELECT n, writer, batch FROM batch_epoch WHERE id = 1")
            .map_err(err)?
            .query_row([], |r| {
                Ok(Epoch {
                    n: r.get(0)?,
                    writer: r.get(1)?,
                    batch: r.get(2)?,
                })
            })
            .map_err(err)
    }

    fn advance(conn: &Connection, writer: i64, batch: u64) -> StoreResult<()> {
        conn.prepare_cached("UPDATE batch_epoch SET n = n + 1, writer = ?1, batch = ?2 WHERE id = 1")
            .map_err(err)?
            .execute(params![writer, batch as i64])
            .map_err(err)?;
        Ok(())
    }
}

/// Shared by the two threads: who this writer is, its last failed batch, and
/// until when batches are decided on the writer thread.
pub(crate) struct WriterMemory {
    writer: i64,
    started: Instant,
    /// The last batch that did not commit (0: none).
    failed: AtomicU64,
    /// Milliseconds after `started` until which batches run serially.
    serial_until: AtomicI64,
}

impl WriterMemory {
    pub fn new() -> WriterMemory {
        // Random per open store, so two processes on one file tell their batches apart.
        let writer = std::collections::hash_map::RandomState::new().build_hasher().finish() as i64;
        WriterMemory {
            writer,
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
}

/// Tells the store's `wait_until_idle` when the decider can take the next batch.
pub(crate) struct Idle {
    pub busy: Arc<AtomicUsize>,
    pub idle: Arc<Notify>,
}

impl Idle {
    pub fn one_done(&self) {
        if self.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

pub(crate) struct Decider {
    pub reader: Connection,
    pub writer: mpsc::SyncSender<Job>,
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
    /// Whether the batch it was decided after has failed, so the writer will refuse it.
    fn doomed(&self, memory: &WriterMemory) -> bool {
        self.after
            .is_some_and(|after| memory.failed.load(Ordering::Relaxed) == after)
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
                    let job = if self.memory.serial() {
                        last = None;
                        serial_job(seq, *request, decide, reply, self.memory.clone())
                    } else {
                        let mut done = self.progress.wait_for(passed_on - u64::from(last.is_some()));
                        if last.as_ref().is_some_and(|l| l.doomed(&self.memory)) {
                            // It will be refused: deciding on top of it would be too.
                            done = self.progress.wait_for(passed_on);
                        }
                        if done == passed_on {
                            // The last batch is finished: the snapshot has it if it
                            // committed, and nothing of it is pending if it did not.
                            last = None;
                        }
                        let overlay = last.as_ref().map(|l| &*l.changes);
                        match decide_batch(&mut self.reader, &request, decide, overlay) {
                            Ok((snapshot, decided, docs)) => {
                                let changes = Arc::new(decided.changes);
                                let after = last.as_ref().map(|l| l.seq);
                                let batch = Batch {
                                    seq,
                                    snapshot,
                                    after,
                                    changes: changes.clone(),
                                    docs,
                                };
                                last = Some(InFlight { seq, after, changes });
                                persist_job(batch, decided.outcomes, reply, self.memory.clone())
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                                self.idle.one_done();
                                continue;
                            }
                        }
                    };
                    self.idle.one_done();
                    job
                }
            };
            if self.writer.send(job).is_err() {
                return;
            }
            passed_on += 1;
        }
    }
}

/// Loads the working set from a snapshot (with `overlay` on top) and decides.
fn decide_batch(
    reader: &mut Connection,
    request: &LoadRequest,
    decide: Decide,
    overlay: Option<&Changes>,
) -> StoreResult<(Epoch, Decided, Documents)> {
    // Deferred: the snapshot is taken at the first read and let go after the load.
    let snapshot = reader.transaction().map_err(err)?;
    let epoch = Epoch::read(&snapshot)?;
    let overlay = overlay.map(Overlay::of);
    let mut ws = batch::load(&snapshot, request, overlay.as_ref())?;
    drop(overlay);
    snapshot.finish().map_err(err)?;
    let decided = decide(&mut ws);
    let docs = Documents::of(&decided.changes)?;
    Ok((epoch, decided, docs))
}

struct Batch {
    seq: u64,
    /// The epoch the decider's snapshot saw.
    snapshot: Epoch,
    /// The batch whose changes this one was decided on top of, if any.
    after: Option<u64>,
    changes: Arc<Changes>,
    docs: Documents,
}

impl Batch {
    /// Whether `now` is the state the batch was decided on: the snapshot's, plus
    /// the overlaid batch's commit if the snapshot did not hold it yet.
    fn still_valid(&self, now: Epoch, writer: i64) -> bool {
        let is_after = |e: Epoch| self.after.is_some_and(|a| e.writer == writer && e.batch == a as i64);
        match self.after {
            None => now.n == self.snapshot.n,
            Some(_) => {
                (now.n == self.snapshot.n && is_after(self.snapshot)) || (now.n == self.snapshot.n + 1 && is_after(now))
            }
        }
    }
}

fn persist_job(
    batch: Batch,
    outcomes: BatchOutcomes,
    reply: oneshot::Sender<StoreResult<Committed>>,
    memory: Arc<WriterMemory>,
) -> Job {
    Box::new(move |conn: &mut Connection| -> Answer {
        let seq = batch.seq;
        let result = persist(conn, batch, &memory).map(|last_event| Committed { outcomes, last_event });
        if result.is_err() {
            memory.failed.store(seq, Ordering::Relaxed);
        }
        crate::reply_when_durable(reply, result)
    })
}

fn persist(conn: &mut Connection, batch: Batch, memory: &WriterMemory) -> StoreResult<Option<i64>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let now = Epoch::read(&tx)?;
    if !batch.still_valid(now, memory.writer) {
        if now.writer != memory.writer {
            memory
                .serial_until
                .store(memory.now_ms() + SERIAL_FOR.as_millis() as i64, Ordering::Relaxed);
        }
        return Err(StoreError::Retry(
            "the state the batch was decided on changed before it was written".into(),
        ));
    }
    let last_event = batch::persist(&tx, &batch.changes, batch.docs)?;
    Epoch::advance(&tx, memory.writer, batch.seq)?;
    tx.commit().map_err(err)?;
    Ok(last_event)
}

/// A batch loaded, decided and written in one write transaction on the writer thread.
fn serial_job(
    seq: u64,
    request: LoadRequest,
    decide: Decide,
    reply: oneshot::Sender<StoreResult<Committed>>,
    memory: Arc<WriterMemory>,
) -> Job {
    Box::new(move |conn: &mut Connection| -> Answer {
        let result = (|| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            let mut ws = batch::load(&tx, &request, None)?;
            let decided = decide(&mut ws);
            let docs = Documents::of(&decided.changes)?;
            let last_event = batch::persist(&tx, &decided.changes, docs)?;
            Epoch::advance(&tx, memory.writer, seq)?;
            tx.commit().map_err(err)?;
            Ok(Committed {
                outcomes: decided.outcomes,
                last_event,
            })
        })();
        if result.is_err() {
            memory.failed.store(seq, Ordering::Relaxed);
        }
        crate::reply_when_durable(reply, result)
    })
}
