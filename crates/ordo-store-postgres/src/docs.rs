//! Reads of aggregates stored whole in a `doc` JSON column.

use deadpool_postgres::Client;
use ordo_store::StoreResult;
use serde::de::DeserializeOwned;
use tokio_postgres::types::ToSql;

use crate::codec::json;
use crate::error::db;

/// Runs a `SELECT doc …` and decodes every row.
pub(crate) async fn fetch_docs<T: DeserializeOwned>(
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<T>> {
    let stmt = client.prepare_cached(sql).await.map_err(db)?;
    let rows = client.query(&stmt, params).await.map_err(db)?;
    rows.iter().map(|r| json(r, "doc")).collect()
}

/// Runs a `SELECT doc …` for at most one row and decodes it.
pub(crate) async fn fetch_doc<T: DeserializeOwned>(
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Option<T>> {
    let stmt = client.prepare_cached(sql).await.map_err(db)?;
    let row = client.query_opt(&stmt, params).await.map_err(db)?;
    row.map(|r| json(&r, "doc")).transpose()
}
