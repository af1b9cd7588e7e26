-- G1: codes and links of virtual SKUs, sealed (encrypted) by the engine; the
-- fingerprint (a keyed hash) keeps a code from being imported twice.
CREATE TABLE codes (
    id           TEXT COLLATE "C" PRIMARY KEY,
    shop         TEXT COLLATE "C" NOT NULL REFERENCES shops(id),
    sku          TEXT COLLATE "C" NOT NULL,
    fingerprint  TEXT NOT NULL,
    sealed       TEXT NOT NULL,
    order_id     TEXT,
    created_at   BIGINT NOT NULL,
    assigned_at  BIGINT,
    UNIQUE (shop, sku, fingerprint)
);
CREATE INDEX codes_available ON codes(sku, id) WHERE order_id IS NULL;
CREATE INDEX codes_by_order ON codes(order_id) WHERE order_id IS NOT NULL;
