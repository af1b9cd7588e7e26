//! Turns driver and pool errors into [`StoreError`], once, here.

use std::fmt::Display;

use ordo_store::StoreError;
use tokio_postgres::error::DbError;

/// Maps an error from running a statement.
pub(crate) fn db(err: tokio_postgres::Error) -> StoreError {
    if let Some(db) = err.as_db_error() {
        return from_server(db);
    }
    if err.is_closed() || caused_by_io(&err) {
        return StoreError::Unavailable(with_causes(&err));
    }
    StoreError::Backend(with_causes(&err))
}

/// The error and its causes: the driver's own message ("error connecting to
/// server") leaves out the part that helps ("Connection refused").
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Maps a failure to get a connection from the pool.
pub(crate) fn pool(err: deadpool_postgres::PoolError) -> StoreError {
    match err {
        deadpool_postgres::PoolError::Backend(e) => match db(e) {
            StoreError::Backend(msg) => StoreError::Unavailable(msg),
            other => other,
        },
        other => StoreError::Unavailable(with_causes(&other)),
    }
}

/// A stored value that does not read back as what was written.
pub(crate) fn corrupt(what: &str, err: impl Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {err}"))
}

/// Inside a batch every uniqueness rule was checked against the rows the batch
/// loaded, so a violation means a concurrent batch inserted the same row after our
/// load; running the batch again loads that row and decides correctly.
pub(crate) fn unique_as_retry(err: StoreError) -> StoreError {
    match err {
        StoreError::Conflict(msg) => StoreError::Retry(format!("a concurrent batch wrote the same row first: {msg}")),
        other => other,
    }
}

fn from_server(db: &DbError) -> StoreError {
    let code = db.code().code();
    let detail = describe(db);
    match code {
        "23505" => StoreError::Conflict(detail),
        // The referenced row (in practice: the shop) does not exist.
        "23503" => StoreError::NotFound,
        "40001" | "40P01" | "55P03" => StoreError::Retry(detail),
        // Connection exceptions, bad credentials, missing database, resource
        // exhaustion and server shutdown all mean "the database cannot serve us now".
        c if c.starts_with("08") || c.starts_with("28") || c.starts_with("53") || c.starts_with("57P") => {
            StoreError::Unavailable(detail)
        }
        "3D000" => StoreError::Unavailable(detail),
        _ => StoreError::Backend(detail),
    }
}

fn describe(db: &DbError) -> String {
    match db.constraint() {
        Some(constraint) => format!("{} (constraint {constraint})", db.message()),
        None => format!("{} ({})", db.message(), db.code().code()),
    }
}

fn caused_by_io(err: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if e.is::<std::io::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}
