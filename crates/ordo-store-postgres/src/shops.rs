//! Shops, API keys, gateway secrets and request idempotency outside batches.

use deadpool_postgres::{Client, GenericClient, Transaction};
use ordo_core::auth::Role;
use ordo_core::batch::IdempotencyRecord;
use ordo_core::catalog::{Shop, ShopSettings};
use ordo_core::order::Order;
use ordo_core::{ApiKeyId, ShopId, Timestamp};
use ordo_store::{ApiKeyRecord, StoreError, StoreResult};
use tokio_postgres::Row;

use crate::batch::hold_shop_settings;
use crate::codec::{col, json, named, parsed, to_json};
use crate::error::{corrupt, db};

const SHOP_COLUMNS: &str = "id, name, settings, created_at";
const KEY_COLUMNS: &str = "id, shop, role, name, secret_hash, prefix, created_at, revoked_at";

pub(crate) async fn insert(tx: &Transaction<'_>, shop: &Shop) -> StoreResult<()> {
    let stmt = tx
        .prepare_cached("INSERT INTO shops (id, name, settings, created_at) VALUES ($1, $2, $3, $4)")
        .await
        .map_err(db)?;
    let settings = to_json(&shop.settings)?;
    tx.execute(
        &stmt,
        &[&shop.id.to_string(), &shop.name, &settings, &shop.created_at.millis()],
    )
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn get(client: &impl GenericClient, id: ShopId) -> StoreResult<Shop> {
    let sql = format!("SELECT {SHOP_COLUMNS} FROM shops WHERE id = $1");
    let stmt = client.prepare_cached(&sql).await.map_err(db)?;
    let row = client.query_opt(&stmt, &[&id.to_string()]).await.map_err(db)?;
    row.as_ref().map(decode_shop).ok_or(StoreError::NotFound)?
}

pub(crate) async fn list(client: &Client) -> StoreResult<Vec<Shop>> {
    let sql = format!("SELECT {SHOP_COLUMNS} FROM shops ORDER BY id");
    let stmt = client.prepare_cached(&sql).await.map_err(db)?;
    let rows = client.query(&stmt, &[]).await.map_err(db)?;
    rows.iter().map(decode_shop).collect()
}

/// Replaces a shop's settings, holding its settings lock alone: batches of the shop
/// already running finish first and the next ones read the new settings. The
/// purchase limits the change adds start counting from the orders already placed.
pub(crate) async fn update_settings(
    tx: &Transaction<'_>,
    id: ShopId,
    settings: &ShopSettings,
    now: Timestamp,
) -> StoreResult<()> {
    hold_shop_settings(tx, id).await?;
    seed_purchase_limits(tx, id, settings, now).await?;
    let stmt = tx
        .prepare_cached("UPDATE shops SET settings = $2 WHERE id = $1")
        .await
        .map_err(db)?;
    let updated = tx
        .execute(&stmt, &[&id.to_string(), &to_json(settings)?])
        .await
        .map_err(db)?;
    found(updated)
}

/// Starts the counters of the purchase limits `settings` adds from the orders
/// already placed (`ordo_core::limits::seed`). Reads the shop's orders placed within
/// the widest new window whose document names a limited SKU.
async fn seed_purchase_limits(
    tx: &Transaction<'_>,
    id: ShopId,
    settings: &ShopSettings,
    now: Timestamp,
) -> StoreResult<()> {
    let before = get(tx, id).await?.settings;
    let Some(seeding) = ordo_core::limits::seed::seeding(&before, settings, now) else {
        return Ok(());
    };
    let needles = seeding.sku_needles();
    let after = seeding.placed_after.map_or(i64::MIN, Timestamp::millis);
    let stmt = tx
        .prepare_cached(
            "SELECT doc FROM orders WHERE shop = $1 AND created_at > $2
             AND EXISTS (SELECT 1 FROM UNNEST($3::text[]) AS n(needle) WHERE strpos(doc, n.needle) > 0)",
        )
        .await
        .map_err(db)?;
    let rows = tx
        .query(&stmt, &[&id.to_string(), &after, &needles])
        .await
        .map_err(db)?;
    let mut orders: Vec<Order> = rows.iter().map(|r| json(r, "doc")).collect::<StoreResult<_>>()?;
    let seeded = seeding.seed(&mut orders);
    let (names, values, windows): (Vec<&str>, Vec<i64>, Vec<i64>) = seeded
        .counters
        .iter()
        .map(|(name, c)| (name.as_str(), c.value, c.window_start.millis()))
        .collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO counters (shop, name, value, window_start)
             SELECT $1, n, v, w FROM UNNEST($2::text[], $3::int8[], $4::int8[]) AS t(n, v, w)
             ON CONFLICT (shop, name) DO UPDATE SET value = EXCLUDED.value, window_start = EXCLUDED.window_start",
        )
        .await
        .map_err(db)?;
    tx.execute(&stmt, &[&id.to_string(), &names, &values, &windows])
        .await
        .map_err(db)?;
    crate::batch::update_orders(tx, &seeded.changed_orders(orders)).await
}

fn decode_shop(row: &Row) -> StoreResult<Shop> {
    Ok(Shop {
        id: parsed(row, "id")?,
        name: col(row, "name")?,
        settings: json(row, "settings")?,
        created_at: Timestamp(col(row, "created_at")?),
    })
}

pub(crate) async fn insert_key(tx: &Transaction<'_>, key: &ApiKeyRecord) -> StoreResult<()> {
    let sql = format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
    let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
    tx.execute(
        &stmt,
        &[
            &key.id.to_string(),
            &key.shop.to_string(),
            &key.role.as_str(),
            &key.name,
            &key.secret_hash,
            &key.prefix,
            &key.created_at.millis(),
            &key.revoked_at.map(Timestamp::millis),
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn find_key(client: &Client, secret_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_hash = $1");
    let stmt = client.prepare_cached(&sql).await.map_err(db)?;
    let row = client.query_opt(&stmt, &[&secret_hash]).await.map_err(db)?;
    row.as_ref().map(decode_key).transpose()
}

pub(crate) async fn list_keys(client: &Client, shop: ShopId) -> StoreResult<Vec<ApiKeyRecord>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE shop = $1 ORDER BY id");
    let stmt = client.prepare_cached(&sql).await.map_err(db)?;
    let rows = client.query(&stmt, &[&shop.to_string()]).await.map_err(db)?;
    rows.iter().map(decode_key).collect()
}

/// Marks the key revoked; revoking twice keeps the first time.
pub(crate) async fn revoke_key(tx: &Transaction<'_>, shop: ShopId, id: ApiKeyId, at: Timestamp) -> StoreResult<()> {
    let stmt = tx
        .prepare_cached("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND shop = $2")
        .await
        .map_err(db)?;
    let updated = tx
        .execute(&stmt, &[&id.to_string(), &shop.to_string(), &at.millis()])
        .await
        .map_err(db)?;
    found(updated)
}

fn decode_key(row: &Row) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: parsed(row, "id")?,
        shop: parsed(row, "shop")?,
        role: named(row, "role", Role::parse)?,
        name: col(row, "name")?,
        secret_hash: col(row, "secret_hash")?,
        prefix: col(row, "prefix")?,
        created_at: Timestamp(col(row, "created_at")?),
        revoked_at: col::<Option<i64>>(row, "revoked_at")?.map(Timestamp),
    })
}

pub(crate) async fn put_secret(tx: &Transaction<'_>, shop: ShopId, gateway: &str, secret: &str) -> StoreResult<()> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO gateway_secrets (shop, gateway, secret) VALUES ($1, $2, $3)
             ON CONFLICT (shop, gateway) DO UPDATE SET secret = EXCLUDED.secret",
        )
        .await
        .map_err(db)?;
    tx.execute(&stmt, &[&shop.to_string(), &gateway, &secret])
        .await
        .map_err(db)?;
    Ok(())
}

pub(crate) async fn secret(client: &Client, shop: ShopId, gateway: &str) -> StoreResult<Option<String>> {
    let stmt = client
        .prepare_cached("SELECT secret FROM gateway_secrets WHERE shop = $1 AND gateway = $2")
        .await
        .map_err(db)?;
    let row = client
        .query_opt(&stmt, &[&shop.to_string(), &gateway])
        .await
        .map_err(db)?;
    row.map(|r| col(&r, "secret")).transpose()
}

pub(crate) const IDEMPOTENCY_COLUMNS: &str = "scope, key, request_hash, status_code, resource, created_at";

pub(crate) async fn get_idempotency(client: &Client, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
    let sql = format!("SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency WHERE scope = $1 AND key = $2");
    let stmt = client.prepare_cached(&sql).await.map_err(db)?;
    let row = client.query_opt(&stmt, &[&scope, &key]).await.map_err(db)?;
    row.as_ref().map(decode_idempotency).transpose()
}

/// Inserts unless the (scope, key) exists; returns whether it inserted.
pub(crate) async fn put_idempotency(client: &Client, r: &IdempotencyRecord) -> StoreResult<bool> {
    let sql = format!(
        "INSERT INTO idempotency ({IDEMPOTENCY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (scope, key) DO NOTHING"
    );
    let stmt = client.prepare_cached(&sql).await.map_err(db)?;
    let inserted = client
        .execute(
            &stmt,
            &[
                &r.scope,
                &r.key,
                &r.request_hash,
                &i32::from(r.status_code),
                &r.resource,
                &r.created_at.millis(),
            ],
        )
        .await
        .map_err(db)?;
    Ok(inserted == 1)
}

pub(crate) fn decode_idempotency(row: &Row) -> StoreResult<IdempotencyRecord> {
    let status: i32 = col(row, "status_code")?;
    Ok(IdempotencyRecord {
        scope: col(row, "scope")?,
        key: col(row, "key")?,
        request_hash: col(row, "request_hash")?,
        status_code: u16::try_from(status).map_err(|e| corrupt("status_code", e))?,
        resource: col(row, "resource")?,
        created_at: Timestamp(col(row, "created_at")?),
    })
}

/// An UPDATE that touched no row was aimed at something that does not exist.
pub(crate) fn found(rows: u64) -> StoreResult<()> {
    if rows == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}
