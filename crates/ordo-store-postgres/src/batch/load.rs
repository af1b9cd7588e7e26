//! Builds the working set a [`LoadRequest`] names, in the order the request
//! documents, with one statement per kind of row whatever the batch size.

use std::collections::BTreeSet;

use ordo_core::batch::{HashMap, HashMapExt, HashSet, HashSetExt};

use deadpool_postgres::Transaction;
use ordo_core::batch::{ExternalRef, IdempotencyKey, IdempotencyRecord, LoadRequest, NoticeKey, WorkingSet};
use ordo_core::catalog::{Product, ShopSettings, Warehouse};
use ordo_core::inventory::{StockKey, StockLevel};
use ordo_core::limits::{Counter, CounterKey};
use ordo_core::order::Order;
use ordo_core::payment::Payment;
use ordo_core::{OrderId, ProductId, ShopId};
use ordo_store::StoreResult;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::codec::{col, json, parsed};
use crate::error::db;
use crate::shops::decode_idempotency;
use crate::stock::decode_level;

pub(super) struct Loaded {
    pub(super) ws: WorkingSet,
    /// Stock rows that exist and are locked; any other level the batch touches is
    /// new and must be inserted.
    pub(super) existing_stock: HashSet<StockKey>,
}

pub(super) async fn load(tx: &Transaction<'_>, req: &LoadRequest) -> StoreResult<Loaded> {
    let mut ws = WorkingSet::default();

    // (a) The shops' settings, shared, before any other lock (a settings change
    // waits for the batches already running and holds off the next ones). Then what
    // names orders indirectly; channel references locked first, so a batch that
    // re-sends another's channel order waits for it and then finds its order.
    share_shop_settings(tx, &req.shops).await?;
    lock_channel_refs(tx, req.external_refs.iter().chain(&req.channel_orders)).await?;
    ws.idempotency = idempotency(tx, &req.idempotency).await?;
    ws.external_refs = external_refs(tx, &req.external_refs).await?;

    // (b) Orders, locked, and their payments (read after the lock, so current).
    let mut order_ids = req.orders.clone();
    order_ids.extend(
        ws.idempotency
            .values()
            .filter_map(|r| r.resource.parse::<OrderId>().ok()),
    );
    order_ids.extend(ws.external_refs.values().copied());
    ws.orders = lock_orders(tx, &order_ids).await?;
    ws.payments = payments(tx, &order_ids).await?;

    // (c) Shops, their warehouses and the named products.
    let mut shops = req.shops.clone();
    shops.extend(ws.orders.values().map(|o| o.shop));
    ws.shops = shop_settings(tx, &shops).await?;
    ws.warehouses = warehouses(tx, &shops).await?;
    ws.products = products(tx, &req.skus).await?;

    // (d) Stock of every SKU in play, at every warehouse, locked.
    let mut skus: BTreeSet<ProductId> = ws.products.values().map(|p| p.id).collect();
    skus.extend(ws.orders.values().flat_map(|o| o.lines.iter().map(|l| l.sku_id)));
    ws.stock = lock_stock(tx, &skus).await?;
    let existing_stock = ws.stock.keys().copied().collect();

    // (e) Notices already processed.
    ws.notices = notices(tx, &req.notices).await?;

    // (f) Raw channel orders received again, locked.
    ws.channel_orders = crate::channels::lock(tx, &req.channel_orders).await?;

    // (g) Limit counters, locked; they depend on the settings and orders above.
    let demand = req.code_demand(&ws);
    let counters = req.counters(&ws, &demand);
    ws.counters = lock_counters(tx, &counters).await?;

    // (h) Codes the batch may assign, after their pools' counters.
    if !demand.is_empty() {
        ws.codes = crate::codes::lock_available(tx, &demand).await?;
    }
    Ok(Loaded { ws, existing_stock })
}

/// Creates missing counters at zero, then locks them all: a row that did not
/// exist cannot be locked, and two batches must not both read "no uses yet".
async fn lock_counters(tx: &Transaction<'_>, keys: &BTreeSet<CounterKey>) -> StoreResult<HashMap<CounterKey, Counter>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let shops = texts(keys.iter().map(|k| k.shop));
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO counters (shop, name, value, window_start)
             SELECT k.shop, k.name, 0, 0 FROM UNNEST($1::text[], $2::text[]) AS k(shop, name)
             ON CONFLICT (shop, name) DO NOTHING",
        )
        .await
        .map_err(db)?;
    tx.execute(&stmt, &[&shops, &names]).await.map_err(db)?;
    let rows = query(
        tx,
        "SELECT c.shop, c.name, c.value, c.window_start FROM counters c
         JOIN UNNEST($1::text[], $2::text[]) AS k(shop, name) ON c.shop = k.shop AND c.name = k.name
         ORDER BY c.shop, c.name FOR UPDATE OF c",
        &[&shops, &names],
    )
    .await?;
    rows.iter()
        .map(|row| {
            let key = CounterKey {
                shop: parsed(row, "shop")?,
                name: col(row, "name")?,
            };
            let counter = Counter {
                value: col(row, "value")?,
                window_start: ordo_core::Timestamp(col(row, "window_start")?),
            };
            Ok((key, counter))
        })
        .collect()
}

async fn query(tx: &Transaction<'_>, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
    let stmt = tx.prepare_cached(sql).await.map_err(db)?;
    tx.query(&stmt, params).await.map_err(db)
}

fn texts<T: ToString>(items: impl IntoIterator<Item = T>) -> Vec<String> {
    items.into_iter().map(|i| i.to_string()).collect()
}

async fn idempotency(
    tx: &Transaction<'_>,
    keys: &BTreeSet<IdempotencyKey>,
) -> StoreResult<HashMap<IdempotencyKey, IdempotencyRecord>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let scopes: Vec<&str> = keys.iter().map(|(scope, _)| scope.as_str()).collect();
    let names: Vec<&str> = keys.iter().map(|(_, key)| key.as_str()).collect();
    let rows = query(
        tx,
        "SELECT i.scope, i.key, i.request_hash, i.status_code, i.resource, i.created_at
         FROM idempotency i
         JOIN UNNEST($1::text[], $2::text[]) AS k(scope, key) ON i.scope = k.scope AND i.key = k.key",
        &[&scopes, &names],
    )
    .await?;
    rows.iter()
        .map(|row| {
            let record = decode_idempotency(row)?;
            Ok(((record.scope.clone(), record.key.clone()), record))
        })
        .collect()
}

/// The advisory-lock class of channel references (two-key locks do not share a key
/// space with the one-key locks of the event log and migrations).
const CHANNEL_REF_LOCKS: i32 = 0x6f72_6466;

/// Takes a transaction-level advisory lock per (shop, channel, external id), in
/// one sorted order for every batch so two batches never wait on each other in a
/// circle (and before any row lock). Without it, a batch that looks a reference up
/// while the batch placing that order is still open finds nothing, and under READ
/// COMMITTED then sees that batch's stock taken once its row locks free up: a
/// re-sent order would be refused for stock instead of answered as a replay.
async fn lock_channel_refs<'a>(tx: &Transaction<'_>, refs: impl Iterator<Item = &'a ExternalRef>) -> StoreResult<()> {
    let keys: Vec<i32> = refs
        .map(|(shop, channel, external)| {
            lock_key(&[shop.to_string().as_bytes(), channel.as_bytes(), external.as_bytes()])
        })
        .collect();
    take_locks(tx, "pg_advisory_xact_lock", CHANNEL_REF_LOCKS, keys).await
}

/// The advisory-lock class of shop settings. Every batch holds its shops' lock
/// shared, taken before any other lock; a settings change holds it alone
/// (`shops::update_settings`). So no batch decides on settings older than a change
/// and commits after it: the orders a new purchase limit counts from are all there.
const SHOP_SETTINGS_LOCKS: i32 = 0x6f72_6473;

/// A shop's key in [`SHOP_SETTINGS_LOCKS`].
fn shop_lock_key(shop: ShopId) -> i32 {
    lock_key(&[shop.to_string().as_bytes()])
}

async fn share_shop_settings(tx: &Transaction<'_>, shops: &BTreeSet<ShopId>) -> StoreResult<()> {
    let keys = shops.iter().map(|s| shop_lock_key(*s)).collect();
    take_locks(tx, "pg_advisory_xact_lock_shared", SHOP_SETTINGS_LOCKS, keys).await
}

/// A shop's settings lock, alone: for a change of its settings.
pub(crate) async fn hold_shop_settings(tx: &Transaction<'_>, shop: ShopId) -> StoreResult<()> {
    take_locks(
        tx,
        "pg_advisory_xact_lock",
        SHOP_SETTINGS_LOCKS,
        vec![shop_lock_key(shop)],
    )
    .await
}

/// A two-key advisory lock's second key for `parts`. FNV-1a: stable across
/// processes and versions, unlike std's hasher.
fn lock_key(parts: &[&[u8]]) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for part in parts {
        for b in part.iter().chain(&[0]) {
            h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
    }
    h as i32
}

/// Takes the transaction-level locks `(class, key)` with `function`, in one sorted
/// order for every batch so two batches never wait on each other in a circle.
async fn take_locks(tx: &Transaction<'_>, function: &str, class: i32, mut keys: Vec<i32>) -> StoreResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    keys.dedup();
    // Volatile functions in the select list run after the rows are produced, in
    // the array's (sorted) order.
    let sql = format!("SELECT {function}($1, k) FROM UNNEST($2::int4[]) WITH ORDINALITY AS t(k, n) ORDER BY n");
    query(tx, &sql, &[&class, &keys]).await?;
    Ok(())
}

async fn external_refs(
    tx: &Transaction<'_>,
    refs: &BTreeSet<ExternalRef>,
) -> StoreResult<HashMap<ExternalRef, OrderId>> {
    if refs.is_empty() {
        return Ok(HashMap::new());
    }
    let shops = texts(refs.iter().map(|(shop, _, _)| shop));
    let channels: Vec<&str> = refs.iter().map(|(_, channel, _)| channel.as_str()).collect();
    let external_ids: Vec<&str> = refs.iter().map(|(_, _, ext)| ext.as_str()).collect();
    let rows = query(
        tx,
        "SELECT o.shop, o.channel, o.external_id, o.id
         FROM orders o
         JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS r(shop, channel, external_id)
           ON o.shop = r.shop AND o.channel = r.channel AND o.external_id = r.external_id",
        &[&shops, &channels, &external_ids],
    )
    .await?;
    rows.iter()
        .map(|row| {
            let key = (parsed(row, "shop")?, col(row, "channel")?, col(row, "external_id")?);
            Ok((key, parsed(row, "id")?))
        })
        .collect()
}

async fn lock_orders(tx: &Transaction<'_>, ids: &BTreeSet<OrderId>) -> StoreResult<HashMap<OrderId, Order>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = query(
        tx,
        "SELECT doc FROM orders WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
        &[&texts(ids)],
    )
    .await?;
    rows.iter()
        .map(|row| {
            let order: Order = json(row, "doc")?;
            Ok((order.id, order))
        })
        .collect()
}

async fn payments(tx: &Transaction<'_>, orders: &BTreeSet<OrderId>) -> StoreResult<HashMap<OrderId, Vec<Payment>>> {
    let mut by_order: HashMap<OrderId, Vec<Payment>> = HashMap::new();
    if orders.is_empty() {
        return Ok(by_order);
    }
    let rows = query(
        tx,
        "SELECT doc FROM payments WHERE order_id = ANY($1::text[]) ORDER BY id",
        &[&texts(orders)],
    )
    .await?;
    for row in &rows {
        let payment: Payment = json(row, "doc")?;
        by_order.entry(payment.order).or_default().push(payment);
    }
    Ok(by_order)
}

async fn shop_settings(tx: &Transaction<'_>, shops: &BTreeSet<ShopId>) -> StoreResult<HashMap<ShopId, ShopSettings>> {
    if shops.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = query(
        tx,
        "SELECT id, settings FROM shops WHERE id = ANY($1::text[])",
        &[&texts(shops)],
    )
    .await?;
    rows.iter()
        .map(|row| Ok((parsed(row, "id")?, json(row, "settings")?)))
        .collect()
}

async fn warehouses(tx: &Transaction<'_>, shops: &BTreeSet<ShopId>) -> StoreResult<HashMap<ShopId, Vec<Warehouse>>> {
    let mut by_shop: HashMap<ShopId, Vec<Warehouse>> = HashMap::new();
    if shops.is_empty() {
        return Ok(by_shop);
    }
    let rows = query(
        tx,
        "SELECT doc FROM warehouses WHERE shop = ANY($1::text[]) ORDER BY id",
        &[&texts(shops)],
    )
    .await?;
    for row in &rows {
        let warehouse: Warehouse = json(row, "doc")?;
        by_shop.entry(warehouse.shop).or_default().push(warehouse);
    }
    Ok(by_shop)
}

async fn products(
    tx: &Transaction<'_>,
    skus: &BTreeSet<(ShopId, String)>,
) -> StoreResult<HashMap<(ShopId, String), Product>> {
    if skus.is_empty() {
        return Ok(HashMap::new());
    }
    let shops = texts(skus.iter().map(|(shop, _)| shop));
    let codes: Vec<&str> = skus.iter().map(|(_, sku)| sku.as_str()).collect();
    let rows = query(
        tx,
        "SELECT p.doc
         FROM products p
         JOIN UNNEST($1::text[], $2::text[]) AS k(shop, sku) ON p.shop = k.shop AND p.sku = k.sku",
        &[&shops, &codes],
    )
    .await?;
    rows.iter()
        .map(|row| {
            let product: Product = json(row, "doc")?;
            Ok(((product.shop, product.sku.clone()), product))
        })
        .collect()
}

async fn lock_stock(tx: &Transaction<'_>, skus: &BTreeSet<ProductId>) -> StoreResult<HashMap<StockKey, StockLevel>> {
    if skus.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT {} FROM stock WHERE sku = ANY($1::text[]) ORDER BY sku, warehouse FOR UPDATE",
        crate::stock::LEVEL_COLUMNS
    );
    let rows = query(tx, &sql, &[&texts(skus)]).await?;
    rows.iter()
        .map(|row| {
            let level = decode_level(row)?;
            Ok((level.key(), level))
        })
        .collect()
}

async fn notices(tx: &Transaction<'_>, keys: &BTreeSet<NoticeKey>) -> StoreResult<HashSet<NoticeKey>> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let shops = texts(keys.iter().map(|(shop, _, _)| shop));
    let gateways: Vec<&str> = keys.iter().map(|(_, gateway, _)| gateway.as_str()).collect();
    let transactions: Vec<&str> = keys.iter().map(|(_, _, tx_id)| tx_id.as_str()).collect();
    let rows = query(
        tx,
        "SELECT n.shop, n.gateway, n.transaction_id
         FROM payment_notices n
         JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS k(shop, gateway, transaction_id)
           ON n.shop = k.shop AND n.gateway = k.gateway AND n.transaction_id = k.transaction_id",
        &[&shops, &gateways, &transactions],
    )
    .await?;
    rows.iter()
        .map(|row| Ok((parsed(row, "shop")?, col(row, "gateway")?, col(row, "transaction_id")?)))
        .collect()
}
