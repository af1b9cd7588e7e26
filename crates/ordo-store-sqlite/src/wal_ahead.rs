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
//! Why it is safe: only the writer thread writes the WAL, and it does this between
//! its transactions, always past the end of the file, never over a frame. Recovery
//! after a crash reads frames from the start until one fails its salt and checksum,
//! which a zeroed frame always does.

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

    /// Called by the writer thread between transactions. Best effort: if the WAL
    /// cannot be extended, SQLite extends it itself as before.
    pub fn top_up(&mut self) {
        let end = WAL_HEADER + self.frames.load(Ordering::Relaxed) * self.frame_bytes;
        let file = match &mut self.file {
            Some(file) => file,
            None => match OpenOptions::new().write(true).open(&self.path) {
                Ok(file) => self.file.insert(file),
                Err(_) => return,
            },
        };
        let Ok(len) = file.metadata().map(|m| m.len()) else {
            return;
        };
        if len >= end + AHEAD {
            return;
        }
        if self.zeros.is_empty() {
            self.zeros = vec![0; CHUNK];
        }
        if file.seek(SeekFrom::Start(len)).is_err() {
            return;
        }
        let mut at = len;
        while at < end + 2 * AHEAD {
            if file.write_all(&self.zeros).is_err() {
                return;
            }
            at += CHUNK as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_go_after_the_last_frame_and_the_database_reopens_intact() {
        let dir = std::env::temp_dir().join(format!("ordo-wal-ahead-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("t.db");
        let wal = dir.join("t.db-wal");
        let mut conn = Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (v TEXT)")
            .unwrap();
        let mut ahead = WalAhead::install(&mut conn, wal.clone()).unwrap();
        for round in 0..3 {
            conn.execute("INSERT INTO t VALUES (?1)", [format!("row {round}").repeat(500)])
                .unwrap();
            let before = std::fs::metadata(&wal).unwrap().len();
            let frames_end = WAL_HEADER + ahead.frames.load(Ordering::Relaxed) * ahead.frame_bytes;
            assert!(frames_end > WAL_HEADER, "the hook reports the frames");
            ahead.top_up();
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
}
