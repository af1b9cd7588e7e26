-- A3/A4/A5: counters that span orders (coupon uses, purchase limits, history),
-- loaded and locked with the batch that reads them.
CREATE TABLE counters (
    shop          TEXT NOT NULL REFERENCES shops(id),
    name          TEXT NOT NULL,
    value         INTEGER NOT NULL,
    window_start  INTEGER NOT NULL,
    PRIMARY KEY (shop, name)
);

-- A1/A2: each shop's channels and the secret their webhooks are signed with.
CREATE TABLE channels (
    shop        TEXT NOT NULL REFERENCES shops(id),
    channel     TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (shop, channel)
);

-- A7: channel product/variant ids and seller SKUs mapped to Ordo SKUs.
CREATE TABLE sku_mappings (
    shop         TEXT NOT NULL REFERENCES shops(id),
    channel      TEXT NOT NULL,
    channel_key  TEXT NOT NULL,
    sku          TEXT NOT NULL,
    PRIMARY KEY (shop, channel, channel_key)
);

-- A1/A2: every inbound channel order exactly as received, and what became of it.
CREATE TABLE channel_orders (
    id           TEXT PRIMARY KEY,
    shop         TEXT NOT NULL REFERENCES shops(id),
    channel      TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    status       TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    order_id     TEXT,
    doc          TEXT NOT NULL,
    body         TEXT NOT NULL,
    UNIQUE (shop, channel, external_id)
);
CREATE INDEX channel_orders_by_status ON channel_orders(shop, status, id);
