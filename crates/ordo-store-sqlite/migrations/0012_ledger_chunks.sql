-- A SQLite index on stock_ledger(sku) took every ledger row at its SKU's place: a
-- batch touching N SKUs rewrote N index pages, most of the pages a CSV import batch
-- wrote for the ledger. The ledger's rows per SKU are now listed in chunks, one row
-- per SKU per chunk, each written once (ledger.rs); rows newer than the last chunk
-- are found by scanning them.
DROP INDEX stock_ledger_by_sku;
-- seqs: the chunk's ledger seqs of this SKU, ascending, each 8 bytes big-endian.
CREATE TABLE stock_ledger_skus (
    sku       BLOB NOT NULL,
    last_seq  INTEGER NOT NULL,
    seqs      BLOB NOT NULL,
    PRIMARY KEY (sku, last_seq)
) WITHOUT ROWID;
INSERT INTO stock_ledger_skus (sku, last_seq, seqs)
    SELECT sku, max(seq), unhex(group_concat(printf('%016x', seq), '' ORDER BY seq))
    FROM stock_ledger GROUP BY sku, seq / 16384;
-- Every ledger row with seq <= through is in a chunk.
CREATE TABLE stock_ledger_indexed (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    through  INTEGER NOT NULL
);
INSERT INTO stock_ledger_indexed (id, through) SELECT 1, coalesce(max(seq), 0) FROM stock_ledger;
