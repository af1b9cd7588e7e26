-- Ordo schema, PostgreSQL; mirrors the SQLite schema table for table. Ids are their
-- text form (`ord_…`, fixed width, time-ordered) and use the "C" collation so that
-- text order is id order whatever the database's locale. Times are Unix
-- milliseconds, money is integer minor units. Aggregates whose inner shape is only
-- read whole (an order's lines, buyer, address) live in a JSON `doc` (TEXT, not
-- JSONB: JSONB rejects `\u0000` inside strings, TEXT keeps the escaped form); the
-- columns beside it are what lists filter and sort on.

CREATE TABLE shops (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT COLLATE "C" PRIMARY KEY,
    shop         TEXT COLLATE "C" NOT NULL REFERENCES shops(id),
    role         TEXT NOT NULL,
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_by_shop ON api_keys(shop, id);

CREATE TABLE gateway_secrets (
    shop     TEXT COLLATE "C" NOT NULL REFERENCES shops(id),
    gateway  TEXT NOT NULL,
    secret   TEXT NOT NULL,
    PRIMARY KEY (shop, gateway)
);

CREATE TABLE products (
    id    TEXT COLLATE "C" PRIMARY KEY,
    shop  TEXT COLLATE "C" NOT NULL REFERENCES shops(id),
    sku   TEXT NOT NULL,
    doc   TEXT NOT NULL,
    UNIQUE (shop, sku)
);
CREATE INDEX products_by_shop ON products(shop, id);

CREATE TABLE warehouses (
    id    TEXT COLLATE "C" PRIMARY KEY,
    shop  TEXT COLLATE "C" NOT NULL REFERENCES shops(id),
    code  TEXT NOT NULL,
    doc   TEXT NOT NULL,
    UNIQUE (shop, code)
);

CREATE TABLE stock (
    sku         TEXT COLLATE "C" NOT NULL,
    warehouse   TEXT COLLATE "C" NOT NULL,
    shop        TEXT COLLATE "C" NOT NULL,
    on_hand     BIGINT NOT NULL CHECK (on_hand >= 0),
    reserved    BIGINT NOT NULL CHECK (reserved >= 0 AND reserved <= on_hand),
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (sku, warehouse)
);
CREATE INDEX stock_by_shop ON stock(shop, warehouse);

CREATE TABLE stock_ledger (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop            TEXT COLLATE "C" NOT NULL,
    sku             TEXT COLLATE "C" NOT NULL,
    warehouse       TEXT COLLATE "C" NOT NULL,
    on_hand_delta   BIGINT NOT NULL,
    reserved_delta  BIGINT NOT NULL,
    reason          TEXT NOT NULL,
    order_id        TEXT COLLATE "C",
    actor           TEXT NOT NULL,
    note            TEXT,
    at              BIGINT NOT NULL
);
CREATE INDEX stock_ledger_by_sku ON stock_ledger(shop, sku, seq);

CREATE TABLE orders (
    id              TEXT COLLATE "C" PRIMARY KEY,
    shop            TEXT COLLATE "C" NOT NULL,
    status          TEXT NOT NULL,
    channel         TEXT NOT NULL,
    external_id     TEXT,
    created_at      BIGINT NOT NULL,
    payment_due_at  BIGINT,
    doc             TEXT NOT NULL
);
CREATE UNIQUE INDEX orders_by_external ON orders(shop, channel, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX orders_by_shop ON orders(shop, id);
CREATE INDEX orders_by_status ON orders(shop, status, id);
CREATE INDEX orders_payment_due ON orders(payment_due_at) WHERE payment_due_at IS NOT NULL;

CREATE TABLE payments (
    id        TEXT COLLATE "C" PRIMARY KEY,
    shop      TEXT COLLATE "C" NOT NULL,
    order_id  TEXT COLLATE "C" NOT NULL,
    status    TEXT NOT NULL,
    doc       TEXT NOT NULL
);
CREATE INDEX payments_by_order ON payments(order_id);

CREATE TABLE refunds (
    id            TEXT COLLATE "C" PRIMARY KEY,
    shop          TEXT COLLATE "C" NOT NULL,
    order_id      TEXT COLLATE "C" NOT NULL,
    payment_id    TEXT COLLATE "C" NOT NULL,
    amount_minor  BIGINT NOT NULL CHECK (amount_minor > 0),
    doc           TEXT NOT NULL
);
CREATE INDEX refunds_by_order ON refunds(order_id);

CREATE TABLE payment_notices (
    shop            TEXT COLLATE "C" NOT NULL,
    gateway         TEXT NOT NULL,
    transaction_id  TEXT NOT NULL,
    order_id        TEXT COLLATE "C" NOT NULL,
    succeeded       BOOLEAN NOT NULL,
    amount_minor    BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    at              BIGINT NOT NULL,
    PRIMARY KEY (shop, gateway, transaction_id)
);

CREATE TABLE idempotency (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status_code   INTEGER NOT NULL,
    resource      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

-- `seq` is drawn while holding a transaction-level advisory lock that is released at
-- commit, so sequence numbers become visible in commit order and readers that page
-- with `seq > after` never skip a late-committing event.
CREATE TABLE events (
    seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop     TEXT COLLATE "C",
    subject  TEXT NOT NULL,
    kind     TEXT NOT NULL,
    payload  TEXT NOT NULL,
    actor    TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX events_by_shop ON events(shop, seq);
