//! One group-commit transaction: load the working set, let the core decide,
//! persist the changes and events, commit.

use std::collections::BTreeSet;

use ordo_core::batch::{Changes, IdempotencyRecord, LoadRequest, WorkingSet};
use ordo_core::catalog::{Product, ShopSettings, Warehouse};
use ordo_core::inventory::{StockKey, StockLevel};
use ordo_core::limits::Counter;
use ordo_core::order::Order;
use ordo_core::payment::Payment;
use ordo_core::{OrderId, ProductId, ShopId, Timestamp};
use ordo_store::{Committed, Decide, StoreError};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::codec::{Key, err, from_json, insert_encoded_events, insert_rows, parse, to_json};

pub fn run(conn: &mut Connection, request: &LoadRequest, decide: Decide) -> Result<Committed, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let mut ws = load(&tx, request)?;
    let decided = decide(&mut ws);
    let last_event = persist(&tx, &decided.changes)?;
    tx.commit().map_err(err)?;
    Ok(Committed {
        outcomes: decided.outcomes,
        last_event,
    })
}

fn load(conn: &Connection, req: &LoadRequest) -> Result<WorkingSet, StoreError> {
    let mut ws = WorkingSet::default();
    let mut order_ids: BTreeSet<OrderId> = req.orders.clone();

    let mut idem = conn
        .prepare_cached(
            "SELECT request_hash, status_code, resource, created_at FROM idempotency WHERE scope = ?1 AND key = ?2",
        )
        .map_err(err)?;
    for (scope, key) in &req.idempotency {
        let row = idem
            .query_row(params![scope, key], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u16>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .optional()
            .map_err(err)?;
        if let Some((request_hash, status_code, resource, at)) = row {
            if let Ok(id) = resource.parse::<OrderId>() {
                order_ids.insert(id);
            }
            let rec = IdempotencyRecord {
                scope: scope.clone(),
                key: key.clone(),
                request_hash,
                status_code,
                resource,
                created_at: Timestamp(at),
            };
            ws.idempotency.insert((scope.clone(), key.clone()), rec);
        }
    }

    let mut ext = conn
        .prepare_cached("SELECT id FROM orders WHERE shop = ?1 AND channel = ?2 AND external_id = ?3")
        .map_err(err)?;
    for (shop, channel, external) in &req.external_refs {
        let id: Option<Vec<u8>> = ext
            .query_row(params![shop.key(), channel, external], |r| r.get(0))
            .optional()
            .map_err(err)?;
        if let Some(id) = id {
            let id = OrderId::from_key(&id)?;
            ws.external_refs.insert((*shop, channel.clone(), external.clone()), id);
            order_ids.insert(id);
        }
    }

    let mut shops: BTreeSet<ShopId> = req.shops.clone();
    let mut sku_ids: BTreeSet<ProductId> = BTreeSet::new();
    let mut get_order = conn
        .prepare_cached("SELECT doc FROM orders WHERE id = ?1")
        .map_err(err)?;
    let mut get_payments = conn
        .prepare_cached("SELECT doc FROM payments WHERE order_id = ?1 ORDER BY id")
        .map_err(err)?;
    for id in &order_ids {
        let key = id.key();
        let doc: Option<String> = get_order.query_row([&key], |r| r.get(0)).optional().map_err(err)?;
        let Some(doc) = doc else { continue };
        let order: Order = from_json(&doc)?;
        shops.insert(order.shop);
        sku_ids.extend(order.lines.iter().map(|l| l.sku_id));
        let payments = get_payments
            .query_map([&key], |r| r.get::<_, String>(0))
            .map_err(err)?
            .map(|d| from_json::<Payment>(&d.map_err(err)?))
            .collect::<Result<Vec<_>, _>>()?;
        ws.payments.insert(*id, payments);
        ws.orders.insert(*id, order);
    }

    let mut get_shop = conn
        .prepare_cached("SELECT settings FROM shops WHERE id = ?1")
        .map_err(err)?;
    let mut get_warehouses = conn
        .prepare_cached("SELECT doc FROM warehouses WHERE shop = ?1 ORDER BY id")
        .map_err(err)?;
    for shop in &shops {
        let key = shop.to_string();
        let settings: Option<String> = get_shop.query_row([&key], |r| r.get(0)).optional().map_err(err)?;
        if let Some(s) = settings {
            ws.shops.insert(*shop, from_json::<ShopSettings>(&s)?);
        }
        let warehouses = get_warehouses
            .query_map([&key], |r| r.get::<_, String>(0))
            .map_err(err)?
            .map(|d| from_json::<Warehouse>(&d.map_err(err)?))
            .collect::<Result<Vec<_>, _>>()?;
        ws.warehouses.insert(*shop, warehouses);
    }

    let mut get_product = conn
        .prepare_cached("SELECT doc FROM products WHERE shop = ?1 AND sku = ?2")
        .map_err(err)?;
    for (shop, sku) in &req.skus {
        let doc: Option<String> = get_product
            .query_row(params![shop.to_string(), sku], |r| r.get(0))
            .optional()
            .map_err(err)?;
        if let Some(doc) = doc {
            let product: Product = from_json(&doc)?;
            sku_ids.insert(product.id);
            ws.products.insert((*shop, sku.clone()), product);
        }
    }

    let mut get_stock = conn
        .prepare_cached("SELECT warehouse, shop, on_hand, reserved, updated_at FROM stock WHERE sku = ?1")
        .map_err(err)?;
    for sku in &sku_ids {
        let rows = get_stock
            .query_map([sku.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                ))
            })
            .map_err(err)?;
        for row in rows {
            let (warehouse, shop, on_hand, reserved, at) = row.map_err(err)?;
            let level = StockLevel {
                shop: parse(&shop)?,
                sku: *sku,
                warehouse: parse(&warehouse)?,
                on_hand,
                reserved,
                updated_at: Timestamp(at),
            };
            ws.stock.insert(
                StockKey {
                    sku: *sku,
                    warehouse: level.warehouse,
                },
                level,
            );
        }
    }

    let mut notice = conn
        .prepare_cached("SELECT 1 FROM payment_notices WHERE shop = ?1 AND gateway = ?2 AND transaction_id = ?3")
        .map_err(err)?;
    for (shop, gateway, txn) in &req.notices {
        let seen = notice.exists(params![shop.to_string(), gateway, txn]).map_err(err)?;
        if seen {
            ws.notices.insert((*shop, gateway.clone(), txn.clone()));
        }
    }

    for (shop, channel, external) in &req.channel_orders {
        if let Some(raw) = crate::channels::find_channel_order(conn, *shop, channel, external)? {
            ws.channel_orders
                .insert((*shop, channel.clone(), external.clone()), raw);
        }
    }

    let demand = req.code_demand(&ws);
    let counters = req.counters(&ws, &demand);
    if !counters.is_empty() {
        let mut get_counter = conn
            .prepare_cached("SELECT value, window_start FROM counters WHERE shop = ?1 AND name = ?2")
            .map_err(err)?;
        for key in counters {
            let row = get_counter
                .query_row(params![key.shop.to_string(), key.name], |r| {
                    Ok(Counter {
                        value: r.get(0)?,
                        window_start: Timestamp(r.get(1)?),
                    })
                })
                .optional()
                .map_err(err)?;
            if let Some(counter) = row {
                ws.counters.insert(key, counter);
            }
        }
    }
    if !demand.is_empty() {
        ws.codes = crate::codes::load_available(conn, &demand)?;
    }
    Ok(ws)
}

/// New orders from which a batch's documents are encoded on a second thread, while
/// this one writes the batch's other rows (a CSV import leaves the other core idle).
const ENCODE_APART_MIN: usize = 256;

/// The JSON documents of a batch's new rows, in the order of their rows.
struct Documents {
    orders: Vec<String>,
    payments: Vec<String>,
    events: Vec<String>,
}

impl Documents {
    fn of(c: &Changes) -> Result<Documents, StoreError> {
        Ok(Documents {
            orders: c.new_orders.iter().map(to_json).collect::<Result<_, _>>()?,
            payments: c.new_payments.iter().map(to_json).collect::<Result<_, _>>()?,
            events: c.events.iter().map(|e| to_json(&e.payload)).collect::<Result<_, _>>()?,
        })
    }
}

/// Writes `c`; returns the last event's seq.
fn persist(conn: &Connection, c: &Changes) -> Result<Option<i64>, StoreError> {
    std::thread::scope(|scope| {
        let apart = (c.new_orders.len() >= ENCODE_APART_MIN).then(|| scope.spawn(|| Documents::of(c)));
        persist_updates(conn, c)?;
        let docs = match apart {
            Some(encoder) => encoder
                .join()
                .map_err(|_| StoreError::Backend("document encoder panicked".into()))??,
            None => Documents::of(c)?,
        };
        let orders: Vec<(&Order, String)> = c.new_orders.iter().zip(docs.orders).collect();
        insert_rows(
            conn,
            "orders (id, shop, status, channel, external_id, created_at, payment_due_at, doc, payment_reminder_at)",
            9,
            "",
            &orders,
            |b, (o, doc)| {
                b.put(o.id.key())?;
                b.put(o.shop.key())?;
                b.put(o.status.as_str())?;
                b.put(&o.channel)?;
                b.put(&o.external_id)?;
                b.put(o.created_at.0)?;
                b.put(o.payment_due_at.map(|t| t.0))?;
                b.put(doc)?;
                b.put(o.payment_reminder_at.map(|t| t.0))
            },
        )?;
        let payments: Vec<(&Payment, String)> = c.new_payments.iter().zip(docs.payments).collect();
        insert_rows(
            conn,
            "payments (order_id, id, shop, status, doc)",
            5,
            "",
            &payments,
            |b, (p, doc)| {
                b.put(p.order.key())?;
                b.put(p.id.key())?;
                b.put(p.shop.key())?;
                b.put(p.status.as_str())?;
                b.put(doc)
            },
        )?;
        insert_encoded_events(conn, &c.events, docs.events)
    })
}

/// Everything in `c` but new orders, new payments and events.
fn persist_updates(conn: &Connection, c: &Changes) -> Result<(), StoreError> {
    let mut upd_order = conn
        .prepare_cached(
            "UPDATE orders SET status = ?2, payment_due_at = ?3, doc = ?4, payment_reminder_at = ?5 WHERE id = ?1",
        )
        .map_err(err)?;
    for o in &c.updated_orders {
        upd_order
            .execute(params![
                o.id.key(),
                o.status.as_str(),
                o.payment_due_at.map(|t| t.0),
                to_json(o)?,
                o.payment_reminder_at.map(|t| t.0)
            ])
            .map_err(err)?;
    }
    let mut upsert_stock = conn
        .prepare_cached(
            "INSERT INTO stock (sku, warehouse, shop, on_hand, reserved, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = excluded.on_hand, reserved = excluded.reserved, \
             updated_at = excluded.updated_at",
        )
        .map_err(err)?;
    for s in &c.stock {
        upsert_stock
            .execute(params![
                s.sku.to_string(),
                s.warehouse.to_string(),
                s.shop.to_string(),
                s.on_hand,
                s.reserved,
                s.updated_at.0
            ])
            .map_err(err)?;
    }
    crate::writes::insert_ledger(conn, &c.ledger)?;
    if !c.counters.is_empty() {
        let mut upsert_counter = conn
            .prepare_cached(
                "INSERT INTO counters (shop, name, value, window_start) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (shop, name) DO UPDATE SET value = excluded.value, window_start = excluded.window_start",
            )
            .map_err(err)?;
        for (key, counter) in &c.counters {
            upsert_counter
                .execute(params![
                    key.shop.to_string(),
                    key.name,
                    counter.value,
                    counter.window_start.0
                ])
                .map_err(err)?;
        }
    }
    let mut upd_payment = conn
        .prepare_cached("UPDATE payments SET status = ?3, doc = ?4 WHERE order_id = ?1 AND id = ?2")
        .map_err(err)?;
    for p in &c.updated_payments {
        upd_payment
            .execute(params![p.order.key(), p.id.key(), p.status.as_str(), to_json(p)?])
            .map_err(err)?;
    }
    let mut ins_refund = conn
        .prepare_cached(
            "INSERT INTO refunds (id, shop, order_id, payment_id, amount_minor, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(err)?;
    for r in &c.refunds {
        ins_refund
            .execute(params![
                r.id.to_string(),
                r.shop.to_string(),
                r.order.to_string(),
                r.payment.to_string(),
                r.amount_minor,
                to_json(r)?
            ])
            .map_err(err)?;
    }
    insert_rows(
        conn,
        "payment_notices (shop, gateway, transaction_id, order_id, succeeded, amount_minor, currency, at)",
        8,
        "",
        &c.notices,
        |b, n| {
            b.put(&*n.shop.text())?;
            b.put(&n.gateway)?;
            b.put(&n.transaction_id)?;
            b.put(&*n.order.text())?;
            b.put(n.succeeded)?;
            b.put(n.amount_minor)?;
            b.put(n.currency.as_str())?;
            b.put(n.at.0)
        },
    )?;
    for r in &c.idempotency {
        crate::writes::put_idempotency(conn, r)?;
    }
    crate::channels::upsert_channel_orders(conn, &c.channel_orders)?;
    crate::codes::assign(conn, &c.assigned_codes)
}
