//! Zeroed space kept ahead of the WAL's last frame.
//!
//! SQLite appends each commit's pages to the WAL as frames of 24 + page-size bytes,
//! two small writes per frame, none of them block-aligned. Appending past the end
//! of the file makes the kernel prepare fresh page-cache blocks for every one of
//! those writes; on this machine's ext4 that zeroing took a sixth of the writer
//! thread's time on a CSV import. Writes into space the file already has are plain
//! copies, so the writer, between transactions, appends zeros in large chunks ahead
//! of the last frame.
//!
//! Why it is safe: zeros are appended only past the end of the file, while this
//! connection holds the database's write lock (`BEGIN IMMEDIATE`), so no writer —
//! in this process or another one sharing the file — is appending frames or
//! restarting the WAL meanwhile. Recovery after a crash reads frames from the start
//! until one fails its salt and checksum, which a zeroed frame always does.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ordo_store::StoreResult;
use rusqlite::Connection;

use crate::codec::err;

/// The WAL file's header, before the first frame.
const WAL_HEADER: u64 = 32;
/// Each frame's header, before the page.
const FRAME_HEADER: u64 = 24;
/// Zeroed space to keep ready after the last frame; topped up to twice this.
const AHEAD: u64 = 8 << 20;
const CHUNK: usize = 1 << 20;

pub struct WalAhead {
    path: PathBuf,
    file: Option<File>,
    frame_bytes: u64,
    /// Frames in the WAL after the last commit, as SQLite's WAL hook reports them.
    frames: Arc<AtomicU64>,
    zeros: Vec<u8>,
}

impl WalAhead {
    /// Hooks into the writer connection's commits. Must follow any
    /// `wal_autocheckpoint` setting, which replaces the hook.
    pub fn install(conn: &mut Connection, path: PathBuf) -> StoreResult<WalAhead> {
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).map_err(err)?;
        let frames = Arc::new(AtomicU64::new(0));
        let reported = frames.clone();
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: std::ffi::c_int| {
            reported.store(u64::try_from(pages).unwrap_or(0), Ordering::Relaxed);
            Ok(())
        }))
        .map_err(err)?;
        Ok(WalAhead {
            path,
            file: None,
            frame_bytes: FRAME_HEADER + u64::try_from(page_size).unwrap_or(4096),
            frames,
            zeros: Vec::new(),
        })
    }

    /// Frames in the WAL after the last commit.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// The counter behind `frames`, for readers on other threads.
    pub fn frames_counter(&self) -> Arc<AtomicU64> {
        self.frames.clone()
    }

    /// Called by the writer thread between transactions. Best effort: if the WAL
    /// cannot be extended, SQLite extends it itself as before.
    pub fn top_up(&mut self, conn: &Connection) {
        let end = WAL_HEADER + self.frames.load(Ordering::Relaxed) * self.frame_bytes;
        let file = match &mut self.file {
            Some(file) => file,
            None => match OpenOptions::new().write(true).open(&self.path) {
                Ok(file) => self.file.insert(file),
                Err(_) => return,
            },
        };
        let wal_len = |file: &File| file.metadata().map(|m| m.len()).ok();
        if wal_len(file).is_none_or(|len| len >= end + AHEAD) {
            return;
        }
        if conn.execute_batch("BEGIN IMMEDIATE").is_err() {
            return;
        }
        // Measured again under the lock: another process may have written meanwhile.
        if let Some(len) = wal_len(file)
            && len < end + AHEAD
            && file.seek(SeekFrom::Start(len)).is_ok()
        {
            if self.zeros.is_empty() {
                self.zeros = vec![0; CHUNK];
            }
            let mut at = len;
            while at < end + 2 * AHEAD && file.write_all(&self.zeros).is_ok() {
                at += CHUNK as u64;
            }
        }
        // Nothing was written through SQLite: the commit writes no frame. Never leave
        // the transaction open, or the writer's next one could not begin.
        if conn.execute_batch("COMMIT").is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh WAL-mode database with one table, and its `WalAhead`.
    fn fresh(name: &str) -> (PathBuf, PathBuf, PathBuf, Connection, WalAhead) {
        let dir = std::env::temp_dir().join(format!("ordo-wal-ahead-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (db, wal) = (dir.join("t.db"), dir.join("t.db-wal"));
        let mut conn = Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (v TEXT)")
            .unwrap();
        let ahead = WalAhead::install(&mut conn, wal.clone()).unwrap();
        (dir, db, wal, conn, ahead)
    }

    #[test]
    fn zeros_go_after_the_last_frame_and_the_database_reopens_intact() {
        let (dir, db, wal, conn, mut ahead) = fresh("reopen");
        for round in 0..3 {
            conn.execute("INSERT INTO t VALUES (?1)", [format!("row {round}").repeat(500)])
                .unwrap();
            let before = std::fs::metadata(&wal).unwrap().len();
            let frames_end = WAL_HEADER + ahead.frames.load(Ordering::Relaxed) * ahead.frame_bytes;
            assert!(frames_end > WAL_HEADER, "the hook reports the frames");
            ahead.top_up(&conn);
            let after = std::fs::metadata(&wal).unwrap().len();
            assert!(after >= frames_end + AHEAD, "zeroed space is kept ahead");
            assert!(after >= before);
        }
        // Recovery from the WAL (as after a crash) stops at the zeros and keeps every row.
        let copy = dir.join("copy.db");
        std::fs::copy(&db, &copy).unwrap();
        std::fs::copy(&wal, dir.join("copy.db-wal")).unwrap();
        drop(conn);
        let reopened = Connection::open(&copy).unwrap();
        let rows: i64 = reopened.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 3);
        drop(reopened);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nothing_is_appended_while_another_connection_may_be_writing() {
        let (dir, db, wal, conn, mut ahead) = fresh("lock");
        conn.execute("INSERT INTO t VALUES ('x')", []).unwrap();
        // Another writer (here a second connection; it could be another process)
        // holds the write lock, so it may be appending frames right now.
        let other = Connection::open(&db).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.busy_timeout(std::time::Duration::ZERO).unwrap();
        let before = std::fs::metadata(&wal).unwrap().len();
        ahead.top_up(&conn);
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), before);
        other.execute_batch("COMMIT").unwrap();
        // Once the lock is free it tops up, and leaves no transaction open behind.
        ahead.top_up(&conn);
        assert!(std::fs::metadata(&wal).unwrap().len() > before);
        assert!(conn.is_autocommit());
        drop((conn, other));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
