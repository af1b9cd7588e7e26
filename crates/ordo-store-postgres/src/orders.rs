//! Orders, payments and refunds, read side. Every query takes the caller's shop.

use deadpool_postgres::Client;
use ordo_core::order::Order;
use ordo_core::payment::{Payment, Refund};
use ordo_core::{OrderId, ShopId, Timestamp};
use ordo_store::{OrderFilter, StoreError, StoreResult};
use tokio_postgres::types::ToSql;

use crate::codec::{limit, parsed};
use crate::docs::{fetch_doc, fetch_docs};
use crate::error::db;

pub(crate) async fn get(client: &Client, shop: ShopId, id: OrderId) -> StoreResult<Order> {
    let sql = "SELECT doc FROM orders WHERE id = $1 AND shop = $2";
    fetch_doc(client, sql, &[&id.to_string(), &shop.to_string()])
        .await?
        .ok_or(StoreError::NotFound)
}

/// Newest first. Only the filters given become SQL conditions, so each combination
/// is its own prepared statement that can use the (shop, id) or (shop, status, id)
/// index instead of a catch-all `$n IS NULL OR …` plan.
pub(crate) async fn list(client: &Client, shop: ShopId, filter: &OrderFilter) -> StoreResult<Vec<Order>> {
    let mut sql = String::from("SELECT doc FROM orders WHERE shop = $1");
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(shop.to_string())];
    let mut condition = |sql_part: &str, value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        sql.push_str(&format!(" AND {sql_part} ${}", params.len()));
    };
    if let Some(status) = filter.status {
        condition("status =", Box::new(status.as_str()));
    }
    if let Some(from) = filter.created_from {
        condition("created_at >=", Box::new(from.millis()));
    }
    if let Some(to) = filter.created_to {
        condition("created_at <=", Box::new(to.millis()));
    }
    if let Some(cursor) = filter.cursor {
        condition("id <", Box::new(cursor.to_string()));
    }
    params.push(Box::new(limit(filter.limit)));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", params.len()));

    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    fetch_docs(client, &sql, &refs).await
}

pub(crate) async fn payments(client: &Client, shop: ShopId, order: OrderId) -> StoreResult<Vec<Payment>> {
    let sql = "SELECT doc FROM payments WHERE order_id = $1 AND shop = $2 ORDER BY id";
    fetch_docs(client, sql, &[&order.to_string(), &shop.to_string()]).await
}

pub(crate) async fn refunds(client: &Client, shop: ShopId, order: OrderId) -> StoreResult<Vec<Refund>> {
    let sql = "SELECT doc FROM refunds WHERE order_id = $1 AND shop = $2 ORDER BY id";
    fetch_docs(client, sql, &[&order.to_string(), &shop.to_string()]).await
}

/// Unpaid orders past their deadline, across every shop, oldest deadline first.
pub(crate) async fn due_unpaid(client: &Client, now: Timestamp, max: u32) -> StoreResult<Vec<(ShopId, OrderId)>> {
    due_orders(
        client,
        "SELECT shop, id FROM orders
         WHERE payment_due_at <= $1 AND status = 'pending_payment'
         ORDER BY payment_due_at, id LIMIT $2",
        now,
        max,
    )
    .await
}

/// Unpaid orders whose payment reminder is due, earliest first.
pub(crate) async fn due_reminders(client: &Client, now: Timestamp, max: u32) -> StoreResult<Vec<(ShopId, OrderId)>> {
    due_orders(
        client,
        "SELECT shop, id FROM orders
         WHERE payment_reminder_at <= $1 AND status = 'pending_payment'
         ORDER BY payment_reminder_at, id LIMIT $2",
        now,
        max,
    )
    .await
}

/// (shop, order) pairs a timer query returns.
async fn due_orders(client: &Client, sql: &str, now: Timestamp, max: u32) -> StoreResult<Vec<(ShopId, OrderId)>> {
    let stmt = client.prepare_cached(sql).await.map_err(db)?;
    let rows = client.query(&stmt, &[&now.millis(), &limit(max)]).await.map_err(db)?;
    rows.iter()
        .map(|r| Ok((parsed(r, "shop")?, parsed(r, "id")?)))
        .collect()
}
