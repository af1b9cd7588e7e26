-- Payments are only ever read by order, so they are stored in order: one B-tree
-- keyed (order_id, id) instead of a rowid table, its id index and an order index.
-- Every order placed has a pending payment, so that is two B-tree inserts fewer per
-- order. Payment ids are generated unique; the key still holds them.
CREATE TABLE payments_keyed (
    order_id  TEXT NOT NULL,
    id        TEXT NOT NULL,
    shop      TEXT NOT NULL,
    status    TEXT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (order_id, id)
) WITHOUT ROWID;
INSERT INTO payments_keyed (order_id, id, shop, status, doc)
    SELECT order_id, id, shop, status, doc FROM payments;
DROP TABLE payments;
ALTER TABLE payments_keyed RENAME TO payments;
