-- Ordo schema, SQLite. Ids are their text form (`ord_…`, time-ordered), times are
-- Unix milliseconds, money is integer minor units. Aggregates whose inner shape is
-- only read whole (an order's lines, buyer, address) live in a JSON `doc`; the
-- columns beside it are what lists filter and sort on.

CREATE TABLE shops (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    shop         TEXT NOT NULL REFERENCES shops(id),
    role         TEXT NOT NULL,
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_by_shop ON api_keys(shop, id);

CREATE TABLE gateway_secrets (
    shop     TEXT NOT NULL REFERENCES shops(id),
    gateway  TEXT NOT NULL,
    secret   TEXT NOT NULL,
    PRIMARY KEY (shop, gateway)
);

CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    shop        TEXT NOT NULL REFERENCES shops(id),
    sku         TEXT NOT NULL,
    doc         TEXT NOT NULL,
    UNIQUE (shop, sku)
);

CREATE TABLE warehouses (
    id    TEXT PRIMARY KEY,
    shop  TEXT NOT NULL REFERENCES shops(id),
    code  TEXT NOT NULL,
    doc   TEXT NOT NULL,
    UNIQUE (shop, code)
);

CREATE TABLE stock (
    sku         TEXT NOT NULL,
    warehouse   TEXT NOT NULL,
    shop        TEXT NOT NULL,
    on_hand     INTEGER NOT NULL CHECK (on_hand >= 0),
    reserved    INTEGER NOT NULL CHECK (reserved >= 0 AND reserved <= on_hand),
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (sku, warehouse)
);
CREATE INDEX stock_by_shop ON stock(shop, warehouse);

CREATE TABLE stock_ledger (
    seq             INTEGER PRIMARY KEY,
    shop            TEXT NOT NULL,
    sku             TEXT NOT NULL,
    warehouse       TEXT NOT NULL,
    on_hand_delta   INTEGER NOT NULL,
    reserved_delta  INTEGER NOT NULL,
    reason          TEXT NOT NULL,
    order_id        TEXT,
    actor           TEXT NOT NULL,
    note            TEXT,
    at              INTEGER NOT NULL
);
CREATE INDEX stock_ledger_by_sku ON stock_ledger(shop, sku, seq);

CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    shop            TEXT NOT NULL,
    status          TEXT NOT NULL,
    channel         TEXT NOT NULL,
    external_id     TEXT,
    created_at      INTEGER NOT NULL,
    payment_due_at  INTEGER,
    doc             TEXT NOT NULL
);
CREATE UNIQUE INDEX orders_by_external ON orders(shop, channel, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX orders_by_shop ON orders(shop, id);
CREATE INDEX orders_by_status ON orders(shop, status, id);
CREATE INDEX orders_payment_due ON orders(payment_due_at) WHERE payment_due_at IS NOT NULL;

CREATE TABLE payments (
    id        TEXT PRIMARY KEY,
    shop      TEXT NOT NULL,
    order_id  TEXT NOT NULL,
    status    TEXT NOT NULL,
    doc       TEXT NOT NULL
);
CREATE INDEX payments_by_order ON payments(order_id);

CREATE TABLE refunds (
    id            TEXT PRIMARY KEY,
    shop          TEXT NOT NULL,
    order_id      TEXT NOT NULL,
    payment_id    TEXT NOT NULL,
    amount_minor  INTEGER NOT NULL CHECK (amount_minor > 0),
    doc           TEXT NOT NULL
);
CREATE INDEX refunds_by_order ON refunds(order_id);

CREATE TABLE payment_notices (
    shop            TEXT NOT NULL,
    gateway         TEXT NOT NULL,
    transaction_id  TEXT NOT NULL,
    order_id        TEXT NOT NULL,
    succeeded       INTEGER NOT NULL,
    amount_minor    INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    at              INTEGER NOT NULL,
    PRIMARY KEY (shop, gateway, transaction_id)
);

CREATE TABLE idempotency (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status_code   INTEGER NOT NULL,
    resource      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE events (
    seq      INTEGER PRIMARY KEY,
    shop     TEXT,
    subject  TEXT NOT NULL,
    kind     TEXT NOT NULL,
    payload  TEXT NOT NULL,
    actor    TEXT NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX events_by_shop ON events(shop, seq);
