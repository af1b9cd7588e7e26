-- `seq` is the rowid of both tables, and every index ends with the rowid, so an
-- index on (x) already orders each x's rows by seq: naming seq again stored it twice.
-- The ledger's index also drops `shop` (a SKU id belongs to one shop; queries still
-- filter on it): a ledger row per reserved line lands at its SKU's place in this
-- index, and narrower entries there made CSV import about a tenth faster.
DROP INDEX stock_ledger_by_sku;
CREATE INDEX stock_ledger_by_sku ON stock_ledger(sku);
DROP INDEX events_by_shop;
CREATE INDEX events_by_shop ON events(shop);
