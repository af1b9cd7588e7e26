//! Checkpoints: copying the WAL back into the database file, and starting it over.
//!
//! A background thread copies the WAL with PASSIVE checkpoints, which never block
//! the writer or readers. But SQLite starts the WAL over only when a write
//! transaction begins with every frame already copied, and under steady writes the
//! background thread is never quite caught up at that moment: the WAL then grows
//! without end (hundreds of MB in a minute of intake), every commit appending to
//! fresh file space.
//!
//! So once the WAL is long and the background thread has nearly caught up, it asks
//! the writer thread to finish the copy itself between two transactions (a few
//! frames and two fsyncs). The writer's next transaction then finds the WAL fully
//! copied and SQLite writes it from the start again, into file space that is
//! already allocated and cached. (A RESTART checkpoint from the background thread
//! would do the same but holds the writer off for tens of milliseconds while it
//! waits, in busy-handler sleeps, for readers to leave the WAL.) If a reader still
//! holds frames of the old WAL at that moment, SQLite keeps appending and the
//! background thread asks again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ordo_store::{StoreError, StoreResult};
use rusqlite::Connection;

/// A WAL this many frames long (64 MiB with 4 KiB pages) is to be started over.
#[cfg(not(test))]
const RESTART_FRAMES: i64 = 16_384;
#[cfg(test)]
const RESTART_FRAMES: i64 = 32;
/// The writer is asked to finish the copy once no more than this many frames are left.
const LEFT_FOR_WRITER: i64 = 1_024;
const BACKGROUND_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// Set by the background thread, taken by the writer thread.
#[derive(Clone, Default)]
pub struct RestartWanted(Arc<AtomicBool>);

impl RestartWanted {
    /// Called by the writer thread between transactions: finishes the copy if the
    /// background thread asked for it.
    pub fn finish_copy(&self, conn: &Connection) {
        if self.0.swap(false, Ordering::AcqRel) {
            // Best effort: a failed checkpoint leaves the WAL as it was.
            let _ = checkpoint(conn);
        }
    }
}

/// Checkpoints every `BACKGROUND_PAUSE` until `stop` is set.
pub fn spawn_background(
    conn: Connection,
    wal_path: PathBuf,
    stop: Arc<AtomicBool>,
    restart: RestartWanted,
) -> StoreResult<()> {
    std::thread::Builder::new()
        .name("ordo-sqlite-checkpoint".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(BACKGROUND_PAUSE);
                if background_round(&conn, &wal_path, &restart).is_err() {
                    return;
                }
            }
        })
        .map(|_| ())
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// One round of the background thread: copies the WAL and, if it is long and
/// nearly all copied, asks the writer to finish.
fn background_round(conn: &Connection, wal_path: &Path, restart: &RestartWanted) -> rusqlite::Result<()> {
    let mut wal = checkpoint(conn)?;
    if wal.frames < RESTART_FRAMES {
        return Ok(());
    }
    // Catch up first, so the writer's share stays small.
    for _ in 0..8 {
        if wal.frames - wal.copied <= LEFT_FOR_WRITER {
            flush_file_system(wal_path);
            restart.0.store(true, Ordering::Release);
            return Ok(());
        }
        wal = checkpoint(conn)?;
    }
    Ok(())
}

/// Writes the database file's dirty pages to disk ahead of the writer's checkpoint,
/// which must fsync the file and would otherwise flush everything the background
/// copies left in the page cache (SQLite syncs the database only when a checkpoint
/// reaches the end of the WAL, which under load only the writer's does). `syncfs`
/// through the WAL's handle, not `fsync` through one of the database file: closing
/// any handle of the database file would drop the POSIX locks SQLite holds on it
/// for this process. Best effort.
fn flush_file_system(wal_path: &Path) {
    if let Ok(wal) = std::fs::File::open(wal_path) {
        let _ = rustix::fs::syncfs(&wal);
    }
}

/// Frames in the WAL, and how many of them are copied into the database file.
struct WalState {
    frames: i64,
    copied: i64,
}

fn checkpoint(conn: &Connection) -> rusqlite::Result<WalState> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(WalState {
            frames: r.get(1)?,
            copied: r.get(2)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicI64;

    /// A WAL-mode database written by `writer` (whose commits report the WAL's
    /// length into the returned counter) and checkpointed by `background`.
    fn fresh(name: &str) -> (Connection, Connection, Arc<AtomicI64>, PathBuf) {
        let path = std::env::temp_dir().join(format!("ordo-checkpoint-{name}-{}.db", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let mut writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = NORMAL;
                 CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL);",
            )
            .unwrap();
        let frames = Arc::new(AtomicI64::new(0));
        let reported = frames.clone();
        writer
            .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: std::ffi::c_int| {
                reported.store(i64::from(pages), Ordering::Relaxed);
                Ok(())
            }))
            .unwrap();
        let background = Connection::open(&path).unwrap();
        (
            writer,
            background,
            frames,
            PathBuf::from(format!("{}-wal", path.display())),
        )
    }

    fn commit(writer: &Connection) {
        writer
            .execute("INSERT INTO t (v) VALUES (zeroblob(12000))", [])
            .unwrap();
    }

    /// The writer commits while the background thread copies, as it does under
    /// load; the WAL is started over only if the writer finishes the copy when asked.
    fn wal_after_a_busy_writer(writer_finishes_copy: bool) -> (i64, i64) {
        let (writer, background, frames, wal) = fresh(if writer_finishes_copy { "finish" } else { "leave" });
        let restart = RestartWanted::default();
        while frames.load(Ordering::Relaxed) < RESTART_FRAMES {
            commit(&writer);
        }
        // The copy runs while the writer is inside a transaction, so what it
        // commits next is not copied.
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        commit(&writer);
        background_round(&background, &wal, &restart).unwrap();
        assert!(restart.0.load(Ordering::Acquire), "a long, copied WAL asks the writer");
        writer.execute_batch("COMMIT").unwrap();
        let before = frames.load(Ordering::Relaxed);
        if writer_finishes_copy {
            restart.finish_copy(&writer);
        }
        commit(&writer);
        (before, frames.load(Ordering::Relaxed))
    }

    #[test]
    fn a_long_wal_starts_over_once_the_writer_finishes_the_copy() {
        let (before, after) = wal_after_a_busy_writer(true);
        assert!(after < before, "the WAL started over: {before} frames, then {after}");
        let (before, after) = wal_after_a_busy_writer(false);
        assert!(
            after > before,
            "without the writer's copy it keeps growing: {before}, then {after}"
        );
    }

    #[test]
    fn a_short_wal_is_left_alone() {
        let (writer, background, frames, wal) = fresh("short");
        let restart = RestartWanted::default();
        commit(&writer);
        assert!(frames.load(Ordering::Relaxed) < RESTART_FRAMES);
        background_round(&background, &wal, &restart).unwrap();
        assert!(!restart.0.load(Ordering::Acquire));
    }
}
