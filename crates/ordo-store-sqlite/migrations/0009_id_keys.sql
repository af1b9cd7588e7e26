-- As 0008 did for shops: the ids that fill the per-order tables' rows and indexes
-- (an order's id; a payment's order and id; a ledger entry's SKU, warehouse and
-- order) are kept as their 16 bytes, big-endian, so they sort as their text did.
-- `unhex(substr(x, instr(x, '_') + 1))` drops the `ord_`-style prefix.

CREATE TABLE orders_new (
    id                   BLOB PRIMARY KEY,
    shop                 BLOB NOT NULL,
    status               TEXT NOT NULL,
    channel              TEXT NOT NULL,
    external_id          TEXT,
    created_at           INTEGER NOT NULL,
    payment_due_at       INTEGER,
    doc                  TEXT NOT NULL,
    payment_reminder_at  INTEGER
);
INSERT INTO orders_new
    SELECT unhex(substr(id, instr(id, '_') + 1)), shop, status, channel, external_id, created_at, payment_due_at,
           doc, payment_reminder_at
    FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE UNIQUE INDEX orders_by_external ON orders(shop, channel, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX orders_by_shop ON orders(shop, id);
CREATE INDEX orders_by_status ON orders(shop, status, id);
CREATE INDEX orders_payment_due ON orders(payment_due_at) WHERE payment_due_at IS NOT NULL;
CREATE INDEX orders_payment_reminder ON orders(payment_reminder_at) WHERE payment_reminder_at IS NOT NULL;

CREATE TABLE payments_new (
    order_id  BLOB NOT NULL,
    id        BLOB NOT NULL,
    shop      BLOB NOT NULL,
    status    TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (order_id, id)
) WITHOUT ROWID;
INSERT INTO payments_new
    SELECT unhex(substr(order_id, instr(order_id, '_') + 1)), unhex(substr(id, instr(id, '_') + 1)), shop, status,
           doc
    FROM payments;
DROP TABLE payments;
ALTER TABLE payments_new RENAME TO payments;

CREATE TABLE stock_ledger_new (
    seq             INTEGER PRIMARY KEY,
    shop            BLOB NOT NULL,
    sku             BLOB NOT NULL,
    warehouse       BLOB NOT NULL,
    on_hand_delta   INTEGER NOT NULL,
    reserved_delta  INTEGER NOT NULL,
    reason          TEXT NOT NULL,
    order_id        BLOB,
    actor           TEXT NOT NULL,
    note            TEXT,
    at              INTEGER NOT NULL
);
INSERT INTO stock_ledger_new
    SELECT seq, shop, unhex(substr(sku, instr(sku, '_') + 1)), unhex(substr(warehouse, instr(warehouse, '_') + 1)),
           on_hand_delta, reserved_delta, reason, unhex(substr(order_id, instr(order_id, '_') + 1)), actor, note, at
    FROM stock_ledger;
DROP TABLE stock_ledger;
ALTER TABLE stock_ledger_new RENAME TO stock_ledger;
CREATE INDEX stock_ledger_by_sku ON stock_ledger(sku);
