//! Checkpoints: copying the WAL back into the database file, and starting it over.
//!
//! A background thread copies the WAL with PASSIVE checkpoints, which never block
//! the writer or readers. SQLite starts the WAL over (writes it again from the
//! first frame) only when a write transaction begins with every frame already
//! copied and, at its first frame, no reader still on the old frames; or on a
//! RESTART or TRUNCATE checkpoint. Under steady writes the background thread is
//! never quite caught up at that moment, so the WAL grew without end (~17 KB per
//! intake order: 339 MB after 20,000), every commit appending to fresh file space.
//!
//! So once the WAL is long and a background copy reached its end (no reader holds
//! the copy back), the background thread flushes what it copied, copies what came
//! in meanwhile, and asks the writer thread to finish the copy itself between two
//! transactions: a few frames, an fsync of the WAL and one of the database file.
//! The writer's next commit then writes the WAL from the start again (one more
//! fsync, of the new WAL header), into file space already allocated. A RESTART
//! checkpoint from the background thread would do the same but holds the writer
//! off for tens of milliseconds while it waits, in busy-handler sleeps, for readers
//! to leave the WAL. If a reader is still on the old frames when the writer
//! commits, SQLite keeps appending and the background thread asks again later.
//!
//! The file keeps its largest size (SQLite does not shrink it here); what stops is
//! the growth.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ordo_store::{StoreError, StoreResult};
use rusqlite::Connection;

/// A WAL this long (in frames' pages) is to be started over. Shorter cycles flush
/// less each: at 64 MiB the intake bench's p99 was ~42 ms, at 32 MiB ~30 ms (as
/// without restarts), at the same throughput.
#[cfg(not(test))]
const RESTART_BYTES: i64 = 32 << 20;
#[cfg(test)]
const RESTART_BYTES: i64 = 32 * 4096;
const BACKGROUND_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// Set by the background thread, taken by the writer thread; and the WAL length,
/// in frames, from which the WAL is to be started over.
#[derive(Clone)]
pub struct RestartWanted {
    wanted: Arc<AtomicBool>,
    frames: i64,
}

impl RestartWanted {
    /// For a database file of `page_size` bytes a page (8 KiB for a new file, 4 KiB
    /// for one created before; the file keeps its own).
    pub fn new(page_size: i64) -> RestartWanted {
        RestartWanted {
            wanted: Arc::default(),
            frames: (RESTART_BYTES / page_size.max(512)).max(1),
        }
    }

    /// Called by the writer thread between transactions, with the WAL's length
    /// after its last commit: finishes the copy if the background thread asked for
    /// it and the WAL has not started over meanwhile.
    pub fn finish_copy(&self, conn: &Connection, wal_frames: u64) {
        if self.wanted.swap(false, Ordering::AcqRel) && wal_frames >= self.frames.unsigned_abs() {
            // Best effort: if it fails (or another process's checkpoint is running),
            // the WAL goes on as it was and the background thread asks again.
            let _ = checkpoint(conn);
        }
    }
}

/// Checkpoints every `BACKGROUND_PAUSE` until `stop` is set. A failed round (an I/O
/// error) is tried again at the next one: the WAL would grow meanwhile, but
/// nothing is lost.
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
                let _ = background_round(&conn, &wal_path, &restart);
            }
        })
        .map(|_| ())
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// One round of the background thread: copies the WAL and, if it is long and the
/// copy reached its end, gets the copy close to the end again after a flush and
/// asks the writer to finish it.
fn background_round(conn: &Connection, wal_path: &Path, restart: &RestartWanted) -> rusqlite::Result<()> {
    let wal = checkpoint(conn)?;
    // `frames` is -1 when another connection's checkpoint was running. A copy that
    // stopped short of the end is held back by a reader: asking the writer would
    // cost it a flush for nothing.
    if wal.frames < restart.frames || wal.copied < wal.frames {
        return Ok(());
    }
    // The flush takes tens of milliseconds under load; one more copy after it
    // takes in what was written meanwhile, so the writer's share (a copy and an
    // fsync of the database file) stays small.
    flush_file_system(wal_path);
    checkpoint(conn)?;
    restart.wanted.store(true, Ordering::Release);
    Ok(())
}

/// Writes the database file's dirty pages to disk ahead of the writer's checkpoint,
/// which must fsync the file and would otherwise flush everything the background
/// copies left in the page cache (SQLite syncs the database file only when a
/// checkpoint reaches the end of the WAL, which under load only the writer's does).
/// `syncfs` (the whole file system) through a handle of the WAL, not `fsync`
/// through one of the database file: closing any handle of the database file
/// would drop the POSIX locks SQLite holds on it for this process. Best effort,
/// and Linux only: elsewhere the writer's checkpoint flushes it all.
fn flush_file_system(wal_path: &Path) {
    #[cfg(target_os = "linux")]
    if let Ok(wal) = std::fs::File::open(wal_path) {
        let _ = rustix::fs::syncfs(&wal);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = wal_path;
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
    use crate::scratch::Scratch;
    use std::sync::atomic::AtomicI64;

    /// A WAL-mode database written by `writer` (whose commits report the WAL's
    /// length into `frames`) and checkpointed by `background`, in a directory of
    /// its own.
    struct Db {
        writer: Connection,
        background: Connection,
        frames: Arc<AtomicI64>,
        path: PathBuf,
        wal: PathBuf,
        _dir: Scratch,
    }

    /// The test files' page size (SQLite's default: they are made without `PAGE_SIZE`).
    const TEST_PAGE: i64 = 4096;

    impl Db {
        fn fresh(name: &str) -> Db {
            let dir = Scratch::new(&format!("checkpoint-{name}"));
            let path = dir.db();
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
            let wal = PathBuf::from(format!("{}-wal", path.display()));
            Db {
                writer,
                background,
                frames,
                path,
                wal,
                _dir: dir,
            }
        }

        fn commit(&self) {
            self.writer
                .execute("INSERT INTO t (v) VALUES (zeroblob(12000))", [])
                .unwrap();
        }

        fn frames(&self) -> i64 {
            self.frames.load(Ordering::Relaxed)
        }

        fn fill_past_the_limit(&self, restart: &RestartWanted) {
            while self.frames() < restart.frames {
                self.commit();
            }
        }

        fn background_round(&self, restart: &RestartWanted) {
            background_round(&self.background, &self.wal, restart).unwrap();
        }
    }

    fn asked(restart: &RestartWanted) -> bool {
        restart.wanted.load(Ordering::Acquire)
    }

    /// The writer commits while the background thread copies, as it does under
    /// load; the WAL is started over only if the writer finishes the copy when asked.
    fn wal_after_a_busy_writer(writer_finishes_copy: bool) -> (i64, i64) {
        let db = Db::fresh(if writer_finishes_copy { "finish" } else { "leave" });
        let restart = RestartWanted::new(TEST_PAGE);
        db.fill_past_the_limit(&restart);
        // The copy runs while the writer is inside a transaction, so what it
        // commits next is not copied.
        db.writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        db.commit();
        db.background_round(&restart);
        assert!(asked(&restart), "a long, copied WAL asks the writer");
        db.writer.execute_batch("COMMIT").unwrap();
        let before = db.frames();
        if writer_finishes_copy {
            restart.finish_copy(&db.writer, before.unsigned_abs());
        }
        db.commit();
        (before, db.frames())
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
        let db = Db::fresh("short");
        let restart = RestartWanted::new(TEST_PAGE);
        db.commit();
        assert!(db.frames() < restart.frames);
        db.background_round(&restart);
        assert!(!asked(&restart));
    }

    #[test]
    fn a_copy_held_back_by_a_reader_asks_nothing() {
        let db = Db::fresh("reader");
        let restart = RestartWanted::new(TEST_PAGE);
        db.commit();
        // A reader whose snapshot predates most of the WAL: no checkpoint may copy
        // past it, so starting the WAL over cannot work yet.
        let reader = Connection::open(&db.path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        db.fill_past_the_limit(&restart);
        db.background_round(&restart);
        assert!(!asked(&restart), "held back: the writer is not asked");
        reader.execute_batch("COMMIT").unwrap();
        db.background_round(&restart);
        assert!(asked(&restart), "once the reader is gone it is");
    }
}
