//! Channels, their SKU mappings and raw channel orders (A1, A2, A7).

use std::collections::BTreeSet;

use ordo_core::batch::{HashMap, HashMapExt};

use deadpool_postgres::{Client, Transaction};
use ordo_core::batch::ExternalRef;
use ordo_core::channel::{RawChannelOrder, RawStatus, SkuMapping};
use ordo_core::{ChannelOrderId, ShopId, Timestamp};
use ordo_store::{StoreError, StoreResult};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::codec::{col, json, to_json};
use crate::error::db;

pub(crate) async fn put_channel(
    tx: &Transaction<'_>,
    shop: ShopId,
    channel: &str,
    secret: &str,
    at: Timestamp,
) -> StoreResult<()> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO channels (shop, channel, secret, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (shop, channel) DO UPDATE SET secret = EXCLUDED.secret",
        )
        .await
        .map_err(db)?;
    tx.execute(&stmt, &[&shop.to_string(), &channel, &secret, &at.0])
        .await
        .map_err(db)?;
    Ok(())
}

pub(crate) async fn secret(client: &Client, shop: ShopId, channel: &str) -> StoreResult<Option<String>> {
    let stmt = client
        .prepare_cached("SELECT secret FROM channels WHERE shop = $1 AND channel = $2")
        .await
        .map_err(db)?;
    let row = client
        .query_opt(&stmt, &[&shop.to_string(), &channel])
        .await
        .map_err(db)?;
    row.map(|r| col(&r, "secret")).transpose()
}

pub(crate) async fn put_mappings(
    tx: &Transaction<'_>,
    shop: ShopId,
    channel: &str,
    mappings: &[SkuMapping],
) -> StoreResult<()> {
    let keys: Vec<&str> = mappings.iter().map(|m| m.channel_key.as_str()).collect();
    let skus: Vec<&str> = mappings.iter().map(|m| m.sku.as_str()).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO sku_mappings (shop, channel, channel_key, sku)
             SELECT $1, $2, k, s FROM UNNEST($3::text[], $4::text[]) AS u(k, s)
             ON CONFLICT (shop, channel, channel_key) DO UPDATE SET sku = EXCLUDED.sku",
        )
        .await
        .map_err(db)?;
    tx.execute(&stmt, &[&shop.to_string(), &channel, &keys, &skus])
        .await
        .map_err(db)?;
    Ok(())
}

pub(crate) async fn mappings(client: &Client, shop: ShopId, channel: &str) -> StoreResult<Vec<SkuMapping>> {
    let stmt = client
        .prepare_cached(
            "SELECT channel_key, sku FROM sku_mappings WHERE shop = $1 AND channel = $2 ORDER BY channel_key",
        )
        .await
        .map_err(db)?;
    let rows = client.query(&stmt, &[&shop.to_string(), &channel]).await.map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(SkuMapping {
                channel_key: col(r, "channel_key")?,
                sku: col(r, "sku")?,
            })
        })
        .collect()
}

fn decode(row: &Row) -> StoreResult<RawChannelOrder> {
    let mut raw: RawChannelOrder = json(row, "doc")?;
    raw.body = col::<String>(row, "body")?.into();
    Ok(raw)
}

pub(crate) async fn get(client: &Client, shop: ShopId, id: ChannelOrderId) -> StoreResult<RawChannelOrder> {
    let stmt = client
        .prepare_cached("SELECT doc, body FROM channel_orders WHERE id = $1 AND shop = $2")
        .await
        .map_err(db)?;
    let row = client
        .query_opt(&stmt, &[&id.to_string(), &shop.to_string()])
        .await
        .map_err(db)?;
    decode(&row.ok_or(StoreError::NotFound)?)
}

pub(crate) async fn list(
    client: &Client,
    shop: ShopId,
    status: Option<RawStatus>,
    cursor: Option<ChannelOrderId>,
    limit: u32,
) -> StoreResult<Vec<RawChannelOrder>> {
    let stmt = client
        .prepare_cached(
            "SELECT doc, body FROM channel_orders
             WHERE shop = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
        )
        .await
        .map_err(db)?;
    let params: [&(dyn ToSql + Sync); 4] = [
        &shop.to_string(),
        &status.map(RawStatus::as_str),
        &cursor.map(|c| c.to_string()),
        &i64::from(limit),
    ];
    let rows = client.query(&stmt, &params).await.map_err(db)?;
    rows.iter().map(decode).collect()
}

/// The raw orders a batch receives again, locked.
pub(crate) async fn lock(
    tx: &Transaction<'_>,
    keys: &BTreeSet<ExternalRef>,
) -> StoreResult<HashMap<ExternalRef, RawChannelOrder>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let shops: Vec<String> = keys.iter().map(|(s, _, _)| s.to_string()).collect();
    let channels: Vec<&str> = keys.iter().map(|(_, c, _)| c.as_str()).collect();
    let externals: Vec<&str> = keys.iter().map(|(_, _, e)| e.as_str()).collect();
    let stmt = tx
        .prepare_cached(
            "SELECT c.doc, c.body FROM channel_orders c
             JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS k(shop, channel, external_id)
               ON c.shop = k.shop AND c.channel = k.channel AND c.external_id = k.external_id
             ORDER BY c.id FOR UPDATE OF c",
        )
        .await
        .map_err(db)?;
    let rows = tx.query(&stmt, &[&shops, &channels, &externals]).await.map_err(db)?;
    rows.iter()
        .map(|row| {
            let raw = decode(row)?;
            Ok(((raw.shop, raw.channel.clone(), raw.external_id.clone()), raw))
        })
        .collect()
}

/// Inserts or updates raw channel orders inside a batch's transaction. A raw order
/// another process inserted meanwhile hits the unique key, and the batch is retried.
pub(crate) async fn upsert(tx: &Transaction<'_>, raws: &[RawChannelOrder]) -> StoreResult<()> {
    if raws.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = raws.iter().map(|r| r.id.to_string()).collect();
    let shops: Vec<String> = raws.iter().map(|r| r.shop.to_string()).collect();
    let channels: Vec<&str> = raws.iter().map(|r| r.channel.as_str()).collect();
    let externals: Vec<&str> = raws.iter().map(|r| r.external_id.as_str()).collect();
    let statuses: Vec<&str> = raws.iter().map(|r| r.status.as_str()).collect();
    let received: Vec<i64> = raws.iter().map(|r| r.received_at.0).collect();
    let updated: Vec<i64> = raws.iter().map(|r| r.updated_at.0).collect();
    let orders: Vec<Option<String>> = raws.iter().map(|r| r.order.map(|o| o.to_string())).collect();
    let docs = raws.iter().map(to_json).collect::<StoreResult<Vec<String>>>()?;
    let bodies: Vec<&str> = raws.iter().map(|r| &*r.body).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO channel_orders (id, shop, channel, external_id, status, received_at, updated_at, order_id, doc, body)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[],
                                  $8::text[], $9::text[], $10::text[])
             ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at,
                order_id = EXCLUDED.order_id, doc = EXCLUDED.doc, body = EXCLUDED.body",
        )
        .await
        .map_err(db)?;
    tx.execute(
        &stmt,
        &[
            &ids, &shops, &channels, &externals, &statuses, &received, &updated, &orders, &docs, &bodies,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}
