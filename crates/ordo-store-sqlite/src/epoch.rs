//! The `batch_epoch` row (migration 0010): how many writes that batches depend on
//! have committed, and which writer and batch made the last one. Every group-commit
//! batch moves it as it commits, and so does every other write to a table a
//! batch reads (catalogue, settings, channels, codes, idempotency records), in the
//! same transaction, so a batch decided on a snapshot can tell whether anything
//! but what it was decided on top of has committed since (`pipeline`).

use ordo_store::StoreResult;
use rusqlite::{Connection, params};

use crate::codec::err;

/// The `batch_epoch` row: writes counted, and the last one's writer and batch number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    pub n: i64,
    pub writer: i64,
    pub batch: i64,
}

impl Epoch {
    pub fn read(conn: &Connection) -> StoreResult<Epoch> {
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

    pub fn advance(conn: &Connection, writer: i64, batch: u64) -> StoreResult<()> {
        conn.prepare_cached("UPDATE batch_epoch SET n = n + 1, writer = ?1, batch = ?2 WHERE id = 1")
            .map_err(err)?
            .execute(params![writer, batch as i64])
            .map_err(err)?;
        Ok(())
    }
}

/// The `writer` of writes that are not batches.
pub const NOT_A_BATCH: i64 = 0;

/// Moves the epoch for a write that is not a batch, inside its transaction.
pub fn note_write(conn: &Connection) -> StoreResult<()> {
    Epoch::advance(conn, NOT_A_BATCH, 0)
}
