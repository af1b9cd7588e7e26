//! The notification delivery log (K1).

use deadpool_postgres::Client;
use ordo_core::notify::{Channel, DeliveryStatus, Locale};
use ordo_core::{EventSeq, ShopId, Timestamp};
use ordo_store::{
    AttemptOutcome, NewNotification, NotificationAttempt, NotificationFilter, NotificationRecord, StoreError,
    StoreResult,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::codec::{col, json, limit, named, parsed, to_json};
use crate::error::{corrupt, db};

const COLUMNS: &str = "id, shop, event_seq, order_id, channel, recipient, template, locale, data, status, attempts, \
                       next_attempt_at, last_error, created_at, sent_at";

fn decode(row: &Row) -> StoreResult<NotificationRecord> {
    let attempts: i32 = col(row, "attempts")?;
    Ok(NotificationRecord {
        id: col(row, "id")?,
        shop: parsed(row, "shop")?,
        event_seq: col(row, "event_seq")?,
        order: parsed(row, "order_id")?,
        channel: named(row, "channel", Channel::parse)?,
        recipient: col(row, "recipient")?,
        template: col(row, "template")?,
        locale: named(row, "locale", Locale::parse)?,
        data: json(row, "data")?,
        status: named(row, "status", DeliveryStatus::parse)?,
        attempts: u32::try_from(attempts).map_err(|e| corrupt("attempts", e))?,
        next_attempt_at: col::<Option<i64>>(row, "next_attempt_at")?.map(Timestamp),
        last_error: col(row, "last_error")?,
        created_at: Timestamp(col(row, "created_at")?),
        sent_at: col::<Option<i64>>(row, "sent_at")?.map(Timestamp),
    })
}

async fn query(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<NotificationRecord>> {
    let stmt = client.prepare_cached(sql).await.map_err(db)?;
    let rows = client.query(&stmt, params).await.map_err(db)?;
    rows.iter().map(decode).collect()
}

pub(crate) async fn cursor(client: &Client) -> StoreResult<EventSeq> {
    let stmt = client
        .prepare_cached("SELECT last_seq FROM notification_cursor WHERE id = 1")
        .await
        .map_err(db)?;
    let row = client.query_one(&stmt, &[]).await.map_err(db)?;
    col(&row, "last_seq")
}

pub(crate) async fn enqueue(client: &mut Client, items: &[NewNotification], cursor: EventSeq) -> StoreResult<u64> {
    let tx = client.transaction().await.map_err(db)?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO notifications (shop, event_seq, order_id, channel, recipient, template, locale, data, \
             status, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $9) \
             ON CONFLICT (event_seq, channel) DO NOTHING",
        )
        .await
        .map_err(db)?;
    let mut inserted = 0;
    for n in items {
        inserted += tx
            .execute(
                &insert,
                &[
                    &n.shop.to_string(),
                    &n.event_seq,
                    &n.order.to_string(),
                    &n.channel.as_str(),
                    &n.recipient,
                    &n.template,
                    &n.locale.as_str(),
                    &to_json(&n.data)?,
                    &n.created_at.millis(),
                ],
            )
            .await
            .map_err(db)?;
    }
    let advance = tx
        .prepare_cached("UPDATE notification_cursor SET last_seq = GREATEST(last_seq, $1) WHERE id = 1")
        .await
        .map_err(db)?;
    tx.execute(&advance, &[&cursor]).await.map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(inserted)
}

pub(crate) async fn due(client: &Client, now: Timestamp, max: u32) -> StoreResult<Vec<NotificationRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM notifications WHERE status = 'pending' AND next_attempt_at <= $1 \
         ORDER BY next_attempt_at, id LIMIT $2"
    );
    query(client, &sql, &[&now.millis(), &limit(max)]).await
}

/// One statement: under READ COMMITTED a row another worker claimed meanwhile is
/// re-checked after its lock is released, finds its next attempt moved past `now`,
/// and is left out.
pub(crate) async fn claim(
    client: &Client,
    ids: &[i64],
    now: Timestamp,
    lease_until: Timestamp,
) -> StoreResult<Vec<i64>> {
    let stmt = client
        .prepare_cached(
            "UPDATE notifications SET next_attempt_at = $3 \
             WHERE id = ANY($1) AND status = 'pending' AND next_attempt_at <= $2 RETURNING id",
        )
        .await
        .map_err(db)?;
    let rows = client
        .query(&stmt, &[&ids, &now.millis(), &lease_until.millis()])
        .await
        .map_err(db)?;
    Ok(rows.iter().map(|r| r.get::<_, i64>(0)).collect())
}

pub(crate) async fn record_attempt(
    client: &mut Client,
    id: i64,
    a: &NotificationAttempt,
    then: AttemptOutcome,
) -> StoreResult<()> {
    let (status, next, sent) = match then {
        AttemptOutcome::Sent => ("sent", None, Some(a.at.millis())),
        AttemptOutcome::Retry { at } => ("pending", Some(at.millis()), None),
        AttemptOutcome::Failed => ("failed", None, None),
    };
    let error = (!a.ok).then_some(a.detail.as_str());
    let tx = client.transaction().await.map_err(db)?;
    let update = tx
        .prepare_cached(
            "UPDATE notifications SET status = $2, attempts = attempts + 1, next_attempt_at = $3, \
             last_error = COALESCE($4, last_error), sent_at = $5 WHERE id = $1",
        )
        .await
        .map_err(db)?;
    let changed = tx
        .execute(&update, &[&id, &status, &next, &error, &sent])
        .await
        .map_err(db)?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    let insert = tx
        .prepare_cached("INSERT INTO notification_attempts (notification, at, ok, detail) VALUES ($1, $2, $3, $4)")
        .await
        .map_err(db)?;
    tx.execute(&insert, &[&id, &a.at.millis(), &a.ok, &a.detail])
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)
}

/// Newest first; each filter combination is its own prepared statement.
pub(crate) async fn list(
    client: &Client,
    shop: ShopId,
    f: &NotificationFilter,
) -> StoreResult<Vec<NotificationRecord>> {
    let mut sql = format!("SELECT {COLUMNS} FROM notifications WHERE shop = $1");
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(shop.to_string())];
    if let Some(order) = f.order {
        params.push(Box::new(order.to_string()));
        sql.push_str(&format!(" AND order_id = ${}", params.len()));
    }
    if let Some(cursor) = f.cursor {
        params.push(Box::new(cursor));
        sql.push_str(&format!(" AND id < ${}", params.len()));
    }
    params.push(Box::new(limit(f.limit)));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", params.len()));
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    query(client, &sql, &refs).await
}

pub(crate) async fn attempts(client: &Client, shop: ShopId, ids: &[i64]) -> StoreResult<Vec<NotificationAttempt>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = client
        .prepare_cached(
            "SELECT a.notification, a.at, a.ok, a.detail FROM notification_attempts a \
             JOIN notifications n ON n.id = a.notification \
             WHERE n.shop = $1 AND a.notification = ANY($2) ORDER BY a.notification, a.id",
        )
        .await
        .map_err(db)?;
    let rows = client.query(&stmt, &[&shop.to_string(), &ids]).await.map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(NotificationAttempt {
                notification: col(r, "notification")?,
                at: Timestamp(col(r, "at")?),
                ok: col(r, "ok")?,
                detail: col(r, "detail")?,
            })
        })
        .collect()
}
