//! The stock ledger: one row per stock movement, and the list of each SKU's rows.
//!
//! A SQLite index on `sku` would take every new row at its SKU's place, so a batch
//! touching N SKUs rewrites N index pages. Instead, once `CHUNK` rows wait above the
//! `stock_ledger_indexed` mark, their seqs are listed per SKU in `stock_ledger_skus`:
//! one row per SKU per chunk, written once. Reads take a SKU's rows from its chunks
//! and find those above the mark by scanning that short tail (fewer than `CHUNK` rows).
//!
//! This relies on the ledger being append-only (`LedgerEntry`: never updated or
//! deleted), so a new row's seq is always above the mark.

use std::collections::HashMap;

use ordo_core::auth::Actor;
use ordo_core::inventory::{LedgerEntry, LedgerReason};
use ordo_core::{OrderId, ProductId, ShopId, Timestamp, WarehouseId};
use ordo_store::StoreError;
use rusqlite::{Connection, Row, params};

use crate::codec::{Key, err, insert_rows};

type R<T> = Result<T, StoreError>;

/// Ledger rows per chunk (at least): a read scans fewer than this many rows beyond
/// the chunks, and the more rows per chunk, the fewer chunk rows each SKU gets.
/// Migration 0012 chunks the rows already written by the same number.
const CHUNK: i64 = 16_384;
/// Bytes per seq in a chunk's list (big-endian, as the migration's `printf('%016x')`).
const SEQ_BYTES: usize = 8;

/// Appends `entries` in the caller's transaction, and lists the rows above the mark
/// per SKU once a chunk's worth wait.
pub fn insert(conn: &Connection, entries: &[LedgerEntry]) -> R<()> {
    append(conn, entries, CHUNK)
}

fn append(conn: &Connection, entries: &[LedgerEntry], chunk: i64) -> R<()> {
    if entries.is_empty() {
        return Ok(());
    }
    insert_rows(
        conn,
        "stock_ledger (shop, sku, warehouse, on_hand_delta, reserved_delta, reason, order_id, actor, note, at)",
        10,
        "",
        entries,
        |b, e| {
            b.put(e.shop.key())?;
            b.put(e.sku.key())?;
            b.put(e.warehouse.key())?;
            b.put(e.on_hand_delta)?;
            b.put(e.reserved_delta)?;
            b.put(e.reason.as_str())?;
            b.put(e.order.map(|o| o.key()))?;
            b.put(&e.actor.0)?;
            b.put(&e.note)?;
            b.put(e.at.0)
        },
    )?;
    chunk_if_due(conn, conn.last_insert_rowid(), chunk)
}

fn indexed_through(conn: &Connection) -> R<i64> {
    conn.prepare_cached("SELECT through FROM stock_ledger_indexed")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(err)
}

/// Lists the rows in (mark, `last`] per SKU if at least `chunk` of them wait.
fn chunk_if_due(conn: &Connection, last: i64, chunk: i64) -> R<()> {
    let through = indexed_through(conn)?;
    if last - through < chunk {
        return Ok(());
    }
    let mut chunks: HashMap<Vec<u8>, (i64, Vec<u8>)> = HashMap::new();
    {
        let mut stmt = conn
            .prepare_cached("SELECT sku, seq FROM stock_ledger WHERE seq > ?1 AND seq <= ?2 ORDER BY seq")
            .map_err(err)?;
        let mut rows = stmt.query(params![through, last]).map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            let sku = row.get_ref(0).and_then(|v| Ok(v.as_blob()?)).map_err(err)?;
            let seq: i64 = row.get(1).map_err(err)?;
            let chunk = match chunks.get_mut(sku) {
                Some(chunk) => chunk,
                None => chunks.entry(sku.to_vec()).or_default(),
            };
            chunk.0 = seq;
            chunk.1.extend_from_slice(&seq.to_be_bytes());
        }
    }
    // In key order, so the chunk rows go into their B-tree front to back.
    let mut chunks: Vec<_> = chunks.into_iter().collect();
    chunks.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    insert_rows(
        conn,
        "stock_ledger_skus (sku, last_seq, seqs)",
        3,
        "",
        &chunks,
        |b, (sku, (last, seqs))| {
            b.put(sku)?;
            b.put(last)?;
            b.put(seqs)
        },
    )?;
    conn.prepare_cached("UPDATE stock_ledger_indexed SET through = ?1")
        .and_then(|mut s| s.execute([last]))
        .map_err(err)?;
    Ok(())
}

/// A SKU's ledger rows after `after`, oldest first, at most `limit`. In one read
/// transaction, so the chunks, the mark and the tail agree whatever is written meanwhile.
pub fn read(conn: &Connection, shop: ShopId, sku: ProductId, after: i64, limit: u32) -> R<Vec<(i64, LedgerEntry)>> {
    let limit = limit as usize;
    let tx = conn.unchecked_transaction().map_err(err)?;
    let through = indexed_through(&tx)?;
    let mut found = Vec::new();
    if after < through && limit > 0 {
        let mut chunks = tx.prepare_cached(CHUNKS_AFTER).map_err(err)?;
        let mut chunks = chunks.query(params![sku.key(), after]).map_err(err)?;
        let mut by_seq = tx.prepare_cached(BY_SEQ).map_err(err)?;
        'chunks: while let Some(chunk) = chunks.next().map_err(err)? {
            let seqs = chunk.get_ref(0).and_then(|v| Ok(v.as_blob()?)).map_err(err)?;
            let seq_at = |i: usize| {
                let bytes = &seqs[i * SEQ_BYTES..(i + 1) * SEQ_BYTES];
                i64::from_be_bytes(bytes.try_into().expect("SEQ_BYTES bytes"))
            };
            let n = seqs.len() / SEQ_BYTES;
            for seq in (first_after(n, after, seq_at)..n).map(seq_at) {
                if found.len() == limit {
                    break 'chunks;
                }
                let mut rows = by_seq.query(params![seq, shop.key()]).map_err(err)?;
                if let Some(row) = rows.next().map_err(err)? {
                    found.push(entry(row, shop, sku)?);
                }
            }
        }
    }
    if found.len() < limit {
        let mut tail = tx.prepare_cached(TAIL).map_err(err)?;
        let mut rows = tail
            .query(params![
                after.max(through),
                sku.key(),
                shop.key(),
                (limit - found.len()) as i64
            ])
            .map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            found.push(entry(row, shop, sku)?);
        }
    }
    Ok(found)
}

/// The index of the first of `n` ascending seqs above `after` (`n` if none), by
/// bisection: a busy SKU's chunk holds thousands.
fn first_after(n: usize, after: i64, seq_at: impl Fn(usize) -> i64) -> usize {
    let (mut low, mut high) = (0, n);
    while low < high {
        let mid = low + (high - low) / 2;
        if seq_at(mid) <= after {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    low
}

/// The columns `entry` reads.
macro_rules! columns {
    () => {
        "seq, warehouse, on_hand_delta, reserved_delta, reason, order_id, actor, note, at"
    };
}
/// A SKU's chunks that hold seqs after ?2, oldest first.
const CHUNKS_AFTER: &str = "SELECT seqs FROM stock_ledger_skus WHERE sku = ?1 AND last_seq > ?2 ORDER BY last_seq";
const BY_SEQ: &str = concat!("SELECT ", columns!(), " FROM stock_ledger WHERE seq = ?1 AND shop = ?2");
/// The rows above the mark (?1 no lower than it): a range of seqs, scanned.
const TAIL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM stock_ledger WHERE seq > ?1 AND sku = ?2 AND shop = ?3 ORDER BY seq LIMIT ?4"
);

/// One ledger row, selected as `columns!()`.
fn entry(r: &Row<'_>, shop: ShopId, sku: ProductId) -> R<(i64, LedgerEntry)> {
    let reason: String = r.get(4).map_err(err)?;
    let warehouse: Vec<u8> = r.get(1).map_err(err)?;
    let order: Option<Vec<u8>> = r.get(5).map_err(err)?;
    let entry = LedgerEntry {
        shop,
        sku,
        warehouse: WarehouseId::from_key(&warehouse)?,
        on_hand_delta: r.get(2).map_err(err)?,
        reserved_delta: r.get(3).map_err(err)?,
        reason: LedgerReason::parse(&reason).ok_or_else(|| StoreError::Corrupt(format!("ledger reason {reason}")))?,
        order: order.as_deref().map(OrderId::from_key).transpose()?,
        actor: Actor(r.get(6).map_err(err)?),
        note: r.get(7).map_err(err)?,
        at: Timestamp(r.get(8).map_err(err)?),
    };
    Ok((r.get(0).map_err(err)?, entry))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SHOP: ShopId = ShopId(1);
    const OTHER_SHOP: ShopId = ShopId(2);
    /// (shop, sku) of the rows written: three SKUs of one shop, one of another, and
    /// rows of the first SKU under the other shop too (a read must not count them).
    const SKUS: [(ShopId, ProductId); 5] = [
        (SHOP, ProductId(11)),
        (SHOP, ProductId(12)),
        (SHOP, ProductId(13)),
        (OTHER_SHOP, ProductId(21)),
        (OTHER_SHOP, ProductId(11)),
    ];
    /// The chunk size migration 0012 was written with (`CHUNK` may change later).
    const MIGRATION_CHUNK: i64 = 16_384;

    fn migrated(below: i64) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrate_below(&mut conn, below).unwrap();
        conn
    }

    fn entry_of((shop, sku): (ShopId, ProductId), n: i64) -> LedgerEntry {
        LedgerEntry {
            shop,
            sku,
            warehouse: WarehouseId(7),
            on_hand_delta: 0,
            reserved_delta: n,
            reason: LedgerReason::Reserve,
            order: Some(OrderId(n as u128)),
            actor: Actor::system("test"),
            note: (n % 3 == 0).then(|| format!("note {n}")),
            at: Timestamp(n),
        }
    }

    /// Every row of `sku` the shop sees, read page by page; every page but the last
    /// is full, as a client paging until a short page expects.
    fn walk(conn: &Connection, (shop, sku): (ShopId, ProductId), page: u32) -> Vec<(i64, LedgerEntry)> {
        let mut all: Vec<(i64, LedgerEntry)> = Vec::new();
        loop {
            let after = all.last().map_or(0, |(seq, _)| *seq);
            let next = read(conn, shop, sku, after, page).unwrap();
            assert!(next.len() <= page as usize, "at most a page");
            assert!(next.iter().all(|(seq, _)| *seq > after), "only rows after {after}");
            let short = next.len() < page as usize;
            all.extend(next);
            if short {
                let after = all.last().map_or(0, |(seq, _)| *seq);
                assert!(
                    read(conn, shop, sku, after, page).unwrap().is_empty(),
                    "a short page is the last"
                );
                return all;
            }
        }
    }

    fn append_committed(
        conn: &Connection,
        entries: Vec<LedgerEntry>,
        chunk: i64,
        written: &mut Vec<(i64, LedgerEntry)>,
    ) {
        let tx = conn.unchecked_transaction().unwrap();
        append(&tx, &entries, chunk).unwrap();
        let last = tx.last_insert_rowid();
        tx.commit().unwrap();
        assert!(
            last - indexed_through(conn).unwrap() < chunk,
            "the rows above the mark were chunked"
        );
        let first = last - entries.len() as i64 + 1;
        written.extend((first..=last).zip(entries));
    }

    fn chunk_rows(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM stock_ledger_skus", [], |r| r.get(0))
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever falls in chunks and whatever is still in the tail, a SKU's rows
        /// read page by page are exactly its rows in the ledger, in order, and only
        /// its own shop sees them.
        #[test]
        fn reads_find_each_skus_rows_in_chunks_and_tail(
            batches in prop::collection::vec(prop::collection::vec(0..SKUS.len(), 1..8), 1..30),
            chunk in 1i64..12,
            page in 1u32..6,
        ) {
            let conn = migrated(i64::MAX);
            let mut written: Vec<(i64, LedgerEntry)> = Vec::new();
            for batch in &batches {
                let entries = batch.iter().map(|&i| entry_of(SKUS[i], written.len() as i64 + 1)).collect();
                append_committed(&conn, entries, chunk, &mut written);
            }
            prop_assert_eq!(chunk_rows(&conn) > 0, written.len() as i64 >= chunk);
            for shop in [SHOP, OTHER_SHOP] {
                for sku in [11, 12, 13, 21].map(ProductId) {
                    let expected: Vec<_> =
                        written.iter().filter(|(_, e)| e.shop == shop && e.sku == sku).cloned().collect();
                    prop_assert_eq!(walk(&conn, (shop, sku), page), expected);
                    prop_assert!(read(&conn, shop, sku, 0, 0).unwrap().is_empty());
                }
            }
        }
    }

    /// Each statement of a read seeks by key; none sorts.
    #[test]
    fn reads_seek_and_never_sort() {
        let conn = migrated(i64::MAX);
        for (sql, params, uses) in [
            (CHUNKS_AFTER, 2, "PRIMARY KEY (sku=? AND last_seq>?)"),
            (BY_SEQ, 2, "INTEGER PRIMARY KEY (rowid=?)"),
            (TAIL, 4, "INTEGER PRIMARY KEY (rowid>?)"),
        ] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(rusqlite::params_from_iter(1..=params), |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(plan.iter().any(|p| p.contains(uses)), "{sql}: {plan:?}");
            assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{sql}: {plan:?}");
        }
    }

    /// Migration 12 lists the rows already in the ledger, in chunks of 16,384 seqs,
    /// and the chunks written later follow on.
    #[test]
    fn the_migration_lists_the_rows_already_written() {
        let mut conn = migrated(12);
        let rows = 2 * MIGRATION_CHUNK + 5;
        let tx = conn.unchecked_transaction().unwrap();
        for n in 1..=rows {
            let e = entry_of(SKUS[(n % 3) as usize], n);
            tx.execute(
                "INSERT INTO stock_ledger (shop, sku, warehouse, on_hand_delta, reserved_delta, reason, order_id, actor, note, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    e.shop.key(), e.sku.key(), e.warehouse.key(), e.on_hand_delta, e.reserved_delta,
                    e.reason.as_str(), e.order.map(|o| o.key()), e.actor.0, e.note, e.at.0
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        crate::migrate(&mut conn).unwrap();
        assert_eq!(indexed_through(&conn).unwrap(), rows, "every row listed");
        assert_eq!(chunk_rows(&conn), 3 * 3, "three SKUs, three ranges of seqs");
        let mut written = Vec::new();
        let more = (rows + 1..=rows + 7)
            .map(|n| entry_of(SKUS[(n % 3) as usize], n))
            .collect();
        append_committed(&conn, more, 4, &mut written);
        assert_eq!(chunk_rows(&conn), 3 * 3 + 3, "one more chunk of three SKUs");
        for (i, sku) in SKUS[..3].iter().enumerate() {
            let seqs: Vec<i64> = walk(&conn, *sku, 1000).into_iter().map(|(seq, _)| seq).collect();
            let expected: Vec<i64> = (1..=rows + 7).filter(|n| (n % 3) as usize == i).collect();
            assert_eq!(seqs, expected);
        }
    }
}
