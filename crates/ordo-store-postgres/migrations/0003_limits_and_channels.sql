-- A3/A4/A5: counters that span orders (coupon uses, purchase limits, history),
-- loaded and locked with the batch that reads them.
CREATE TABLE counters (
    shop          TEXT COLLATE "C" NOT NULL REFERENCES shops(id),
    name          TEXT COLLATE "C" NOT NULL,
    value         BIGINT NOT NULL,
    window_start  BIGINT NOT NULL,
    PRIMARY KEY (shop, name)
);

-- A1/A2: each shop's channels and the secret their webhooks are signed with.
CREATE TABLE channels (
    shop        TEXT COLLATE "C" NOT NULL REFERENCES shops(id),
    channel     TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (shop, channel)
);

-- A7: channel product/variant ids and seller SKUs mapped to Ordo SKUs.
CREATE TABLE sku_mappings (
    shop         TEXT COLLATE "C" NOT NULL REFERENCES shops(id),
    channel      TEXT NOT NULL,
    channel_key  TEXT NOT NULL,
    sku          TEXT NOT NULL,
    PRIMARY KEY (shop, channel, channel_key)
);

-- A1/A2: every inbound channel order exactly as received, and what became of it.
CREATE TABLE channel_orders (
    id           TEXT COLLATE "C" PRIMARY KEY,
    shop         TEXT COLLATE "C" NOT NULL REFERENCES shops(id),
    channel      TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    status       TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    order_id     TEXT,
    doc          TEXT NOT NULL,
    body         TEXT NOT NULL,
    UNIQUE (shop, channel, external_id)
);
CREATE INDEX channel_orders_by_status ON channel_orders(shop, status, id);
