//! Writes a batch's [`Changes`]: one multi-row statement per kind of change, each
//! passing its rows as parallel arrays to `UNNEST`, so 1,000 orders cost the same
//! number of round trips as one.

use ordo_core::batch::HashSet;

use deadpool_postgres::Transaction;
use ordo_core::batch::{Changes, IdempotencyRecord, NoticeRecord};
use ordo_core::inventory::{LedgerEntry, StockKey, StockLevel};
use ordo_core::limits::{Counter, CounterKey};
use ordo_core::order::Order;
use ordo_core::payment::{Payment, Refund};
use ordo_store::{StoreError, StoreResult};
use tokio_postgres::types::ToSql;

use crate::codec::to_json;
use crate::error::db;

pub(super) async fn persist(
    tx: &Transaction<'_>,
    changes: &Changes,
    existing_stock: &HashSet<StockKey>,
) -> StoreResult<()> {
    insert_orders(tx, &changes.new_orders).await?;
    update_orders(tx, &changes.updated_orders).await?;
    let (known, new): (Vec<&StockLevel>, Vec<&StockLevel>) =
        changes.stock.iter().partition(|l| existing_stock.contains(&l.key()));
    update_stock(tx, &known).await?;
    insert_stock(tx, &new).await?;
    insert_ledger(tx, &changes.ledger).await?;
    insert_payments(tx, &changes.new_payments).await?;
    update_payments(tx, &changes.updated_payments).await?;
    insert_refunds(tx, &changes.refunds).await?;
    insert_notices(tx, &changes.notices).await?;
    insert_idempotency(tx, &changes.idempotency).await?;
    update_counters(tx, &changes.counters).await?;
    crate::channels::upsert(tx, &changes.channel_orders).await?;
    crate::codes::assign(tx, &changes.assigned_codes).await?;
    Ok(())
}

/// Every counter a batch changes was created (if missing) and locked when loaded.
async fn update_counters(tx: &Transaction<'_>, counters: &[(CounterKey, Counter)]) -> StoreResult<()> {
    if counters.is_empty() {
        return Ok(());
    }
    let shops: Vec<String> = counters.iter().map(|(k, _)| k.shop.to_string()).collect();
    let names: Vec<&str> = counters.iter().map(|(k, _)| k.name.as_str()).collect();
    let values: Vec<i64> = counters.iter().map(|(_, c)| c.value).collect();
    let windows: Vec<i64> = counters.iter().map(|(_, c)| c.window_start.0).collect();
    let updated = execute(
        tx,
        "UPDATE counters SET value = u.value, window_start = u.window_start
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[]) AS u(shop, name, value, window_start)
         WHERE counters.shop = u.shop AND counters.name = u.name",
        &[&shops, &names, &values, &windows],
    )
    .await?;
    expect_rows("counters", counters.len(), updated)
}

async fn execute(tx: &Transaction<'_>, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
    let stmt = tx.prepare_cached(sql).await.map_err(db)?;
    tx.execute(&stmt, params).await.map_err(db)
}

/// Rows this batch loaded and locked cannot vanish, so a short count is a bug.
fn expect_rows(what: &str, expected: usize, got: u64) -> StoreResult<()> {
    if u64::try_from(expected).is_ok_and(|e| e == got) {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "expected to write {expected} {what}, wrote {got}"
        )))
    }
}

fn docs<T: serde::Serialize>(items: &[T]) -> StoreResult<Vec<String>> {
    items.iter().map(to_json).collect()
}

async fn insert_orders(tx: &Transaction<'_>, orders: &[Order]) -> StoreResult<()> {
    if orders.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = orders.iter().map(|o| o.id.to_string()).collect();
    let shops: Vec<String> = orders.iter().map(|o| o.shop.to_string()).collect();
    let statuses: Vec<&str> = orders.iter().map(|o| o.status.as_str()).collect();
    let channels: Vec<&str> = orders.iter().map(|o| o.channel.as_str()).collect();
    let external_ids: Vec<Option<&str>> = orders.iter().map(|o| o.external_id.as_deref()).collect();
    let created: Vec<i64> = orders.iter().map(|o| o.created_at.millis()).collect();
    let due: Vec<Option<i64>> = orders.iter().map(|o| o.payment_due_at.map(|t| t.millis())).collect();
    let remind: Vec<Option<i64>> = orders
        .iter()
        .map(|o| o.payment_reminder_at.map(|t| t.millis()))
        .collect();
    let docs = docs(orders)?;
    execute(
        tx,
        "INSERT INTO orders (id, shop, status, channel, external_id, created_at, payment_due_at, doc, payment_reminder_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[],
                              $8::text[], $9::int8[])",
        &[&ids, &shops, &statuses, &channels, &external_ids, &created, &due, &docs, &remind],
    )
    .await?;
    Ok(())
}

/// Rewrites stored orders: the columns lists filter on and their documents.
pub(crate) async fn update_orders(tx: &Transaction<'_>, orders: &[Order]) -> StoreResult<()> {
    if orders.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = orders.iter().map(|o| o.id.to_string()).collect();
    let statuses: Vec<&str> = orders.iter().map(|o| o.status.as_str()).collect();
    let due: Vec<Option<i64>> = orders.iter().map(|o| o.payment_due_at.map(|t| t.millis())).collect();
    let remind: Vec<Option<i64>> = orders
        .iter()
        .map(|o| o.payment_reminder_at.map(|t| t.millis()))
        .collect();
    let docs = docs(orders)?;
    let updated = execute(
        tx,
        "UPDATE orders SET status = u.status, payment_due_at = u.payment_due_at, doc = u.doc,
                payment_reminder_at = u.payment_reminder_at
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[])
              AS u(id, status, payment_due_at, doc, payment_reminder_at)
         WHERE orders.id = u.id",
        &[&ids, &statuses, &due, &docs, &remind],
    )
    .await?;
    expect_rows("orders", orders.len(), updated)
}

struct StockColumns {
    skus: Vec<String>,
    warehouses: Vec<String>,
    shops: Vec<String>,
    on_hand: Vec<i64>,
    reserved: Vec<i64>,
    updated_at: Vec<i64>,
}

impl StockColumns {
    fn of(levels: &[&StockLevel]) -> Self {
        StockColumns {
            skus: levels.iter().map(|l| l.sku.to_string()).collect(),
            warehouses: levels.iter().map(|l| l.warehouse.to_string()).collect(),
            shops: levels.iter().map(|l| l.shop.to_string()).collect(),
            on_hand: levels.iter().map(|l| l.on_hand).collect(),
            reserved: levels.iter().map(|l| l.reserved).collect(),
            updated_at: levels.iter().map(|l| l.updated_at.millis()).collect(),
        }
    }
}

/// Levels that existed when loaded are locked: overwrite them with their final values.
async fn update_stock(tx: &Transaction<'_>, levels: &[&StockLevel]) -> StoreResult<()> {
    if levels.is_empty() {
        return Ok(());
    }
    let c = StockColumns::of(levels);
    let updated = execute(
        tx,
        "UPDATE stock SET on_hand = u.on_hand, reserved = u.reserved, updated_at = u.updated_at
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[])
              AS u(sku, warehouse, on_hand, reserved, updated_at)
         WHERE stock.sku = u.sku AND stock.warehouse = u.warehouse",
        &[&c.skus, &c.warehouses, &c.on_hand, &c.reserved, &c.updated_at],
    )
    .await?;
    expect_rows("stock levels", levels.len(), updated)
}

/// Levels that did not exist were computed from zero with no row to lock; if a
/// concurrent batch created one meanwhile, overwriting it would lose its change, so
/// the batch is retried instead and will then load (and lock) that row.
async fn insert_stock(tx: &Transaction<'_>, levels: &[&StockLevel]) -> StoreResult<()> {
    if levels.is_empty() {
        return Ok(());
    }
    let c = StockColumns::of(levels);
    let inserted = execute(
        tx,
        "INSERT INTO stock (sku, warehouse, shop, on_hand, reserved, updated_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[])
         ON CONFLICT (sku, warehouse) DO NOTHING",
        &[&c.skus, &c.warehouses, &c.shops, &c.on_hand, &c.reserved, &c.updated_at],
    )
    .await?;
    if u64::try_from(levels.len()).is_ok_and(|n| n == inserted) {
        Ok(())
    } else {
        Err(StoreError::Retry(
            "a stock level was created by a concurrent batch".into(),
        ))
    }
}

/// Ledger entries keep the order the batch made them in (`seq` follows `n`).
async fn insert_ledger(tx: &Transaction<'_>, entries: &[LedgerEntry]) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let shops: Vec<String> = entries.iter().map(|e| e.shop.to_string()).collect();
    let skus: Vec<String> = entries.iter().map(|e| e.sku.to_string()).collect();
    let warehouses: Vec<String> = entries.iter().map(|e| e.warehouse.to_string()).collect();
    let on_hand: Vec<i64> = entries.iter().map(|e| e.on_hand_delta).collect();
    let reserved: Vec<i64> = entries.iter().map(|e| e.reserved_delta).collect();
    let reasons: Vec<&str> = entries.iter().map(|e| e.reason.as_str()).collect();
    let orders: Vec<Option<String>> = entries.iter().map(|e| e.order.map(|o| o.to_string())).collect();
    let actors: Vec<&str> = entries.iter().map(|e| e.actor.0.as_str()).collect();
    let notes: Vec<Option<&str>> = entries.iter().map(|e| e.note.as_deref()).collect();
    let ats: Vec<i64> = entries.iter().map(|e| e.at.millis()).collect();
    execute(
        tx,
        "INSERT INTO stock_ledger
             (shop, sku, warehouse, on_hand_delta, reserved_delta, reason, order_id, actor, note, at)
         SELECT shop, sku, warehouse, on_hand_delta, reserved_delta, reason, order_id, actor, note, at
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::text[],
                     $8::text[], $9::text[], $10::int8[])
              WITH ORDINALITY
              AS e(shop, sku, warehouse, on_hand_delta, reserved_delta, reason, order_id, actor, note, at, n)
         ORDER BY n",
        &[
            &shops,
            &skus,
            &warehouses,
            &on_hand,
            &reserved,
            &reasons,
            &orders,
            &actors,
            &notes,
            &ats,
        ],
    )
    .await?;
    Ok(())
}

async fn insert_payments(tx: &Transaction<'_>, payments: &[Payment]) -> StoreResult<()> {
    if payments.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = payments.iter().map(|p| p.id.to_string()).collect();
    let shops: Vec<String> = payments.iter().map(|p| p.shop.to_string()).collect();
    let orders: Vec<String> = payments.iter().map(|p| p.order.to_string()).collect();
    let statuses: Vec<&str> = payments.iter().map(|p| p.status.as_str()).collect();
    let docs = docs(payments)?;
    execute(
        tx,
        "INSERT INTO payments (id, shop, order_id, status, doc)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])",
        &[&ids, &shops, &orders, &statuses, &docs],
    )
    .await?;
    Ok(())
}

async fn update_payments(tx: &Transaction<'_>, payments: &[Payment]) -> StoreResult<()> {
    if payments.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = payments.iter().map(|p| p.id.to_string()).collect();
    let statuses: Vec<&str> = payments.iter().map(|p| p.status.as_str()).collect();
    let docs = docs(payments)?;
    let updated = execute(
        tx,
        "UPDATE payments SET status = u.status, doc = u.doc
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(id, status, doc)
         WHERE payments.id = u.id",
        &[&ids, &statuses, &docs],
    )
    .await?;
    expect_rows("payments", payments.len(), updated)
}

async fn insert_refunds(tx: &Transaction<'_>, refunds: &[Refund]) -> StoreResult<()> {
    if refunds.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = refunds.iter().map(|r| r.id.to_string()).collect();
    let shops: Vec<String> = refunds.iter().map(|r| r.shop.to_string()).collect();
    let orders: Vec<String> = refunds.iter().map(|r| r.order.to_string()).collect();
    let payments: Vec<String> = refunds.iter().map(|r| r.payment.to_string()).collect();
    let amounts: Vec<i64> = refunds.iter().map(|r| r.amount_minor).collect();
    let docs = docs(refunds)?;
    execute(
        tx,
        "INSERT INTO refunds (id, shop, order_id, payment_id, amount_minor, doc)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[])",
        &[&ids, &shops, &orders, &payments, &amounts, &docs],
    )
    .await?;
    Ok(())
}

async fn insert_notices(tx: &Transaction<'_>, notices: &[NoticeRecord]) -> StoreResult<()> {
    if notices.is_empty() {
        return Ok(());
    }
    let shops: Vec<String> = notices.iter().map(|n| n.shop.to_string()).collect();
    let gateways: Vec<&str> = notices.iter().map(|n| n.gateway.as_str()).collect();
    let transactions: Vec<&str> = notices.iter().map(|n| n.transaction_id.as_str()).collect();
    let orders: Vec<String> = notices.iter().map(|n| n.order.to_string()).collect();
    let succeeded: Vec<bool> = notices.iter().map(|n| n.succeeded).collect();
    let amounts: Vec<i64> = notices.iter().map(|n| n.amount_minor).collect();
    let currencies: Vec<&str> = notices.iter().map(|n| n.currency.as_str()).collect();
    let ats: Vec<i64> = notices.iter().map(|n| n.at.millis()).collect();
    execute(
        tx,
        "INSERT INTO payment_notices
             (shop, gateway, transaction_id, order_id, succeeded, amount_minor, currency, at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::int8[], $7::text[],
                              $8::int8[])",
        &[
            &shops,
            &gateways,
            &transactions,
            &orders,
            &succeeded,
            &amounts,
            &currencies,
            &ats,
        ],
    )
    .await?;
    Ok(())
}

async fn insert_idempotency(tx: &Transaction<'_>, records: &[IdempotencyRecord]) -> StoreResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let scopes: Vec<&str> = records.iter().map(|r| r.scope.as_str()).collect();
    let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    let hashes: Vec<&str> = records.iter().map(|r| r.request_hash.as_str()).collect();
    let statuses: Vec<i32> = records.iter().map(|r| i32::from(r.status_code)).collect();
    let resources: Vec<&str> = records.iter().map(|r| r.resource.as_str()).collect();
    let created: Vec<i64> = records.iter().map(|r| r.created_at.millis()).collect();
    execute(
        tx,
        "INSERT INTO idempotency (scope, key, request_hash, status_code, resource, created_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::int8[])",
        &[&scopes, &keys, &hashes, &statuses, &resources, &created],
    )
    .await?;
    Ok(())
}
