//! Conversions between rows and domain values, and SQLite error mapping.

use std::str::FromStr;

use ordo_core::event::NewEvent;
use ordo_core::{OrderId, PaymentId, ProductId, ShopId, WarehouseId};
use ordo_store::StoreError;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, Statement, ToSql};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub fn err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => match f.code {
            ErrorCode::ConstraintViolation => StoreError::Conflict(msg.clone().unwrap_or_else(|| e.to_string())),
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Retry(e.to_string()),
            ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::DiskFull | ErrorCode::SystemIoFailure => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Backend(e.to_string()),
        },
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        _ => StoreError::Backend(e.to_string()),
    }
}

pub fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

/// JSON documents laid end to end in one buffer: a batch's thousands of documents
/// cost one allocation (and one free, on the writer thread) instead of one each.
#[derive(Default)]
pub struct Texts {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Texts {
    pub fn of<'a, T: Serialize + 'a>(values: impl IntoIterator<Item = &'a T>) -> Result<Texts, StoreError> {
        let mut texts = Texts::default();
        for value in values {
            texts.push(value)?;
        }
        Ok(texts)
    }

    pub fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), StoreError> {
        serde_json::to_writer(&mut self.buf, value).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.ends.push(self.buf.len());
        Ok(())
    }

    /// The documents in order, each to bind as TEXT (serde_json writes UTF-8 only).
    pub fn iter(&self) -> impl Iterator<Item = ToSqlOutput<'_>> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| ToSqlOutput::Borrowed(ValueRef::Text(&self.buf[start..end])))
    }
}

pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// An id as the hot tables (orders, payments, the stock ledger, events) store it:
/// its 16 bytes, big-endian so they sort as the text form does, not its text
/// (migrations 0008 and 0009 say why).
pub trait Key: Sized {
    fn key(&self) -> [u8; 16];
    fn from_key(key: &[u8]) -> Result<Self, StoreError>;
}

macro_rules! keyed {
    ($($id:ty),*) => {$(
        impl Key for $id {
            fn key(&self) -> [u8; 16] {
                self.0.to_be_bytes()
            }
            fn from_key(key: &[u8]) -> Result<Self, StoreError> {
                let bytes: [u8; 16] = key
                    .try_into()
                    .map_err(|_| StoreError::Corrupt(format!("a stored id has 16 bytes, not {}", key.len())))?;
                Ok(Self(u128::from_be_bytes(bytes)))
            }
        }
    )*};
}

keyed!(ShopId, OrderId, PaymentId, ProductId, WarehouseId);

pub fn parse<T: FromStr>(text: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

/// Binds one row's values, left to right, into a multi-row statement.
pub struct Binder<'s, 'c> {
    stmt: &'s mut Statement<'c>,
    next: usize,
}

impl Binder<'_, '_> {
    pub fn put<V: ToSql>(&mut self, value: V) -> Result<(), StoreError> {
        self.stmt.raw_bind_parameter(self.next, value).map_err(err)?;
        self.next += 1;
        Ok(())
    }
}

/// Rows per statement: a batch's rows go in chunks of these sizes, so each table
/// needs at most six prepared statements and a big batch pays one statement
/// execution per 32 rows instead of one per row.
const CHUNKS: [usize; 6] = [32, 16, 8, 4, 2, 1];

/// `INSERT OR ROLLBACK INTO {into} VALUES (…),(…)… {tail}` for `rows`, `columns`
/// values each, bound by `bind` in the order of `into`'s column list.
///
/// `OR ROLLBACK`: every caller fails its whole transaction on a constraint error
/// anyway, and without it SQLite keeps a statement journal for each multi-row insert
/// (a copy of every page the statement touches) so that it could undo just that
/// statement — about a tenth of the writer's time on a CSV import.
pub fn insert_rows<T>(
    conn: &Connection,
    into: &str,
    columns: usize,
    tail: &str,
    rows: &[T],
    mut bind: impl FnMut(&mut Binder<'_, '_>, &T) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut rest = rows;
    while !rest.is_empty() {
        let n = CHUNKS.into_iter().find(|&n| n <= rest.len()).unwrap_or(1);
        let (chunk, after) = rest.split_at(n);
        let mut sql = String::with_capacity(into.len() + tail.len() + 24 + n * (2 * columns + 2));
        sql.push_str("INSERT OR ROLLBACK INTO ");
        sql.push_str(into);
        sql.push_str(" VALUES ");
        for i in 0..n {
            sql.push_str(if i == 0 { "(" } else { ",(" });
            for c in 0..columns {
                sql.push_str(if c == 0 { "?" } else { ",?" });
            }
            sql.push(')');
        }
        sql.push(' ');
        sql.push_str(tail);
        let mut stmt = conn.prepare_cached(&sql).map_err(err)?;
        let mut binder = Binder {
            stmt: &mut stmt,
            next: 1,
        };
        for row in chunk {
            bind(&mut binder, row)?;
        }
        debug_assert_eq!(binder.next, n * columns + 1, "{into}: values bound");
        stmt.raw_execute().map_err(err)?;
        rest = after;
    }
    Ok(())
}

/// Appends events; SQLite's single writer makes `seq` commit-ordered. Each payload
/// is bound as the JSON text it already is.
pub fn insert_events(conn: &Connection, events: &[NewEvent]) -> Result<Option<i64>, StoreError> {
    if events.is_empty() {
        return Ok(None);
    }
    insert_rows(
        conn,
        "events (shop, subject, kind, payload, actor, at)",
        6,
        "",
        events,
        |b, e| {
            b.put(e.shop.map(|s| s.key()))?;
            b.put(&e.subject)?;
            b.put(e.kind)?;
            b.put(e.payload.as_str())?;
            b.put(&e.actor.0)?;
            b.put(e.at.0)
        },
    )?;
    // Rows of one statement get consecutive rowids, so the last row inserted is the
    // last event.
    Ok(Some(conn.last_insert_rowid()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Lists page through orders by `id < cursor` on the stored key, so keys must
        /// sort exactly as the ids' text form (which is creation order) does.
        #[test]
        fn keys_sort_as_ids_do_and_round_trip(a: u128, b: u128) {
            let (a, b) = (OrderId(a), OrderId(b));
            prop_assert_eq!(a.key().cmp(&b.key()), a.to_string().cmp(&b.to_string()));
            prop_assert_eq!(OrderId::from_key(&a.key()).unwrap(), a);
        }
    }

    #[test]
    fn a_key_of_the_wrong_length_is_corrupt_not_a_panic() {
        assert!(matches!(ShopId::from_key(&[1, 2, 3]), Err(StoreError::Corrupt(_))));
    }
}
