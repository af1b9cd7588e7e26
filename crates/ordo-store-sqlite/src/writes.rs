//! Catalogue writes outside the batch path; each appends its event in the same
//! transaction.

use ordo_core::batch::IdempotencyRecord;
use ordo_core::catalog::{Product, Shop, ShopSettings, Warehouse};
use ordo_core::event::NewEvent;
use ordo_core::limits::Counter;
use ordo_core::order::Order;
use ordo_core::{ApiKeyId, ShopId, Timestamp};
use ordo_store::{ApiKeyRecord, StoreError};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use crate::codec::{Key, Texts, err, from_json, insert_events, to_json};

type R<T> = Result<T, StoreError>;

/// Runs `f` in an immediate transaction, appends `event` and moves the batch epoch
/// (a batch decided before this write must not be written after it) before committing.
pub(crate) fn with_event(
    conn: &mut Connection,
    event: NewEvent,
    f: impl FnOnce(&Transaction<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    f(&tx)?;
    insert_events(&tx, &[event])?;
    crate::epoch::note_write(&tx)?;
    tx.commit().map_err(err)
}

pub fn create_shop(conn: &mut Connection, shop: &Shop, event: NewEvent) -> Result<(), StoreError> {
    with_event(conn, event, |tx| {
        tx.execute(
            "INSERT INTO shops (id, name, settings, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                shop.id.to_string(),
                shop.name,
                to_json(&shop.settings)?,
                shop.created_at.0
            ],
        )
        .map_err(err)?;
        Ok(())
    })
}

pub fn update_shop_settings(
    conn: &mut Connection,
    id: ShopId,
    s: &ShopSettings,
    event: NewEvent,
) -> Result<(), StoreError> {
    let now = event.at;
    with_event(conn, event, |tx| {
        seed_purchase_limits(tx, id, s, now)?;
        let n = tx
            .execute(
                "UPDATE shops SET settings = ?2 WHERE id = ?1",
                params![id.to_string(), to_json(s)?],
            )
            .map_err(err)?;
        if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    })
}

/// Starts the counters of the purchase limits `settings` adds from the orders
/// already placed (`ordo_core::limits::seed`), in the transaction that sets them:
/// a batch decided on the old settings is written after this only if decided again
/// (the batch epoch). Reads every order of the shop (no index has their times),
/// parsing those placed within the widest new window that name a limited SKU.
fn seed_purchase_limits(tx: &Transaction<'_>, shop: ShopId, settings: &ShopSettings, now: Timestamp) -> R<()> {
    let before = crate::reads::get_shop(tx, shop)?.settings;
    let Some(seeding) = ordo_core::limits::seed::seeding(&before, settings, now) else {
        return Ok(());
    };
    let needles = seeding.sku_needles();
    let mut orders = Vec::new();
    let mut stmt = tx
        .prepare("SELECT doc FROM orders WHERE shop = ?1 AND created_at > ?2")
        .map_err(err)?;
    let after = seeding.placed_after.map_or(i64::MIN, |t| t.0);
    let docs = stmt
        .query_map(params![shop.key(), after], |r| r.get::<_, String>(0))
        .map_err(err)?;
    for doc in docs {
        let doc = doc.map_err(err)?;
        if needles.iter().any(|n| doc.contains(n.as_str())) {
            orders.push(from_json::<Order>(&doc)?);
        }
    }
    let seeded = seeding.seed(&mut orders);
    upsert_counters(
        tx,
        seeded
            .counters
            .iter()
            .map(|(name, counter)| (shop, name.as_str(), counter)),
    )?;
    let changed = seeded.changed_orders(orders);
    crate::batch::update_orders(tx, &changed, &Texts::of(&changed)?)
}

/// Writes limit counters (shop, name, value), inserting those that are new.
pub(crate) fn upsert_counters<'a>(
    conn: &Connection,
    counters: impl IntoIterator<Item = (ShopId, &'a str, &'a Counter)>,
) -> R<()> {
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO counters (shop, name, value, window_start) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (shop, name) DO UPDATE SET value = excluded.value, window_start = excluded.window_start",
        )
        .map_err(err)?;
    for (shop, name, counter) in counters {
        upsert
            .execute(params![shop.to_string(), name, counter.value, counter.window_start.0])
            .map_err(err)?;
    }
    Ok(())
}

pub fn create_api_key(conn: &mut Connection, k: &ApiKeyRecord, event: NewEvent) -> Result<(), StoreError> {
    with_event(conn, event, |tx| {
        tx.execute(
            "INSERT INTO api_keys (id, shop, role, name, secret_hash, prefix, created_at, revoked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                k.id.to_string(),
                k.shop.to_string(),
                k.role.as_str(),
                k.name,
                k.secret_hash,
                k.prefix,
                k.created_at.0,
                k.revoked_at.map(|t| t.0)
            ],
        )
        .map_err(err)?;
        Ok(())
    })
}

pub fn revoke_api_key(
    conn: &mut Connection,
    shop: ShopId,
    id: ApiKeyId,
    at: Timestamp,
    event: NewEvent,
) -> Result<(), StoreError> {
    with_event(conn, event, |tx| {
        let n = tx
            .execute(
                "UPDATE api_keys SET revoked_at = ?3 WHERE id = ?1 AND shop = ?2 AND revoked_at IS NULL",
                params![id.to_string(), shop.to_string(), at.0],
            )
            .map_err(err)?;
        if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    })
}

pub fn put_gateway_secret(
    conn: &mut Connection,
    shop: ShopId,
    gateway: &str,
    secret: &str,
    event: NewEvent,
) -> Result<(), StoreError> {
    with_event(conn, event, |tx| {
        tx.execute(
            "INSERT INTO gateway_secrets (shop, gateway, secret) VALUES (?1, ?2, ?3) \
             ON CONFLICT (shop, gateway) DO UPDATE SET secret = excluded.secret",
            params![shop.to_string(), gateway, secret],
        )
        .map_err(err)?;
        Ok(())
    })
}

pub fn create_product(conn: &mut Connection, p: &Product, event: NewEvent) -> Result<(), StoreError> {
    with_event(conn, event, |tx| {
        tx.execute(
            "INSERT INTO products (id, shop, sku, doc) VALUES (?1, ?2, ?3, ?4)",
            params![p.id.to_string(), p.shop.to_string(), p.sku, to_json(p)?],
        )
        .map_err(err)?;
        Ok(())
    })
}

pub fn update_product(conn: &mut Connection, p: &Product, event: NewEvent) -> Result<(), StoreError> {
    with_event(conn, event, |tx| {
        let n = tx
            .execute(
                "UPDATE products SET sku = ?3, doc = ?4 WHERE id = ?1 AND shop = ?2",
                params![p.id.to_string(), p.shop.to_string(), p.sku, to_json(p)?],
            )
            .map_err(err)?;
        if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    })
}

pub fn create_warehouse(conn: &mut Connection, w: &Warehouse, event: NewEvent) -> Result<(), StoreError> {
    with_event(conn, event, |tx| {
        tx.execute(
            "INSERT INTO warehouses (id, shop, code, doc) VALUES (?1, ?2, ?3, ?4)",
            params![w.id.to_string(), w.shop.to_string(), w.code, to_json(w)?],
        )
        .map_err(err)?;
        Ok(())
    })
}

pub fn put_idempotency(conn: &Connection, r: &IdempotencyRecord) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO idempotency (scope, key, request_hash, status_code, resource, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (scope, key) DO NOTHING",
        )
        .map_err(err)?
        .execute(params![
            r.scope,
            r.key,
            r.request_hash,
            r.status_code,
            r.resource,
            r.created_at.0
        ])
        .map_err(err)?;
    Ok(n == 1)
}

/// [`put_idempotency`] as a write of its own (outside a batch).
pub fn put_idempotency_alone(conn: &mut Connection, r: &IdempotencyRecord) -> Result<bool, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let inserted = put_idempotency(&tx, r)?;
    crate::epoch::note_write(&tx)?;
    tx.commit().map_err(err)?;
    Ok(inserted)
}

pub fn append_events(conn: &mut Connection, events: Vec<NewEvent>) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    insert_events(&tx, &events)?;
    tx.commit().map_err(err)
}
