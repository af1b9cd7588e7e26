//! Code pools of virtual SKUs (G1): sealed codes, their pool counter, and the
//! codes a batch may assign.

use std::collections::{BTreeMap, VecDeque};

use ordo_core::batch::{HashMap, HashMapExt, HashSet};

use ordo_core::batch::{AssignedCode, pool_counter};
use ordo_core::event::NewEvent;
use ordo_core::limits::CounterKey;
use ordo_core::{CodeId, OrderId, ProductId, ShopId};
use ordo_store::{NewCode, SealedCode, StoreError};
use rusqlite::{Connection, params};

use crate::codec::{err, parse};
use crate::writes::with_event;

type R<T> = Result<T, StoreError>;

pub fn add_codes(
    conn: &mut Connection,
    shop: ShopId,
    sku: ProductId,
    codes: &[NewCode],
    event: NewEvent,
) -> R<(u64, i64)> {
    let mut added = 0u64;
    let mut available = 0i64;
    with_event(conn, event, |tx| {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO codes (id, shop, sku, fingerprint, sealed, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (shop, sku, fingerprint) DO NOTHING",
            )
            .map_err(err)?;
        for c in codes {
            added += insert
                .execute(params![
                    c.id.to_string(),
                    shop.to_string(),
                    sku.to_string(),
                    c.fingerprint,
                    c.sealed,
                    c.created_at.0
                ])
                .map_err(err)? as u64;
        }
        let key = pool_counter(shop, sku);
        available = tx
            .query_row(
                "INSERT INTO counters (shop, name, value, window_start) VALUES (?1, ?2, ?3, 0) \
                 ON CONFLICT (shop, name) DO UPDATE SET value = value + excluded.value RETURNING value",
                params![key.shop.to_string(), key.name, added as i64],
                |r| r.get(0),
            )
            .map_err(err)?;
        Ok(())
    })?;
    Ok((added, available))
}

pub fn codes_of_order(conn: &Connection, shop: ShopId, order: OrderId) -> R<Vec<SealedCode>> {
    let mut stmt = conn
        .prepare_cached("SELECT id, sku, sealed FROM codes WHERE order_id = ?1 AND shop = ?2 ORDER BY id")
        .map_err(err)?;
    let rows = stmt
        .query_map(params![order.to_string(), shop.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })
        .map_err(err)?;
    rows.map(|row| {
        let (id, sku, sealed) = row.map_err(err)?;
        Ok(SealedCode {
            id: parse(&id)?,
            sku: parse(&sku)?,
            sealed,
        })
    })
    .collect()
}

pub fn codes_available(conn: &Connection, shop: ShopId, sku: ProductId) -> R<i64> {
    conn.prepare_cached("SELECT COUNT(*) FROM codes WHERE sku = ?1 AND shop = ?2 AND order_id IS NULL")
        .map_err(err)?
        .query_row(params![sku.to_string(), shop.to_string()], |r| r.get(0))
        .map_err(err)
}

/// Up to `demand` unassigned codes per SKU, oldest first, leaving out `assigned`:
/// codes the batch still being written gave away. No lock is needed: a batch is
/// written only if nothing but the batch it overlays committed since its snapshot
/// (`pipeline`), and `assign` checks each code is still free.
pub fn load_available(
    conn: &Connection,
    demand: &BTreeMap<CounterKey, (ProductId, i64)>,
    assigned: Option<&HashSet<CodeId>>,
) -> R<HashMap<ProductId, VecDeque<CodeId>>> {
    let mut stmt = conn
        .prepare_cached("SELECT id FROM codes WHERE sku = ?1 AND order_id IS NULL ORDER BY id LIMIT ?2")
        .map_err(err)?;
    let skipped = assigned.map_or(0, |a| a.len()) as i64;
    let mut pools = HashMap::new();
    for (sku, n) in demand.values() {
        let mut ids = VecDeque::new();
        for id in stmt
            .query_map(params![sku.to_string(), n + skipped], |r| r.get::<_, String>(0))
            .map_err(err)?
        {
            let id: CodeId = parse(&id.map_err(err)?)?;
            if assigned.is_some_and(|a| a.contains(&id)) {
                continue;
            }
            if ids.len() as i64 == *n {
                break;
            }
            ids.push_back(id);
        }
        pools.insert(*sku, ids);
    }
    Ok(pools)
}

pub fn assign(conn: &Connection, assigned: &[AssignedCode]) -> R<()> {
    if assigned.is_empty() {
        return Ok(());
    }
    let mut stmt = conn
        .prepare_cached("UPDATE codes SET order_id = ?2, assigned_at = ?3 WHERE id = ?1 AND order_id IS NULL")
        .map_err(err)?;
    for a in assigned {
        if stmt
            .execute(params![a.code.to_string(), a.order.to_string(), a.at.0])
            .map_err(err)?
            != 1
        {
            return Err(StoreError::Backend(format!("code {} was assigned already", a.code)));
        }
    }
    Ok(())
}
