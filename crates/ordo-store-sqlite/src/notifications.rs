//! The notification delivery log (K1): writes run on the writer thread, reads on
//! the reader pool, like every other query here.

use ordo_core::notify::{Channel, DeliveryStatus, Locale};
use ordo_core::{EventSeq, ShopId, Timestamp};
use ordo_store::{
    AttemptOutcome, NewNotification, NotificationAttempt, NotificationFilter, NotificationRecord, StoreError,
};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, TransactionBehavior, params, params_from_iter};

use crate::codec::{err, from_json, parse, to_json};

type R<T> = Result<T, StoreError>;

const COLUMNS: &str = "id, shop, event_seq, order_id, channel, recipient, template, locale, data, status, attempts, \
                       next_attempt_at, last_error, created_at, sent_at";

/// The raw columns of a notification row, decoded outside the row callback.
type RawRow = (
    i64,
    String,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    Option<i64>,
);

fn raw(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
        r.get(14)?,
    ))
}

fn named<T>(what: &str, text: &str, f: fn(&str) -> Option<T>) -> R<T> {
    f(text).ok_or_else(|| StoreError::Corrupt(format!("{what}: unknown value `{text}`")))
}

fn decode(row: RawRow) -> R<NotificationRecord> {
    let (
        id,
        shop,
        event_seq,
        order,
        channel,
        recipient,
        template,
        locale,
        data,
        status,
        attempts,
        next,
        error,
        at,
        sent,
    ) = row;
    Ok(NotificationRecord {
        id,
        shop: parse(&shop)?,
        event_seq,
        order: parse(&order)?,
        channel: named("channel", &channel, Channel::parse)?,
        recipient,
        template,
        locale: named("locale", &locale, Locale::parse)?,
        data: from_json(&data)?,
        status: named("status", &status, DeliveryStatus::parse)?,
        attempts: u32::try_from(attempts).map_err(|e| StoreError::Corrupt(format!("attempts: {e}")))?,
        next_attempt_at: next.map(Timestamp),
        last_error: error,
        created_at: Timestamp(at),
        sent_at: sent.map(Timestamp),
    })
}

fn query(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> R<Vec<NotificationRecord>> {
    let mut stmt = conn.prepare_cached(sql).map_err(err)?;
    let rows: Vec<RawRow> = stmt
        .query_map(args, raw)
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)?;
    rows.into_iter().map(decode).collect()
}

pub fn cursor(conn: &Connection) -> R<EventSeq> {
    conn.prepare_cached("SELECT last_seq FROM notification_cursor WHERE id = 1")
        .map_err(err)?
        .query_row([], |r| r.get(0))
        .map_err(err)
}

pub fn enqueue(conn: &mut Connection, items: &[NewNotification], cursor: EventSeq) -> R<u64> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let mut inserted = 0;
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO notifications (shop, event_seq, order_id, channel, recipient, template, locale, data, \
                 status, attempts, next_attempt_at, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', 0, ?9, ?9) \
                 ON CONFLICT (event_seq, channel) DO NOTHING",
            )
            .map_err(err)?;
        for n in items {
            inserted += stmt
                .execute(params![
                    n.shop.to_string(),
                    n.event_seq,
                    n.order.to_string(),
                    n.channel.as_str(),
                    n.recipient,
                    n.template,
                    n.locale.as_str(),
                    to_json(&n.data)?,
                    n.created_at.0,
                ])
                .map_err(err)? as u64;
        }
        tx.execute(
            "UPDATE notification_cursor SET last_seq = MAX(last_seq, ?1) WHERE id = 1",
            [cursor],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(inserted)
}

pub fn due(conn: &Connection, now: Timestamp, limit: u32) -> R<Vec<NotificationRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM notifications WHERE status = 'pending' AND next_attempt_at <= ?1 \
         ORDER BY next_attempt_at, id LIMIT ?2"
    );
    query(conn, &sql, params![now.0, limit])
}

pub fn claim(conn: &mut Connection, ids: &[i64], now: Timestamp, lease_until: Timestamp) -> R<Vec<i64>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let mut won = Vec::with_capacity(ids.len());
    {
        let mut claim = tx
            .prepare_cached(
                "UPDATE notifications SET next_attempt_at = ?3 \
                 WHERE id = ?1 AND status = 'pending' AND next_attempt_at <= ?2",
            )
            .map_err(err)?;
        for id in ids {
            if claim.execute(params![id, now.0, lease_until.0]).map_err(err)? == 1 {
                won.push(*id);
            }
        }
    }
    tx.commit().map_err(err)?;
    Ok(won)
}

pub fn record_attempt(conn: &mut Connection, id: i64, a: &NotificationAttempt, then: AttemptOutcome) -> R<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let (status, next, sent) = match then {
        AttemptOutcome::Sent => ("sent", None, Some(a.at.0)),
        AttemptOutcome::Retry { at } => ("pending", Some(at.0), None),
        AttemptOutcome::Failed => ("failed", None, None),
    };
    let error = (!a.ok).then_some(a.detail.as_str());
    let changed = tx
        .prepare_cached(
            "UPDATE notifications SET status = ?2, attempts = attempts + 1, next_attempt_at = ?3, \
             last_error = COALESCE(?4, last_error), sent_at = ?5 WHERE id = ?1",
        )
        .map_err(err)?
        .execute(params![id, status, next, error, sent])
        .map_err(err)?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    tx.prepare_cached("INSERT INTO notification_attempts (notification, at, ok, detail) VALUES (?1, ?2, ?3, ?4)")
        .map_err(err)?
        .execute(params![id, a.at.0, a.ok, a.detail])
        .map_err(err)?;
    tx.commit().map_err(err)
}

pub fn list(conn: &Connection, shop: ShopId, f: &NotificationFilter) -> R<Vec<NotificationRecord>> {
    let mut sql = format!("SELECT {COLUMNS} FROM notifications WHERE shop = ?1");
    let mut args: Vec<Value> = vec![Value::Text(shop.to_string())];
    if let Some(order) = f.order {
        args.push(Value::Text(order.to_string()));
        sql.push_str(&format!(" AND order_id = ?{}", args.len()));
    }
    if let Some(cursor) = f.cursor {
        args.push(Value::Integer(cursor));
        sql.push_str(&format!(" AND id < ?{}", args.len()));
    }
    args.push(Value::Integer(i64::from(f.limit)));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
    query(conn, &sql, params_from_iter(args))
}

pub fn attempts(conn: &Connection, shop: ShopId, ids: &[i64]) -> R<Vec<NotificationAttempt>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = (0..ids.len())
        .map(|i| format!("?{}", i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT a.notification, a.at, a.ok, a.detail FROM notification_attempts a \
         JOIN notifications n ON n.id = a.notification \
         WHERE n.shop = ?1 AND a.notification IN ({marks}) ORDER BY a.notification, a.id"
    );
    let mut args: Vec<Value> = vec![Value::Text(shop.to_string())];
    args.extend(ids.iter().map(|id| Value::Integer(*id)));
    let mut stmt = conn.prepare(&sql).map_err(err)?;
    let rows = stmt
        .query_map(params_from_iter(args), |r| {
            Ok(NotificationAttempt {
                notification: r.get(0)?,
                at: Timestamp(r.get(1)?),
                ok: r.get(2)?,
                detail: r.get(3)?,
            })
        })
        .map_err(err)?;
    rows.collect::<Result<_, _>>().map_err(err)
}
