//! Conversions between rows and domain values, and SQLite error mapping.

use std::str::FromStr;

use ordo_core::event::NewEvent;
use ordo_store::StoreError;
use rusqlite::{Connection, ErrorCode, params};
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

pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn parse<T: FromStr>(text: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

/// Appends events; SQLite's single writer makes `seq` commit-ordered.
pub fn insert_events(conn: &Connection, events: &[NewEvent]) -> Result<Option<i64>, StoreError> {
    let mut stmt = conn
        .prepare_cached("INSERT INTO events (shop, subject, kind, payload, actor, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .map_err(err)?;
    let mut last = None;
    for e in events {
        stmt.execute(params![
            e.shop.map(|s| s.to_string()),
            e.subject,
            e.kind,
            to_json(&e.payload)?,
            e.actor.0,
            e.at.0
        ])
        .map_err(err)?;
        last = Some(conn.last_insert_rowid());
    }
    Ok(last)
}
