//! Code pools of virtual SKUs (G1): sealed codes, their pool counter, and the
//! codes a batch may assign.

use std::collections::{BTreeMap, VecDeque};

use ordo_core::batch::{HashMap, HashMapExt};

use deadpool_postgres::{Client, Transaction};
use ordo_core::batch::{AssignedCode, pool_counter};
use ordo_core::limits::CounterKey;
use ordo_core::{CodeId, OrderId, ProductId, ShopId};
use ordo_store::{NewCode, SealedCode, StoreError, StoreResult};

use crate::codec::{col, parsed};
use crate::error::db;

pub(crate) async fn add(
    tx: &Transaction<'_>,
    shop: ShopId,
    sku: ProductId,
    codes: &[NewCode],
) -> StoreResult<(u64, i64)> {
    let ids: Vec<String> = codes.iter().map(|c| c.id.to_string()).collect();
    let fingerprints: Vec<&str> = codes.iter().map(|c| c.fingerprint.as_str()).collect();
    let sealed: Vec<&str> = codes.iter().map(|c| c.sealed.as_str()).collect();
    let created: Vec<i64> = codes.iter().map(|c| c.created_at.0).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO codes (id, shop, sku, fingerprint, sealed, created_at)
             SELECT u.id, $1, $2, u.fingerprint, u.sealed, u.created_at
             FROM UNNEST($3::text[], $4::text[], $5::text[], $6::int8[]) AS u(id, fingerprint, sealed, created_at)
             ON CONFLICT (shop, sku, fingerprint) DO NOTHING",
        )
        .await
        .map_err(db)?;
    let added = tx
        .execute(
            &stmt,
            &[
                &shop.to_string(),
                &sku.to_string(),
                &ids,
                &fingerprints,
                &sealed,
                &created,
            ],
        )
        .await
        .map_err(db)?;
    let key = pool_counter(shop, sku);
    let stmt = tx
        .prepare_cached(
            "INSERT INTO counters (shop, name, value, window_start) VALUES ($1, $2, $3, 0)
             ON CONFLICT (shop, name) DO UPDATE SET value = counters.value + EXCLUDED.value RETURNING value",
        )
        .await
        .map_err(db)?;
    let row = tx
        .query_one(&stmt, &[&key.shop.to_string(), &key.name, &(added as i64)])
        .await
        .map_err(db)?;
    Ok((added, col(&row, "value")?))
}

pub(crate) async fn of_order(client: &Client, shop: ShopId, order: OrderId) -> StoreResult<Vec<SealedCode>> {
    let stmt = client
        .prepare_cached("SELECT id, sku, sealed FROM codes WHERE order_id = $1 AND shop = $2 ORDER BY id")
        .await
        .map_err(db)?;
    let rows = client
        .query(&stmt, &[&order.to_string(), &shop.to_string()])
        .await
        .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(SealedCode {
                id: parsed(r, "id")?,
                sku: parsed(r, "sku")?,
                sealed: col(r, "sealed")?,
            })
        })
        .collect()
}

pub(crate) async fn available(client: &Client, shop: ShopId, sku: ProductId) -> StoreResult<i64> {
    let stmt = client
        .prepare_cached("SELECT COUNT(*) AS n FROM codes WHERE sku = $1 AND shop = $2 AND order_id IS NULL")
        .await
        .map_err(db)?;
    let row = client
        .query_one(&stmt, &[&sku.to_string(), &shop.to_string()])
        .await
        .map_err(db)?;
    col(&row, "n")
}

/// Up to `demand` unassigned codes per SKU, oldest first, locked. The batch holds
/// the pool's counter row already, so no other batch draws from the pool meanwhile.
pub(crate) async fn lock_available(
    tx: &Transaction<'_>,
    demand: &BTreeMap<CounterKey, (ProductId, i64)>,
) -> StoreResult<HashMap<ProductId, VecDeque<CodeId>>> {
    let stmt = tx
        .prepare_cached("SELECT id FROM codes WHERE sku = $1 AND order_id IS NULL ORDER BY id LIMIT $2 FOR UPDATE")
        .await
        .map_err(db)?;
    let mut pools = HashMap::new();
    for (sku, n) in demand.values() {
        let rows = tx.query(&stmt, &[&sku.to_string(), n]).await.map_err(db)?;
        let ids = rows
            .iter()
            .map(|r| parsed(r, "id"))
            .collect::<StoreResult<VecDeque<CodeId>>>()?;
        pools.insert(*sku, ids);
    }
    Ok(pools)
}

pub(crate) async fn assign(tx: &Transaction<'_>, assigned: &[AssignedCode]) -> StoreResult<()> {
    if assigned.is_empty() {
        return Ok(());
    }
    let codes: Vec<String> = assigned.iter().map(|a| a.code.to_string()).collect();
    let orders: Vec<String> = assigned.iter().map(|a| a.order.to_string()).collect();
    let ats: Vec<i64> = assigned.iter().map(|a| a.at.0).collect();
    let stmt = tx
        .prepare_cached(
            "UPDATE codes SET order_id = u.order_id, assigned_at = u.at
             FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS u(id, order_id, at)
             WHERE codes.id = u.id AND codes.order_id IS NULL",
        )
        .await
        .map_err(db)?;
    let updated = tx.execute(&stmt, &[&codes, &orders, &ats]).await.map_err(db)?;
    if updated as usize != assigned.len() {
        return Err(StoreError::Retry("a code was assigned by a concurrent batch".into()));
    }
    Ok(())
}
