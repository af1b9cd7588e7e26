//! `run_batch`: load and lock a working set, let the core decide, persist the
//! decision and its events, all in one transaction.
//!
//! Locks are taken in one global order (the shops' settings, shared; channel
//! references; orders by id; then stock by (sku, warehouse)) so concurrent batches in several processes queue instead of
//! deadlocking. Reads of rows nobody locks (idempotency records, notices) happen
//! after or are protected by those locks, or are backed by a unique index that
//! turns a lost race into a retry.

mod load;
mod persist;

pub(crate) use load::hold_shop_settings;
pub(crate) use persist::update_orders;

use deadpool_postgres::Client;
use ordo_core::batch::LoadRequest;
use ordo_store::{Committed, Decide, Decided, StoreResult};

use crate::error::{db, unique_as_retry};
use crate::events;

pub(crate) async fn run(client: &mut Client, request: LoadRequest, decide: Decide) -> StoreResult<Committed> {
    let tx = client.transaction().await.map_err(db)?;
    let load::Loaded { mut ws, existing_stock } = load::load(&tx, &request).await?;
    let Decided { changes, outcomes } = decide(&mut ws);
    persist::persist(&tx, &changes, &existing_stock)
        .await
        .map_err(unique_as_retry)?;
    let last_event = events::append(&tx, &changes.events).await?;
    tx.commit().await.map_err(db)?;
    Ok(Committed { outcomes, last_event })
}
