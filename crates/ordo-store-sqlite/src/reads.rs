//! Read queries. Every one that returns shop data takes the caller's shop.

use ordo_core::auth::{Actor, Role};
use ordo_core::batch::IdempotencyRecord;
use ordo_core::catalog::{Product, Shop, Warehouse};
use ordo_core::event::Event;
use ordo_core::inventory::StockLevel;
use ordo_core::order::Order;
use ordo_core::payment::{Payment, Refund};
use ordo_core::{EventSeq, OrderId, ProductId, ShopId, Timestamp, WarehouseId};
use ordo_store::{ApiKeyRecord, OrderFilter, StockTotals, StoreError};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::codec::{Key, err, from_json, parse};

type R<T> = Result<T, StoreError>;
/// id, shop, role, name, secret_hash, prefix, created_at, revoked_at
type KeyRow = (String, String, String, String, String, String, i64, Option<i64>);
/// seq, shop, subject, kind, payload, actor, at
type EventRow = (i64, Option<Vec<u8>>, String, String, String, String, i64);

/// Collects the JSON `doc` column of every row into values.
fn docs<T: serde::de::DeserializeOwned>(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> R<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(err)?;
    let rows = stmt.query_map(args, |r| r.get::<_, String>(0)).map_err(err)?;
    rows.map(|d| from_json(&d.map_err(err)?)).collect()
}

fn one_doc<T: serde::de::DeserializeOwned>(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> R<T> {
    let doc: Option<String> = conn
        .prepare_cached(sql)
        .map_err(err)?
        .query_row(args, |r| r.get(0))
        .optional()
        .map_err(err)?;
    from_json(&doc.ok_or(StoreError::NotFound)?)
}

fn shop_row(r: &Row<'_>) -> rusqlite::Result<(String, String, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_shop((id, name, settings, at): (String, String, String, i64)) -> R<Shop> {
    Ok(Shop {
        id: parse(&id)?,
        name,
        settings: from_json(&settings)?,
        created_at: Timestamp(at),
    })
}

pub fn get_shop(conn: &Connection, id: ShopId) -> R<Shop> {
    let row = conn
        .prepare_cached("SELECT id, name, settings, created_at FROM shops WHERE id = ?1")
        .map_err(err)?
        .query_row([id.to_string()], shop_row)
        .optional()
        .map_err(err)?
        .ok_or(StoreError::NotFound)?;
    to_shop(row)
}

pub fn list_shops(conn: &Connection) -> R<Vec<Shop>> {
    let mut stmt = conn
        .prepare_cached("SELECT id, name, settings, created_at FROM shops ORDER BY id")
        .map_err(err)?;
    let rows = stmt.query_map([], shop_row).map_err(err)?;
    rows.map(|r| to_shop(r.map_err(err)?)).collect()
}

const KEY_COLUMNS: &str = "id, shop, role, name, secret_hash, prefix, created_at, revoked_at";

fn key_row(r: &Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn to_key(
    (id, shop, role, name, secret_hash, prefix, at, revoked): (
        String,
        String,
        String,
        String,
        String,
        String,
        i64,
        Option<i64>,
    ),
) -> R<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: parse(&id)?,
        shop: parse(&shop)?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("unknown role {role}")))?,
        name,
        secret_hash,
        prefix,
        created_at: Timestamp(at),
        revoked_at: revoked.map(Timestamp),
    })
}

pub fn find_api_key(conn: &Connection, hash: &str) -> R<Option<ApiKeyRecord>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_hash = ?1");
    let row = conn
        .prepare_cached(&sql)
        .map_err(err)?
        .query_row([hash], key_row)
        .optional()
        .map_err(err)?;
    row.map(to_key).transpose()
}

pub fn list_api_keys(conn: &Connection, shop: ShopId) -> R<Vec<ApiKeyRecord>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE shop = ?1 ORDER BY id");
    let mut stmt = conn.prepare_cached(&sql).map_err(err)?;
    let rows = stmt.query_map([shop.to_string()], key_row).map_err(err)?;
    rows.map(|r| to_key(r.map_err(err)?)).collect()
}

pub fn gateway_secret(conn: &Connection, shop: ShopId, gateway: &str) -> R<Option<String>> {
    conn.prepare_cached("SELECT secret FROM gateway_secrets WHERE shop = ?1 AND gateway = ?2")
        .map_err(err)?
        .query_row(params![shop.to_string(), gateway], |r| r.get(0))
        .optional()
        .map_err(err)
}

pub fn get_product(conn: &Connection, shop: ShopId, id: ProductId) -> R<Product> {
    one_doc(
        conn,
        "SELECT doc FROM products WHERE id = ?1 AND shop = ?2",
        params![id.to_string(), shop.to_string()],
    )
}

pub fn find_product_by_sku(conn: &Connection, shop: ShopId, sku: &str) -> R<Option<Product>> {
    match one_doc(
        conn,
        "SELECT doc FROM products WHERE shop = ?1 AND sku = ?2",
        params![shop.to_string(), sku],
    ) {
        Ok(p) => Ok(Some(p)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn list_products(conn: &Connection, shop: ShopId, cursor: Option<ProductId>, limit: u32) -> R<Vec<Product>> {
    let after = cursor.map(|c| c.to_string()).unwrap_or_default();
    docs(
        conn,
        "SELECT doc FROM products WHERE shop = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        params![shop.to_string(), after, limit],
    )
}

pub fn list_warehouses(conn: &Connection, shop: ShopId) -> R<Vec<Warehouse>> {
    docs(
        conn,
        "SELECT doc FROM warehouses WHERE shop = ?1 ORDER BY id",
        [shop.to_string()],
    )
}

fn stock_rows(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> R<Vec<StockLevel>> {
    let mut stmt = conn.prepare_cached(sql).map_err(err)?;
    let rows = stmt
        .query_map(args, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .map_err(err)?;
    rows.map(|row| {
        let (shop, sku, warehouse, on_hand, reserved, at) = row.map_err(err)?;
        Ok(StockLevel {
            shop: parse(&shop)?,
            sku: parse(&sku)?,
            warehouse: parse(&warehouse)?,
            on_hand,
            reserved,
            updated_at: Timestamp(at),
        })
    })
    .collect()
}

pub fn stock_of(conn: &Connection, shop: ShopId, sku: ProductId) -> R<Vec<StockLevel>> {
    stock_rows(
        conn,
        "SELECT shop, sku, warehouse, on_hand, reserved, updated_at FROM stock WHERE shop = ?1 AND sku = ?2 ORDER BY warehouse",
        params![shop.to_string(), sku.to_string()],
    )
}

pub fn list_stock(conn: &Connection, shop: ShopId, warehouse: Option<WarehouseId>) -> R<Vec<StockLevel>> {
    match warehouse {
        Some(w) => stock_rows(
            conn,
            "SELECT shop, sku, warehouse, on_hand, reserved, updated_at FROM stock WHERE shop = ?1 AND warehouse = ?2 ORDER BY sku",
            params![shop.to_string(), w.to_string()],
        ),
        None => stock_rows(
            conn,
            "SELECT shop, sku, warehouse, on_hand, reserved, updated_at FROM stock WHERE shop = ?1 ORDER BY sku, warehouse",
            [shop.to_string()],
        ),
    }
}

pub fn get_order(conn: &Connection, shop: ShopId, id: OrderId) -> R<Order> {
    one_doc(
        conn,
        "SELECT doc FROM orders WHERE id = ?1 AND shop = ?2",
        params![id.key(), shop.key()],
    )
}

pub fn list_orders(conn: &Connection, shop: ShopId, f: &OrderFilter) -> R<Vec<Order>> {
    let mut sql = String::from("SELECT doc FROM orders WHERE shop = ?");
    let mut args: Vec<Value> = vec![Value::Blob(shop.key().to_vec())];
    if let Some(status) = f.status {
        sql.push_str(" AND status = ?");
        args.push(Value::Text(status.as_str().into()));
    }
    if let Some(from) = f.created_from {
        sql.push_str(" AND created_at >= ?");
        args.push(Value::Integer(from.0));
    }
    if let Some(to) = f.created_to {
        sql.push_str(" AND created_at <= ?");
        args.push(Value::Integer(to.0));
    }
    if let Some(cursor) = f.cursor {
        sql.push_str(" AND id < ?");
        args.push(Value::Blob(cursor.key().to_vec()));
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    args.push(Value::Integer(i64::from(f.limit)));
    docs(conn, &sql, params_from_iter(args))
}

pub fn payments_of(conn: &Connection, shop: ShopId, order: OrderId) -> R<Vec<Payment>> {
    docs(
        conn,
        "SELECT doc FROM payments WHERE order_id = ?1 AND shop = ?2 ORDER BY id",
        params![order.key(), shop.key()],
    )
}

pub fn refunds_of(conn: &Connection, shop: ShopId, order: OrderId) -> R<Vec<Refund>> {
    docs(
        conn,
        "SELECT doc FROM refunds WHERE order_id = ?1 AND shop = ?2 ORDER BY id",
        params![order.to_string(), shop.to_string()],
    )
}

/// Orders past their payment deadline. Both timer queries walk one index
/// (`orders_next_timer`, migration 0011) on an order's next timer: its reminder
/// while one is unsent, its deadline after.
pub const DUE_UNPAID: &str = "SELECT shop, id FROM orders WHERE coalesce(payment_reminder_at, payment_due_at) <= ?1 \
     AND payment_due_at <= ?1 AND status = 'pending_payment' \
     ORDER BY coalesce(payment_reminder_at, payment_due_at) LIMIT ?2";

/// Orders whose payment reminder is due and unsent.
pub const DUE_REMINDERS: &str = "SELECT shop, id FROM orders WHERE coalesce(payment_reminder_at, payment_due_at) <= ?1 \
     AND payment_due_at IS NOT NULL AND payment_reminder_at IS NOT NULL AND status = 'pending_payment' \
     ORDER BY coalesce(payment_reminder_at, payment_due_at) LIMIT ?2";

pub fn due_unpaid(conn: &Connection, now: Timestamp, limit: u32) -> R<Vec<(ShopId, OrderId)>> {
    due_orders(conn, DUE_UNPAID, now, limit)
}

pub fn due_reminders(conn: &Connection, now: Timestamp, limit: u32) -> R<Vec<(ShopId, OrderId)>> {
    due_orders(conn, DUE_REMINDERS, now, limit)
}

/// (shop, order) pairs a timer query returns.
fn due_orders(conn: &Connection, sql: &str, now: Timestamp, limit: u32) -> R<Vec<(ShopId, OrderId)>> {
    let mut stmt = conn.prepare_cached(sql).map_err(err)?;
    let rows = stmt
        .query_map(params![now.0, limit], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .map_err(err)?;
    rows.map(|row| {
        let (shop, id) = row.map_err(err)?;
        Ok((ShopId::from_key(&shop)?, OrderId::from_key(&id)?))
    })
    .collect()
}

pub fn get_idempotency(conn: &Connection, scope: &str, key: &str) -> R<Option<IdempotencyRecord>> {
    conn.prepare_cached(
        "SELECT request_hash, status_code, resource, created_at FROM idempotency WHERE scope = ?1 AND key = ?2",
    )
    .map_err(err)?
    .query_row(params![scope, key], |r| {
        Ok(IdempotencyRecord {
            scope: scope.to_string(),
            key: key.to_string(),
            request_hash: r.get(0)?,
            status_code: r.get(1)?,
            resource: r.get(2)?,
            created_at: Timestamp(r.get(3)?),
        })
    })
    .optional()
    .map_err(err)
}

/// Events after `after` up to `upto` (the last durable one), oldest first.
pub fn events_after(conn: &Connection, shop: Option<ShopId>, after: EventSeq, upto: i64, limit: u32) -> R<Vec<Event>> {
    const COLS: &str = "seq, shop, subject, kind, payload, actor, at";
    let map = |r: &Row<'_>| -> rusqlite::Result<EventRow> {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    };
    let rows: Vec<_> = match shop {
        Some(s) => {
            let sql =
                format!("SELECT {COLS} FROM events WHERE shop = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4");
            let mut stmt = conn.prepare_cached(&sql).map_err(err)?;
            stmt.query_map(params![s.key(), after, upto, limit], map)
                .map_err(err)?
                .collect::<Result<_, _>>()
                .map_err(err)?
        }
        None => {
            let sql = format!("SELECT {COLS} FROM events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3");
            let mut stmt = conn.prepare_cached(&sql).map_err(err)?;
            stmt.query_map(params![after, upto, limit], map)
                .map_err(err)?
                .collect::<Result<_, _>>()
                .map_err(err)?
        }
    };
    rows.into_iter()
        .map(|(seq, shop, subject, kind, payload, actor, at)| {
            Ok(Event {
                seq,
                shop: shop.as_deref().map(ShopId::from_key).transpose()?,
                subject,
                kind,
                payload: from_json(&payload)?,
                actor: Actor(actor),
                at: Timestamp(at),
            })
        })
        .collect()
}

pub fn stock_totals(conn: &Connection, shop: ShopId) -> R<StockTotals> {
    let key = shop.to_string();
    let (on_hand, reserved) = conn
        .query_row(
            "SELECT COALESCE(SUM(on_hand), 0), COALESCE(SUM(reserved), 0) FROM stock WHERE shop = ?1",
            [&key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(err)?;
    let (ledger_on_hand, ledger_reserved) = conn
        .query_row(
            "SELECT COALESCE(SUM(on_hand_delta), 0), COALESCE(SUM(reserved_delta), 0) FROM stock_ledger WHERE shop = ?1",
            [shop.key()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(err)?;
    Ok(StockTotals {
        on_hand,
        reserved,
        ledger_on_hand,
        ledger_reserved,
    })
}
