//! Stock levels per (SKU, warehouse) and the append-only ledger, read side.

use deadpool_postgres::Client;
use ordo_core::auth::Actor;
use ordo_core::inventory::{LedgerEntry, LedgerReason, StockLevel};
use ordo_core::{ProductId, ShopId, Timestamp, WarehouseId};
use ordo_store::{StockTotals, StoreResult};
use tokio_postgres::Row;

use crate::codec::{col, limit, named, parsed, parsed_opt};
use crate::error::db;

pub(crate) const LEVEL_COLUMNS: &str = "sku, warehouse, shop, on_hand, reserved, updated_at";

pub(crate) async fn of_sku(client: &Client, shop: ShopId, sku: ProductId) -> StoreResult<Vec<StockLevel>> {
    let sql = format!("SELECT {LEVEL_COLUMNS} FROM stock WHERE shop = $1 AND sku = $2 ORDER BY warehouse");
    let stmt = client.prepare_cached(&sql).await.map_err(db)?;
    let rows = client
        .query(&stmt, &[&shop.to_string(), &sku.to_string()])
        .await
        .map_err(db)?;
    rows.iter().map(decode_level).collect()
}

pub(crate) async fn list(
    client: &Client,
    shop: ShopId,
    warehouse: Option<WarehouseId>,
) -> StoreResult<Vec<StockLevel>> {
    let rows = match warehouse {
        Some(w) => {
            let sql =
                format!("SELECT {LEVEL_COLUMNS} FROM stock WHERE shop = $1 AND warehouse = $2 ORDER BY sku, warehouse");
            let stmt = client.prepare_cached(&sql).await.map_err(db)?;
            client
                .query(&stmt, &[&shop.to_string(), &w.to_string()])
                .await
                .map_err(db)?
        }
        None => {
            let sql = format!("SELECT {LEVEL_COLUMNS} FROM stock WHERE shop = $1 ORDER BY sku, warehouse");
            let stmt = client.prepare_cached(&sql).await.map_err(db)?;
            client.query(&stmt, &[&shop.to_string()]).await.map_err(db)?
        }
    };
    rows.iter().map(decode_level).collect()
}

pub(crate) fn decode_level(row: &Row) -> StoreResult<StockLevel> {
    Ok(StockLevel {
        shop: parsed(row, "shop")?,
        sku: parsed(row, "sku")?,
        warehouse: parsed(row, "warehouse")?,
        on_hand: col(row, "on_hand")?,
        reserved: col(row, "reserved")?,
        updated_at: Timestamp(col(row, "updated_at")?),
    })
}

pub(crate) async fn ledger(
    client: &Client,
    shop: ShopId,
    sku: ProductId,
    after: i64,
    max: u32,
) -> StoreResult<Vec<(i64, LedgerEntry)>> {
    let stmt = client
        .prepare_cached(
            "SELECT seq, shop, sku, warehouse, on_hand_delta, reserved_delta, reason, order_id, actor, note, at
             FROM stock_ledger WHERE shop = $1 AND sku = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .await
        .map_err(db)?;
    let rows = client
        .query(&stmt, &[&shop.to_string(), &sku.to_string(), &after, &limit(max)])
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| Ok((col(row, "seq")?, decode_ledger(row)?)))
        .collect()
}

fn decode_ledger(row: &Row) -> StoreResult<LedgerEntry> {
    Ok(LedgerEntry {
        shop: parsed(row, "shop")?,
        sku: parsed(row, "sku")?,
        warehouse: parsed(row, "warehouse")?,
        on_hand_delta: col(row, "on_hand_delta")?,
        reserved_delta: col(row, "reserved_delta")?,
        reason: named(row, "reason", LedgerReason::parse)?,
        order: parsed_opt(row, "order_id")?,
        actor: Actor(col(row, "actor")?),
        note: col(row, "note")?,
        at: Timestamp(col(row, "at")?),
    })
}

/// Sums over one shop; `SUM(bigint)` is numeric in PostgreSQL, so each is cast back.
pub(crate) async fn totals(client: &Client, shop: ShopId) -> StoreResult<StockTotals> {
    let stmt = client
        .prepare_cached(
            "SELECT
                (SELECT COALESCE(SUM(on_hand), 0)::bigint FROM stock WHERE shop = $1) AS on_hand,
                (SELECT COALESCE(SUM(reserved), 0)::bigint FROM stock WHERE shop = $1) AS reserved,
                (SELECT COALESCE(SUM(on_hand_delta), 0)::bigint FROM stock_ledger WHERE shop = $1) AS ledger_on_hand,
                (SELECT COALESCE(SUM(reserved_delta), 0)::bigint FROM stock_ledger WHERE shop = $1) AS ledger_reserved",
        )
        .await
        .map_err(db)?;
    let row = client.query_one(&stmt, &[&shop.to_string()]).await.map_err(db)?;
    Ok(StockTotals {
        on_hand: col(&row, "on_hand")?,
        reserved: col(&row, "reserved")?,
        ledger_on_hand: col(&row, "ledger_on_hand")?,
        ledger_reserved: col(&row, "ledger_reserved")?,
    })
}
