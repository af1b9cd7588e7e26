//! The store contract, run against a fresh SQLite file.

use std::sync::Arc;

use ordo_store_sqlite::{Durability, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_meets_the_contract() {
    let dir = std::env::temp_dir().join(format!("ordo-sqlite-contract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("ordo.db"), Durability::Normal).expect("open");
    let outcome = tokio::spawn(ordo_store::contract::run_all(Arc::new(store))).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// The same with `full` durability: commits answered by the syncer after a group fsync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_with_group_fsync_meets_the_contract() {
    let dir = std::env::temp_dir().join(format!("ordo-sqlite-contract-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("ordo.db"), Durability::Full).expect("open");
    let outcome = tokio::spawn(ordo_store::contract::run_all(Arc::new(store))).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}
