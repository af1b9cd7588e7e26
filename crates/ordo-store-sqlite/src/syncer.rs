//! Group fsync. The writer commits with `synchronous = NORMAL` (no fsync of its
//! own) and hands each answer here; this thread fsyncs the WAL once for every
//! answer that has queued up meanwhile and only then answers. The writer goes on to
//! the next transaction while the disk flushes the last one, and one fsync covers
//! many transactions.
//!
//! Why it is safe: WAL frames are appended in commit order and each frame's
//! checksum chains to the one before, so after a power loss recovery keeps a prefix
//! of the commits; every commit answered was inside a completed fsync, so it is in
//! that prefix. Readers may see a commit a moment before it is durable: the event
//! log is read only up to the last durable event, so nothing is published that a
//! power loss could take back.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;

use ordo_store::{StoreError, StoreResult};

use crate::Answer;

/// An answer to give once the WAL is on disk, and the last event written before it.
pub type Pending = (Answer, i64);

pub fn spawn(wal: PathBuf, durable_seq: Arc<AtomicI64>) -> StoreResult<mpsc::Sender<Pending>> {
    let (tx, rx) = mpsc::channel::<Pending>();
    std::thread::Builder::new()
        .name("ordo-sqlite-sync".into())
        .spawn(move || {
            let mut group: Vec<Pending> = Vec::new();
            while let Ok(first) = rx.recv() {
                group.push(first);
                group.extend(rx.try_iter());
                let synced = sync(&wal);
                if synced.is_ok()
                    && let Some(seq) = group.iter().map(|(_, seq)| *seq).max()
                {
                    durable_seq.fetch_max(seq, Ordering::AcqRel);
                }
                for (answer, _) in group.drain(..) {
                    answer(synced.as_ref().err().map(|e| StoreError::Unavailable(e.clone())));
                }
            }
        })
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok(tx)
}

/// Flushes the WAL file. Opened each time (one cheap syscall per group) so a WAL
/// that SQLite truncated or recreated is never missed through a stale handle.
fn sync(wal: &PathBuf) -> Result<(), String> {
    match std::fs::File::open(wal) {
        Ok(file) => file
            .sync_data()
            .map_err(|e| format!("the commit may not be on disk: fsync of the WAL failed: {e}")),
        // No WAL yet: nothing was written through it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("the commit may not be on disk: cannot open the WAL: {e}")),
    }
}
