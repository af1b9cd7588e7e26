//! A group-commit batch's two halves: `load` (the working set, from a read
//! snapshot and the changes of the batch still being written) and `persist` (the
//! decided changes, in the writer's transaction). `pipeline` runs them on two threads.

use std::collections::BTreeSet;

use ordo_core::batch::{Changes, IdempotencyRecord, LoadRequest, WorkingSet};
use ordo_core::catalog::{Product, ShopSettings, Warehouse};
use ordo_core::inventory::{StockKey, StockLevel};
use ordo_core::limits::Counter;
use ordo_core::order::Order;
use ordo_core::payment::Payment;
use ordo_core::{OrderId, ProductId, ShopId, Timestamp};
use ordo_store::StoreError;
use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{Connection, OptionalExtension, params};

use crate::codec::{Key, Texts, err, from_json, insert_events, insert_rows, parse, to_json};
use crate::overlay::Overlay;

pub fn load(conn: &Connection, req: &LoadRequest, overlay: Option<&Overlay<'_>>) -> Result<WorkingSet, StoreError> {
    let mut ws = WorkingSet::default();
    let mut order_ids: BTreeSet<OrderId> = req.orders.clone();

    let mut idem = conn
        .prepare_cached(
            "SELECT request_hash, status_code, resource, created_at FROM idempotency WHERE scope = ?1 AND key = ?2",
        )
        .map_err(err)?;
    for (scope, key) in &req.idempotency {
        if let Some(rec) = overlay.and_then(|o| o.idempotency(scope, key)) {
            if let Ok(id) = rec.resource.parse::<OrderId>() {
                order_ids.insert(id);
            }
            ws.idempotency.insert((scope.clone(), key.clone()), rec.clone());
            continue;
        }
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
    for ext_ref in &req.external_refs {
        if let Some(id) = overlay.and_then(|o| o.external_ref(ext_ref)) {
            ws.external_refs.insert(ext_ref.clone(), id);
            order_ids.insert(id);
            continue;
        }
        let (shop, channel, external) = ext_ref;
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
        let order: Order = match overlay.and_then(|o| o.order(id)) {
            Some(order) => order.clone(),
            None => {
                let doc: Option<String> = get_order.query_row([&key], |r| r.get(0)).optional().map_err(err)?;
                let Some(doc) = doc else { continue };
                from_json(&doc)?
            }
        };
        shops.insert(order.shop);
        sku_ids.extend(order.lines.iter().map(|l| l.sku_id));
        // An order the overlaid batch creates has no stored payments but its own.
        let mut payments = if overlay.is_some_and(|o| o.creates(id)) {
            Vec::new()
        } else {
            get_payments
                .query_map([&key], |r| r.get::<_, String>(0))
                .map_err(err)?
                .map(|d| from_json::<Payment>(&d.map_err(err)?))
                .collect::<Result<Vec<_>, _>>()?
        };
        if let Some(o) = overlay {
            o.payments(id, &mut payments);
        }
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
        for level in overlay.map_or(&[][..], |o| o.stock_of(sku)) {
            let key = StockKey {
                sku: level.sku,
                warehouse: level.warehouse,
            };
            ws.stock.insert(key, (*level).clone());
        }
    }

    let mut notice = conn
        .prepare_cached("SELECT 1 FROM payment_notices WHERE shop = ?1 AND gateway = ?2 AND transaction_id = ?3")
        .map_err(err)?;
    for key in &req.notices {
        let (shop, gateway, txn) = key;
        let seen = overlay.is_some_and(|o| o.notice_seen(key))
            || notice.exists(params![shop.to_string(), gateway, txn]).map_err(err)?;
        if seen {
            ws.notices.insert(key.clone());
        }
    }

    for key in &req.channel_orders {
        let raw = match overlay.and_then(|o| o.channel_order(key)) {
            Some(raw) => Some(raw.clone()),
            None => crate::channels::find_channel_order(conn, key.0, &key.1, &key.2)?,
        };
        if let Some(raw) = raw {
            ws.channel_orders.insert(key.clone(), raw);
        }
    }

    let demand = req.code_demand(&ws);
    let counters = req.counters(&ws, &demand);
    if !counters.is_empty() {
        let mut get_counter = conn
            .prepare_cached("SELECT value, window_start FROM counters WHERE shop = ?1 AND name = ?2")
            .map_err(err)?;
        for key in counters {
            if let Some(counter) = overlay.and_then(|o| o.counter(&key)) {
                ws.counters.insert(key, *counter);
                continue;
            }
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
        let assigned = overlay.map(Overlay::assigned_codes);
        ws.codes = crate::codes::load_available(conn, &demand, assigned)?;
    }
    Ok(ws)
}

/// A batch's JSON documents and compressed channel bodies, in the order of their
/// rows: encoded by the decider thread, so the writer thread only writes.
pub struct Documents {
    orders: Texts,
    updated_orders: Texts,
    payments: Texts,
    updated_payments: Texts,
    refunds: Texts,
    channel_orders: Vec<(String, Value)>,
}

impl Documents {
    pub fn of(c: &Changes) -> Result<Documents, StoreError> {
        Ok(Documents {
            orders: Texts::of(&c.new_orders)?,
            updated_orders: Texts::of(&c.updated_orders)?,
            payments: Texts::of(&c.new_payments)?,
            updated_payments: Texts::of(&c.updated_payments)?,
            refunds: Texts::of(&c.refunds)?,
            channel_orders: c
                .channel_orders
                .iter()
                .map(|r| Ok((to_json(r)?, crate::channels::encode_body(&r.body))))
                .collect::<Result<_, StoreError>>()?,
        })
    }
}

/// Rewrites stored orders: the columns lists filter on and their documents
/// (`docs`, encoded from `orders` in the same order).
pub(crate) fn update_orders(conn: &Connection, orders: &[Order], docs: &Texts) -> Result<(), StoreError> {
    let mut upd_order = conn
        .prepare_cached(
            "UPDATE orders SET status = ?2, payment_due_at = ?3, doc = ?4, payment_reminder_at = ?5 WHERE id = ?1",
        )
        .map_err(err)?;
    for (o, doc) in orders.iter().zip(docs.iter()) {
        upd_order
            .execute(params![
                o.id.key(),
                o.status.as_str(),
                o.payment_due_at.map(|t| t.0),
                doc,
                o.payment_reminder_at.map(|t| t.0)
            ])
            .map_err(err)?;
    }
    Ok(())
}

/// Writes `c`, whose documents are `docs`; returns the last event's seq.
pub fn persist(conn: &Connection, c: &Changes, docs: Documents) -> Result<Option<i64>, StoreError> {
    update_orders(conn, &c.updated_orders, &docs.updated_orders)?;
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
    crate::ledger::insert(conn, &c.ledger)?;
    crate::writes::upsert_counters(
        conn,
        c.counters
            .iter()
            .map(|(key, counter)| (key.shop, key.name.as_str(), counter)),
    )?;
    let mut upd_payment = conn
        .prepare_cached("UPDATE payments SET status = ?3, doc = ?4 WHERE order_id = ?1 AND id = ?2")
        .map_err(err)?;
    for (p, doc) in c.updated_payments.iter().zip(docs.updated_payments.iter()) {
        upd_payment
            .execute(params![p.order.key(), p.id.key(), p.status.as_str(), doc])
            .map_err(err)?;
    }
    let mut ins_refund = conn
        .prepare_cached(
            "INSERT INTO refunds (id, shop, order_id, payment_id, amount_minor, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(err)?;
    for (r, doc) in c.refunds.iter().zip(docs.refunds.iter()) {
        ins_refund
            .execute(params![
                r.id.to_string(),
                r.shop.to_string(),
                r.order.to_string(),
                r.payment.to_string(),
                r.amount_minor,
                doc
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
    let raws: Vec<_> = c.channel_orders.iter().zip(docs.channel_orders).collect();
    crate::channels::upsert_channel_orders(conn, &raws)?;
    crate::codes::assign(conn, &c.assigned_codes)?;
    let orders: Vec<(&Order, ToSqlOutput<'_>)> = c.new_orders.iter().zip(docs.orders.iter()).collect();
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
    let payments: Vec<(&Payment, ToSqlOutput<'_>)> = c.new_payments.iter().zip(docs.payments.iter()).collect();
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
    insert_events(conn, &c.events)
}
