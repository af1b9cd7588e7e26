//! Reading columns back into domain values. Nothing here trusts the database: every
//! failure becomes [`StoreError::Corrupt`] naming the column.

use std::fmt::Display;
use std::str::FromStr;

use ordo_store::{StoreError, StoreResult};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::error::corrupt;

/// A column of any type the driver can decode.
pub(crate) fn col<'a, T: FromSql<'a>>(row: &'a Row, name: &str) -> StoreResult<T> {
    row.try_get(name).map_err(|e| corrupt(name, e))
}

/// A text column holding a value in its `FromStr` form (ids, currencies).
pub(crate) fn parsed<T>(row: &Row, name: &str) -> StoreResult<T>
where
    T: FromStr,
    T::Err: Display,
{
    let text: &str = col(row, name)?;
    text.parse().map_err(|e| corrupt(name, e))
}

/// A nullable text column holding a value in its `FromStr` form.
pub(crate) fn parsed_opt<T>(row: &Row, name: &str) -> StoreResult<Option<T>>
where
    T: FromStr,
    T::Err: Display,
{
    let text: Option<&str> = col(row, name)?;
    text.map(|t| t.parse().map_err(|e| corrupt(name, e))).transpose()
}

/// A text column holding serde JSON.
pub(crate) fn json<T: DeserializeOwned>(row: &Row, name: &str) -> StoreResult<T> {
    let text: &str = col(row, name)?;
    serde_json::from_str(text).map_err(|e| corrupt(name, e))
}

/// Serialises a value for a JSON text column.
pub(crate) fn to_json<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("cannot serialise a record: {e}")))
}

/// A text column holding a name that a `parse` function maps to an enum.
pub(crate) fn named<T>(row: &Row, name: &str, parse: fn(&str) -> Option<T>) -> StoreResult<T> {
    let text: &str = col(row, name)?;
    parse(text).ok_or_else(|| corrupt(name, format!("unknown value `{text}`")))
}

/// Row limits arrive as `u32`; SQL takes `BIGINT`.
pub(crate) fn limit(n: u32) -> i64 {
    i64::from(n)
}
