//! Channels, their SKU mappings and raw channel orders (A1, A2, A7).

use ordo_core::channel::{RawChannelOrder, RawStatus, SkuMapping};
use ordo_core::event::NewEvent;
use ordo_core::{ChannelOrderId, ShopId, Timestamp};
use ordo_store::StoreError;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use crate::codec::{err, from_json, insert_rows};
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

/// Bodies at least this long are stored LZ4-compressed (a BLOB); shorter ones, and
/// every row written before compression, are TEXT as received.
const COMPRESS_FROM: usize = 512;
/// No stored body claims to be larger than this when decompressed.
const BODY_MAX: usize = 64 << 20;

/// The `body` column's value: the text as received, or — when that is long and
/// compresses — an LZ4 block with its length prepended, stored as a BLOB. A shop's
/// webhook JSON shrinks 3–5×, and it was half of the bytes an intake commit wrote.
pub(crate) fn encode_body(body: &str) -> Value {
    if body.len() >= COMPRESS_FROM {
        let packed = lz4_flex::compress_prepend_size(body.as_bytes());
        if packed.len() < body.len() {
            return Value::Blob(packed);
        }
    }
    Value::Text(body.to_string())
}

pub(crate) fn decode_body(value: ValueRef<'_>) -> R<String> {
    match value {
        ValueRef::Text(t) => String::from_utf8(t.to_vec()).map_err(|e| StoreError::Corrupt(e.to_string())),
        ValueRef::Blob(b) => {
            let claimed = b
                .get(..4)
                .map(|n| u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize);
            if claimed.is_none_or(|n| n > BODY_MAX) {
                return Err(StoreError::Corrupt("channel order body: bad compressed length".into()));
            }
            let bytes = lz4_flex::decompress_size_prepended(b)
                .map_err(|e| StoreError::Corrupt(format!("channel order body: {e}")))?;
            String::from_utf8(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
        _ => Err(StoreError::Corrupt(
            "channel order body is neither text nor blob".into(),
        )),
    }
}

fn decode(doc: &str, body: String) -> R<RawChannelOrder> {
    let mut raw: RawChannelOrder = from_json(doc)?;
    raw.body = body.into();
    Ok(raw)
}

fn doc_and_body(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, R<String>)> {
    Ok((r.get(0)?, decode_body(r.get_ref(1)?)))
}

pub fn get_channel_order(conn: &Connection, shop: ShopId, id: ChannelOrderId) -> R<RawChannelOrder> {
    let row = conn
        .prepare_cached("SELECT doc, body FROM channel_orders WHERE id = ?1 AND shop = ?2")
        .map_err(err)?
        .query_row(params![id.to_string(), shop.to_string()], doc_and_body)
        .optional()
        .map_err(err)?;
    let (doc, body) = row.ok_or(StoreError::NotFound)?;
    decode(&doc, body?)
}

/// The raw order a channel sent under `external_id`, for the batch that receives it again.
pub fn find_channel_order(
    conn: &Connection,
    shop: ShopId,
    channel: &str,
    external_id: &str,
) -> R<Option<RawChannelOrder>> {
    let row = conn
        .prepare_cached("SELECT doc, body FROM channel_orders WHERE shop = ?1 AND channel = ?2 AND external_id = ?3")
        .map_err(err)?
        .query_row(params![shop.to_string(), channel, external_id], doc_and_body)
        .optional()
        .map_err(err)?;
    row.map(|(doc, body)| decode(&doc, body?)).transpose()
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
    let rows = stmt.query_map(params_from_iter(args), doc_and_body).map_err(err)?;
    rows.map(|r| {
        let (doc, body) = r.map_err(err)?;
        decode(&doc, body?)
    })
    .collect()
}

/// Inserts or updates raw channel orders inside a batch's transaction, each with its
/// document and its `encode_body`d body.
pub fn upsert_channel_orders(conn: &Connection, raws: &[(&RawChannelOrder, (String, Value))]) -> R<()> {
    if raws.is_empty() {
        return Ok(());
    }
    insert_rows(
        conn,
        "channel_orders (id, shop, channel, external_id, status, received_at, updated_at, order_id, doc, body)",
        10,
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, \
         order_id = excluded.order_id, doc = excluded.doc, body = excluded.body",
        raws,
        |b, (r, (doc, body))| {
            b.put(&*r.id.text())?;
            b.put(&*r.shop.text())?;
            b.put(&r.channel)?;
            b.put(&r.external_id)?;
            b.put(r.status.as_str())?;
            b.put(r.received_at.0)?;
            b.put(r.updated_at.0)?;
            b.put(r.order.map(|o| o.text()).as_deref())?;
            b.put(doc)?;
            b.put(body)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: &Value) -> R<String> {
        let r = match value {
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
            _ => unreachable!(),
        };
        decode_body(r)
    }

    #[test]
    fn long_bodies_are_stored_compressed_and_read_back_as_received() {
        let body = format!(
            "{{\"id\":1001,\"line_items\":[{}]}}",
            vec![r#"{"title":"Merino sweater","quantity":1,"price":"89.00"}"#; 40].join(",")
        );
        let stored = encode_body(&body);
        match &stored {
            Value::Blob(b) => assert!(b.len() * 3 < body.len(), "{} bytes", b.len()),
            other => panic!("not compressed: {other:?}"),
        }
        assert_eq!(round_trip(&stored).unwrap(), body);
    }

    #[test]
    fn short_bodies_and_rows_written_before_compression_are_text() {
        let stored = encode_body("{\"id\":1001}");
        assert_eq!(stored, Value::Text("{\"id\":1001}".into()));
        assert_eq!(round_trip(&stored).unwrap(), "{\"id\":1001}");
        // A body that does not compress stays as received.
        let mut x = 0x2545_f491_u32;
        let noise: String = (0..600)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                char::from(b'!' + (x % 90) as u8)
            })
            .collect();
        assert!(matches!(encode_body(&noise), Value::Text(_)));
    }

    #[test]
    fn a_damaged_compressed_body_is_corrupt_not_a_panic() {
        for bad in [&b""[..], &[1, 0], &[255, 255, 255, 255, 0], &[10, 0, 0, 0, 0xf0, 1]] {
            assert!(
                matches!(decode_body(ValueRef::Blob(bad)), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }
}
