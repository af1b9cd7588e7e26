//! Runs the store contract, and the checks only PostgreSQL needs, each against a
//! database of its own that is created for the run and dropped after it.
//!
//! PostgreSQL must be reachable at `ORDO_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); when it is not, the tests fail:
//! a skipped backend would look like a passing one.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use ordo_core::{OrderId, ShopId};
use ordo_store::{Store, StoreError};
use ordo_store_postgres::PgStore;
use tokio_postgres::{Client, NoTls};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_meets_the_contract() {
    let db = TestDatabase::create().await;
    let store = db.migrated_store().await;
    let outcome = tokio::spawn(ordo_store::contract::run_all(Arc::new(store))).await;
    db.finish(outcome).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_once() {
    let db = TestDatabase::create().await;
    let outcome = tokio::spawn({
        let url = db.url.clone();
        async move {
            let (first, second) = tokio::join!(PgStore::connect(&url), PgStore::connect(&url));
            let (first, second) = (first.expect("connect"), second.expect("connect"));
            let (a, b) = tokio::join!(first.migrate(), second.migrate());
            a.expect("first migration");
            b.expect("second migration");
            first
                .migrate()
                .await
                .expect("migrating an up-to-date database is a no-op");
        }
    })
    .await;
    let applied = db.admin_query_count("SELECT count(*) FROM schema_migrations").await;
    db.finish(outcome).await;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations dir")
        .count();
    assert_eq!(applied, files as i64, "each migration is recorded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_rows_are_reported_as_corrupt() {
    let db = TestDatabase::create().await;
    let store = db.migrated_store().await;
    let shop = ShopId(7);
    let order = OrderId(8);
    db.execute(&format!(
        "INSERT INTO shops (id, name, settings, created_at) VALUES ('{shop}', 'broken', 'not json', 0);
         INSERT INTO orders (id, shop, status, channel, created_at, doc)
             VALUES ('{order}', '{shop}', 'paid', 'web', 0, '{{\"id\": 1}}');
         INSERT INTO orders (id, shop, status, channel, created_at, doc)
             VALUES ('not-an-id', '{shop}', 'paid', 'web', 0, '{{}}');"
    ))
    .await;
    let outcome = tokio::spawn(async move {
        assert!(matches!(store.get_shop(shop).await, Err(StoreError::Corrupt(_))));
        assert!(matches!(
            store.get_order(shop, order).await,
            Err(StoreError::Corrupt(_))
        ));
        let due = store.due_unpaid(ordo_core::Timestamp(0), 10).await;
        assert!(due.is_ok_and(|d| d.is_empty()));
        let filter = ordo_store::OrderFilter {
            limit: 10,
            ..Default::default()
        };
        assert!(matches!(
            store.list_orders(shop, &filter).await,
            Err(StoreError::Corrupt(_))
        ));
    })
    .await;
    db.finish(outcome).await;
}

#[tokio::test]
async fn an_unreachable_server_is_reported_unavailable() {
    // Port 1 on loopback refuses connections at once.
    match PgStore::connect("postgres://postgres@127.0.0.1:1/nowhere").await {
        Err(StoreError::Unavailable(why)) => assert!(why.contains("refused"), "{why}"),
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("connected to a port nothing listens on"),
    }
}

/// A database created for one test. `finish` drops it, whatever the test's outcome.
struct TestDatabase {
    admin: Client,
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create() -> TestDatabase {
        let admin_url = std::env::var("ORDO_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
        let admin = connect(&admin_url).await;
        let name = format!("ordo_test_{:016x}", RandomState::new().hash_one(std::process::id()));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        let url = with_database(&admin_url, &name);
        TestDatabase { admin, name, url }
    }

    async fn migrated_store(&self) -> PgStore {
        let store = PgStore::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test database {}: {e}", self.name));
        store.migrate().await.expect("migrations apply to an empty database");
        store
    }

    /// Runs SQL in the test database (not through the store).
    async fn execute(&self, sql: &str) {
        let client = connect(&self.url).await;
        client.batch_execute(sql).await.expect("test setup SQL");
    }

    async fn admin_query_count(&self, sql: &str) -> i64 {
        let client = connect(&self.url).await;
        client.query_one(sql, &[]).await.expect("count query").get(0)
    }

    /// Drops the database, then re-raises the test's panic if it had one.
    async fn finish(self, outcome: Result<(), tokio::task::JoinError>) {
        let dropped = self
            .admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .await;
        if let Err(err) = outcome {
            std::panic::resume_unwind(err.into_panic());
        }
        dropped.unwrap_or_else(|e| panic!("cannot drop the test database {}: {e}", self.name));
    }
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {url}: {e}{}\n\
             The PostgreSQL store tests need a running server; start one or point \
             ORDO_TEST_POSTGRES_URL at one (e.g. postgres://postgres@127.0.0.1:5432/test).",
            std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default()
        )
    });
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("test connection closed: {e}");
        }
    });
    client
}

/// The same server and credentials as `url`, database `name`. Takes a
/// `postgres://` URL or a `key=value` connection string.
fn with_database(url: &str, name: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // key=value form: a later key overrides an earlier one.
        return format!("{url} dbname={name}");
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = location.split_once('/').map_or(location, |(authority, _)| authority);
    format!("{scheme}://{authority}/{name}{query}")
}

#[test]
fn test_database_urls_keep_everything_but_the_name() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
        "postgresql://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h:5432", "x"), "postgres://h:5432/x");
    assert_eq!(
        with_database("host=h user=u dbname=db", "x"),
        "host=h user=u dbname=db dbname=x"
    );
}
