//! The event log: appended inside the writer's transaction, read by sequence.

use deadpool_postgres::{Client, Transaction};
use ordo_core::event::{Event, NewEvent};
use ordo_core::{EventSeq, ShopId};
use ordo_store::StoreResult;
use tokio_postgres::Row;

use crate::codec::{col, json, limit, parsed_opt};
use crate::error::db;

/// Advisory lock key ("ordoevts") serialising event appends. Held from the insert
/// until commit, so a transaction that drew a higher `seq` cannot commit before one
/// that drew a lower one; readers paging with `seq > after` then never skip events.
const EVENT_LOG_LOCK: i64 = 0x6f72_646f_6576_7473;

const INSERT: &str = "
    WITH inserted AS (
        INSERT INTO events (shop, subject, kind, payload, actor, at)
        SELECT shop, subject, kind, payload, actor, at
        FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[])
             WITH ORDINALITY AS e(shop, subject, kind, payload, actor, at, n)
        ORDER BY n
        RETURNING seq)
    SELECT max(seq) AS last FROM inserted";

const COLUMNS: &str = "seq, shop, subject, kind, payload, actor, at";

/// Appends `events` in order and returns the last sequence number drawn. Call it as
/// the last statement before commit: the lock it takes is held until then.
pub(crate) async fn append(tx: &Transaction<'_>, events: &[NewEvent]) -> StoreResult<Option<EventSeq>> {
    if events.is_empty() {
        return Ok(None);
    }
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1)")
        .await
        .map_err(db)?;
    tx.execute(&lock, &[&EVENT_LOG_LOCK]).await.map_err(db)?;

    let shops: Vec<Option<String>> = events.iter().map(|e| e.shop.map(|s| s.to_string())).collect();
    let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind).collect();
    let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
    let actors: Vec<&str> = events.iter().map(|e| e.actor.0.as_str()).collect();
    let ats: Vec<i64> = events.iter().map(|e| e.at.millis()).collect();

    let insert = tx.prepare_cached(INSERT).await.map_err(db)?;
    let row = tx
        .query_one(&insert, &[&shops, &subjects, &kinds, &payloads, &actors, &ats])
        .await
        .map_err(db)?;
    col(&row, "last")
}

/// Events after `after`, oldest first; `None` reads every shop's (platform events too).
pub(crate) async fn after(client: &Client, shop: Option<ShopId>, after: EventSeq, max: u32) -> StoreResult<Vec<Event>> {
    let rows = match shop {
        Some(shop) => {
            let sql = format!("SELECT {COLUMNS} FROM events WHERE shop = $1 AND seq > $2 ORDER BY seq LIMIT $3");
            let stmt = client.prepare_cached(&sql).await.map_err(db)?;
            client
                .query(&stmt, &[&shop.to_string(), &after, &limit(max)])
                .await
                .map_err(db)?
        }
        None => {
            let sql = format!("SELECT {COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2");
            let stmt = client.prepare_cached(&sql).await.map_err(db)?;
            client.query(&stmt, &[&after, &limit(max)]).await.map_err(db)?
        }
    };
    rows.iter().map(decode).collect()
}

fn decode(row: &Row) -> StoreResult<Event> {
    Ok(Event {
        seq: col(row, "seq")?,
        shop: parsed_opt(row, "shop")?,
        subject: col(row, "subject")?,
        kind: col(row, "kind")?,
        payload: json(row, "payload")?,
        actor: ordo_core::auth::Actor(col(row, "actor")?),
        at: ordo_core::Timestamp(col(row, "at")?),
    })
}
