//! Channels, their SKU mappings and raw channel orders (A1, A2, A7).

use ordo_core::channel::{RawChannelOrder, RawStatus, SkuMapping};
use ordo_core::event::NewEvent;
use ordo_core::{ChannelOrderId, ShopId, Timestamp};
use ordo_store::StoreError;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use crate::codec::{err, from_json, to_json};
use crate::writes::with_event;

type R<T> = Result<T, StoreError>;

pub fn put_channel(
    conn: &mut Connection,
    shop: ShopId,
    channel: &str,
    secret: &str,
    at: Timestamp,
    event: NewEvent,
) -> R<()> {
    with_event(conn, event, |tx| {
        tx.execute(
            "INSERT INTO channels (shop, channel, secret, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (shop, channel) DO UPDATE SET secret = excluded.secret",
            params![shop.to_string(), channel, secret, at.0],
        )
        .map_err(err)?;
        Ok(())
    })
}

pub fn channel_secret(conn: &Connection, shop: ShopId, channel: &str) -> R<Option<String>> {
    conn.prepare_cached("SELECT secret FROM channels WHERE shop = ?1 AND channel = ?2")
        .map_err(err)?
        .query_row(params![shop.to_string(), channel], |r| r.get(0))
        .optional()
        .map_err(err)
}

pub fn put_sku_mappings(
    conn: &mut Connection,
    shop: ShopId,
    channel: &str,
    mappings: &[SkuMapping],
    event: NewEvent,
) -> R<()> {
    with_event(conn, event, |tx| {
        let mut put = tx
            .prepare_cached(
                "INSERT INTO sku_mappings (shop, channel, channel_key, sku) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (shop, channel, channel_key) DO UPDATE SET sku = excluded.sku",
            )
            .map_err(err)?;
        for m in mappings {
            put.execute(params![shop.to_string(), channel, m.channel_key, m.sku])
                .map_err(err)?;
        }
        Ok(())
    })
}

pub fn sku_mappings(conn: &Connection, shop: ShopId, channel: &str) -> R<Vec<SkuMapping>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT channel_key, sku FROM sku_mappings WHERE shop = ?1 AND channel = ?2 ORDER BY channel_key",
        )
        .map_err(err)?;
    let rows = stmt
        .query_map(params![shop.to_string(), channel], |r| {
            Ok(SkuMapping {
                channel_key: r.get(0)?,
                sku: r.get(1)?,
            })
        })
        .map_err(err)?;
    rows.map(|r| r.map_err(err)).collect()
}

fn decode(doc: &str, body: String) -> R<RawChannelOrder> {
    let mut raw: RawChannelOrder = from_json(doc)?;
    raw.body = body;
    Ok(raw)
}

pub fn get_channel_order(conn: &Connection, shop: ShopId, id: ChannelOrderId) -> R<RawChannelOrder> {
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT doc, body FROM channel_orders WHERE id = ?1 AND shop = ?2")
        .map_err(err)?
        .query_row(params![id.to_string(), shop.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(err)?;
    let (doc, body) = row.ok_or(StoreError::NotFound)?;
    decode(&doc, body)
}

/// The raw order a channel sent under `external_id`, for the batch that receives it again.
pub fn find_channel_order(
    conn: &Connection,
    shop: ShopId,
    channel: &str,
    external_id: &str,
) -> R<Option<RawChannelOrder>> {
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT doc, body FROM channel_orders WHERE shop = ?1 AND channel = ?2 AND external_id = ?3")
        .map_err(err)?
        .query_row(params![shop.to_string(), channel, external_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(err)?;
    row.map(|(doc, body)| decode(&doc, body)).transpose()
}

pub fn list_channel_orders(
    conn: &Connection,
    shop: ShopId,
    status: Option<RawStatus>,
    cursor: Option<ChannelOrderId>,
    limit: u32,
) -> R<Vec<RawChannelOrder>> {
    let mut sql = String::from("SELECT doc, body FROM channel_orders WHERE shop = ?");
    let mut args: Vec<Value> = vec![Value::Text(shop.to_string())];
    if let Some(status) = status {
        sql.push_str(" AND status = ?");
        args.push(Value::Text(status.as_str().into()));
    }
    if let Some(cursor) = cursor {
        sql.push_str(" AND id < ?");
        args.push(Value::Text(cursor.to_string()));
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    args.push(Value::Integer(i64::from(limit)));
    let mut stmt = conn.prepare_cached(&sql).map_err(err)?;
    let rows = stmt
        .query_map(params_from_iter(args), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(err)?;
    rows.map(|r| {
        let (doc, body) = r.map_err(err)?;
        decode(&doc, body)
    })
    .collect()
}

/// Inserts or updates raw channel orders inside a batch's transaction.
pub fn upsert_channel_orders(conn: &Connection, raws: &[RawChannelOrder]) -> R<()> {
    if raws.is_empty() {
        return Ok(());
    }
    let mut put = conn
        .prepare_cached(
            "INSERT INTO channel_orders (id, shop, channel, external_id, status, received_at, updated_at, order_id, doc, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, \
             order_id = excluded.order_id, doc = excluded.doc, body = excluded.body",
        )
        .map_err(err)?;
    for r in raws {
        put.execute(params![
            r.id.to_string(),
            r.shop.to_string(),
            r.channel,
            r.external_id,
            r.status.as_str(),
            r.received_at.0,
            r.updated_at.0,
            r.order.map(|o| o.to_string()),
            to_json(r)?,
            r.body
        ])
        .map_err(err)?;
    }
    Ok(())
}
