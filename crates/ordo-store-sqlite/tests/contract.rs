//! The store contract, run against a fresh SQLite file with each durability setting.

use std::sync::Arc;

use ordo_store_sqlite::{Durability, SqliteStore};

async fn meets_the_contract(durability: Durability, name: &str) {
    let dir = std::env::temp_dir().join(format!("ordo-sqlite-contract-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("ordo.db"), durability).expect("open");
    let outcome = tokio::spawn(ordo_store::contract::run_all(Arc::new(store))).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_meets_the_contract() {
    meets_the_contract(Durability::Normal, "normal").await;
}

/// With `full` durability: commits answered by the syncer after a group fsync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_with_group_fsync_meets_the_contract() {
    meets_the_contract(Durability::Full, "full").await;
}
