//! SQLite backend: the embedded default.
//!
//! One dedicated writer thread owns the only write connection (SQLite allows one
//! writer; a thread avoids lock contention and keeps prepared statements hot).
//! Writes reach it through the decider thread, which decides each group-commit
//! batch while the writer writes the one before (`pipeline`). Reads use a small
//! pool of WAL read connections on tokio's blocking threads.

mod batch;
mod channels;
mod checkpoint;
mod codec;
mod codes;
mod epoch;
mod ledger;
mod notifications;
mod overlay;
mod pipeline;
mod reads;
#[cfg(test)]
mod scratch;
mod syncer;
mod wal_ahead;
mod writes;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use async_trait::async_trait;
use ordo_core::batch::{IdempotencyRecord, LoadRequest};
use ordo_core::catalog::{Product, Shop, ShopSettings, Warehouse};
use ordo_core::channel::{RawChannelOrder, RawStatus, SkuMapping};
use ordo_core::event::{Event, NewEvent};
use ordo_core::inventory::{LedgerEntry, StockLevel};
use ordo_core::order::Order;
use ordo_core::payment::{Payment, Refund};
use ordo_core::{ApiKeyId, ChannelOrderId, EventSeq, OrderId, ProductId, ShopId, Timestamp, WarehouseId};
use ordo_store::{
    ApiKeyRecord, AttemptOutcome, Committed, Decide, Gauge, NewCode, NewNotification, NotificationAttempt,
    NotificationFilter, NotificationRecord, OrderFilter, SealedCode, StockTotals, Store, StoreError, StoreResult,
};
use rusqlite::Connection;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_payment_reminder.sql")),
    (3, include_str!("../migrations/0003_limits_and_channels.sql")),
    (4, include_str!("../migrations/0004_notifications.sql")),
    (5, include_str!("../migrations/0005_code_pools.sql")),
    (6, include_str!("../migrations/0006_narrow_append_indexes.sql")),
    (7, include_str!("../migrations/0007_payments_keyed_by_order.sql")),
    (8, include_str!("../migrations/0008_shop_keys.sql")),
    (9, include_str!("../migrations/0009_id_keys.sql")),
    (10, include_str!("../migrations/0010_batch_epoch.sql")),
    (11, include_str!("../migrations/0011_one_timer_index.sql")),
    (12, include_str!("../migrations/0012_ledger_chunks.sql")),
];
const READERS: usize = 4;

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync on every commit: an acknowledged order survives power loss (default).
    Full,
    /// fsync at checkpoints only: survives a process crash, may lose the last
    /// commits on power loss. Faster.
    Normal,
}

pub struct SqliteStore {
    /// To the decider thread, which passes every write on to the writer thread.
    writes: mpsc::SyncSender<pipeline::Work>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
    /// Tells the checkpointer to finish when the store is dropped.
    stop: Arc<AtomicBool>,
    /// The last event known to be on disk: readers of the event log stop there, so
    /// nothing is published that a power loss could still take back.
    durable_seq: Arc<AtomicI64>,
    /// Writes handed over and not yet taken on (see `pipeline::Idle`).
    idle: pipeline::Idle,
    /// Frames in the WAL after this process's last commit (for `/metrics`).
    wal_frames: Arc<AtomicU64>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Work for the writer thread; it returns the answer to give once the work is durable.
type Job = Box<dyn FnOnce(&mut Connection) -> Answer + Send>;
/// Answers a caller; called with the error if the commit could not be made durable.
pub(crate) type Answer = Box<dyn FnOnce(Option<StoreError>) + Send>;

/// The answer that sends `result` to `tx`, or the durability error if there is one.
pub(crate) fn reply_when_durable<T: Send + 'static>(
    tx: tokio::sync::oneshot::Sender<StoreResult<T>>,
    result: StoreResult<T>,
) -> Answer {
    Box::new(move |not_durable: Option<StoreError>| {
        let _ = tx.send(match (result, not_durable) {
            (Ok(_), Some(e)) => Err(e),
            (result, _) => result,
        });
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and migrates it.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> StoreResult<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let mut conn = open_connection(&path, durability)?;
        migrate(&mut conn)?;
        let readers = (0..READERS)
            .map(|_| open_connection(&path, durability))
            .collect::<StoreResult<Vec<_>>>()?;
        // Checkpoints copy the WAL back into the database file; doing them on their own
        // thread keeps that copy off the writer's commit path.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(codec::err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(codec::err)?;
        let restart = checkpoint::RestartWanted::new(page_size);
        checkpoint::spawn_background(
            open_connection(&path, durability)?,
            wal_path(&path),
            stop.clone(),
            restart.clone(),
        )?;
        let durable_seq = Arc::new(AtomicI64::new(i64::MAX));
        let syncer = match durability {
            // Commits skip their own fsync; the syncer makes them durable in groups.
            Durability::Full => {
                conn.execute_batch("PRAGMA synchronous = NORMAL;").map_err(codec::err)?;
                durable_seq.store(last_event_seq(&conn), Ordering::Release);
                Some(syncer::spawn(wal_path(&path), durable_seq.clone())?)
            }
            Durability::Normal => None,
        };
        let mut wal_ahead = wal_ahead::WalAhead::install(&mut conn, wal_path(&path))?;
        let wal_frames = wal_ahead.frames_counter();
        let memory = Arc::new(pipeline::WriterMemory::new());
        let progress = Arc::new(pipeline::Progress::default());
        let (to_writer, jobs) = mpsc::sync_channel::<Job>(1024);
        let stops = pipeline::StopsProgress(progress.clone());
        std::thread::Builder::new()
            .name("ordo-sqlite-writer".into())
            .spawn(move || {
                while let Ok(job) = jobs.recv() {
                    let answer = job(&mut conn);
                    stops.0.finished_one();
                    wal_ahead.top_up(&conn);
                    match &syncer {
                        Some(syncer) => {
                            if syncer.send((answer, last_event_seq(&conn))).is_err() {
                                return;
                            }
                        }
                        None => answer(None),
                    }
                    restart.finish_copy(&conn, wal_ahead.frames());
                }
            })
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let idle = pipeline::Idle::default();
        let decider = pipeline::Decider {
            reader: open_connection(&path, durability)?,
            to_writer,
            progress,
            memory,
            idle: idle.clone(),
        };
        let (writes, work) = mpsc::sync_channel::<pipeline::Work>(1024);
        std::thread::Builder::new()
            .name("ordo-sqlite-decider".into())
            .spawn(move || decider.run(work))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(SqliteStore {
            writes,
            readers: Arc::new(Mutex::new(readers)),
            path,
            stop,
            durable_seq,
            idle,
            wal_frames,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the writer thread and waits for its result.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let idle = self.idle.clone();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            idle.one_done();
            reply_when_durable(tx, result)
        });
        self.submit(pipeline::Work::Write(job), rx).await
    }

    /// Hands `work` to the decider thread and waits for its answer on `rx`.
    async fn submit<T>(
        &self,
        work: pipeline::Work,
        rx: tokio::sync::oneshot::Receiver<StoreResult<T>>,
    ) -> StoreResult<T> {
        self.idle.one_more();
        if self.writes.send(work).is_err() {
            self.idle.one_done();
            return Err(StoreError::Unavailable("writer thread stopped".into()));
        }
        rx.await
            .map_err(|_| StoreError::Unavailable("writer thread stopped".into()))?
    }

    /// Runs `f` on a pooled read connection on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool
                .lock()
                .map_err(|_| StoreError::Backend("reader pool poisoned".into()))?
                .pop();
            let conn = match conn {
                Some(c) => c,
                None => open_connection(&path, Durability::Normal)?,
            };
            let result = f(&conn);
            if let Ok(mut p) = pool.lock()
                && p.len() < READERS
            {
                p.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}

/// The highest event sequence number written so far (0 when there is none).
fn last_event_seq(conn: &Connection) -> i64 {
    conn.prepare_cached("SELECT coalesce(max(seq), 0) FROM events")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .unwrap_or(0)
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// The page size of a new database file (an existing file keeps its own). An order
/// row is ~1 KB and every commit appends to the right edge of ten B-trees: against
/// 4 KiB pages, 8 KiB ones made the CSV import ~13 % faster with less kernel time
/// (BENCHMARKS.md, eighth pass), and 16 KiB ones no faster than 8.
pub(crate) const PAGE_SIZE: i64 = 8192;

fn open_connection(path: &Path, durability: Durability) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE_SIZE}; PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA busy_timeout = 10000; \
         PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;"
    ))
    .map_err(codec::err)?;
    // A fixed plan per statement: without it, a cached statement whose plan looked at
    // a bound value is compiled again after every rebind.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(codec::err)?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    migrate_below(conn, i64::MAX)
}

/// Applies the migrations numbered below `version` (tests build older schemas with it).
fn migrate_below(conn: &mut Connection, version: i64) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(codec::err)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .map_err(codec::err)?;
    // Every version not yet recorded (not just those above the highest), so a
    // migration numbered below one already applied still runs.
    let applied: Vec<i64> = tx
        .prepare("SELECT version FROM schema_migrations")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(codec::err)?;
    let due = MIGRATIONS.iter().filter(|(v, _)| *v < version && !applied.contains(v));
    for (number, sql) in due {
        tx.execute_batch(sql).map_err(codec::err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, strftime('%s','now') * 1000)",
            [number],
        )
        .map_err(codec::err)?;
    }
    tx.commit().map_err(codec::err)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn run_batch(&self, request: LoadRequest, decide: Decide) -> StoreResult<Committed> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.submit(
            pipeline::Work::Batch {
                request: Box::new(request),
                decide,
                reply,
            },
            rx,
        )
        .await
    }

    /// Three: the decider thread decides one batch while the writer thread writes
    /// the one before and the syncer flushes the one before that.
    fn batches_in_flight(&self) -> usize {
        3
    }

    async fn wait_until_idle(&self) {
        self.idle.wait().await
    }

    fn gauges(&self) -> Vec<Gauge> {
        vec![Gauge {
            name: "ordo_sqlite_wal_frames",
            help: "Frames in the SQLite WAL after this process's last commit; it falls back each time the \
                   WAL is started over, so steady growth means checkpoints cannot catch up, e.g. behind a long read",
            value: self.wal_frames.load(Ordering::Relaxed),
        }]
    }

    async fn create_shop(&self, shop: &Shop, event: NewEvent) -> StoreResult<()> {
        let shop = shop.clone();
        self.write(move |c| writes::create_shop(c, &shop, event)).await
    }
    async fn get_shop(&self, id: ShopId) -> StoreResult<Shop> {
        self.read(move |c| reads::get_shop(c, id)).await
    }
    async fn list_shops(&self) -> StoreResult<Vec<Shop>> {
        self.read(reads::list_shops).await
    }
    async fn update_shop_settings(&self, id: ShopId, settings: &ShopSettings, event: NewEvent) -> StoreResult<()> {
        let settings = settings.clone();
        self.write(move |c| writes::update_shop_settings(c, id, &settings, event))
            .await
    }
    async fn create_api_key(&self, key: &ApiKeyRecord, event: NewEvent) -> StoreResult<()> {
        let key = key.clone();
        self.write(move |c| writes::create_api_key(c, &key, event)).await
    }
    async fn find_api_key(&self, secret_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let hash = secret_hash.to_string();
        self.read(move |c| reads::find_api_key(c, &hash)).await
    }
    async fn list_api_keys(&self, shop: ShopId) -> StoreResult<Vec<ApiKeyRecord>> {
        self.read(move |c| reads::list_api_keys(c, shop)).await
    }
    async fn revoke_api_key(&self, shop: ShopId, id: ApiKeyId, at: Timestamp, event: NewEvent) -> StoreResult<()> {
        self.write(move |c| writes::revoke_api_key(c, shop, id, at, event))
            .await
    }
    async fn put_gateway_secret(&self, shop: ShopId, gateway: &str, secret: &str, event: NewEvent) -> StoreResult<()> {
        let (gateway, secret) = (gateway.to_string(), secret.to_string());
        self.write(move |c| writes::put_gateway_secret(c, shop, &gateway, &secret, event))
            .await
    }
    async fn gateway_secret(&self, shop: ShopId, gateway: &str) -> StoreResult<Option<String>> {
        let gateway = gateway.to_string();
        self.read(move |c| reads::gateway_secret(c, shop, &gateway)).await
    }

    async fn put_channel(
        &self,
        shop: ShopId,
        channel: &str,
        secret: &str,
        at: Timestamp,
        event: NewEvent,
    ) -> StoreResult<()> {
        let (channel, secret) = (channel.to_string(), secret.to_string());
        self.write(move |c| channels::put_channel(c, shop, &channel, &secret, at, event))
            .await
    }
    async fn channel_secret(&self, shop: ShopId, channel: &str) -> StoreResult<Option<String>> {
        let channel = channel.to_string();
        self.read(move |c| channels::channel_secret(c, shop, &channel)).await
    }
    async fn put_sku_mappings(
        &self,
        shop: ShopId,
        channel: &str,
        mappings: &[SkuMapping],
        event: NewEvent,
    ) -> StoreResult<()> {
        let (channel, mappings) = (channel.to_string(), mappings.to_vec());
        self.write(move |c| channels::put_sku_mappings(c, shop, &channel, &mappings, event))
            .await
    }
    async fn sku_mappings(&self, shop: ShopId, channel: &str) -> StoreResult<Vec<SkuMapping>> {
        let channel = channel.to_string();
        self.read(move |c| channels::sku_mappings(c, shop, &channel)).await
    }
    async fn get_channel_order(&self, shop: ShopId, id: ChannelOrderId) -> StoreResult<RawChannelOrder> {
        self.read(move |c| channels::get_channel_order(c, shop, id)).await
    }
    async fn list_channel_orders(
        &self,
        shop: ShopId,
        status: Option<RawStatus>,
        cursor: Option<ChannelOrderId>,
        limit: u32,
    ) -> StoreResult<Vec<RawChannelOrder>> {
        self.read(move |c| channels::list_channel_orders(c, shop, status, cursor, limit))
            .await
    }

    async fn add_codes(
        &self,
        shop: ShopId,
        sku: ProductId,
        codes: &[NewCode],
        event: NewEvent,
    ) -> StoreResult<(u64, i64)> {
        let codes = codes.to_vec();
        self.write(move |c| codes::add_codes(c, shop, sku, &codes, event)).await
    }
    async fn codes_of_order(&self, shop: ShopId, order: OrderId) -> StoreResult<Vec<SealedCode>> {
        self.read(move |c| codes::codes_of_order(c, shop, order)).await
    }
    async fn codes_available(&self, shop: ShopId, sku: ProductId) -> StoreResult<i64> {
        self.read(move |c| codes::codes_available(c, shop, sku)).await
    }

    async fn create_product(&self, product: &Product, event: NewEvent) -> StoreResult<()> {
        let product = product.clone();
        self.write(move |c| writes::create_product(c, &product, event)).await
    }
    async fn update_product(&self, product: &Product, event: NewEvent) -> StoreResult<()> {
        let product = product.clone();
        self.write(move |c| writes::update_product(c, &product, event)).await
    }
    async fn get_product(&self, shop: ShopId, id: ProductId) -> StoreResult<Product> {
        self.read(move |c| reads::get_product(c, shop, id)).await
    }
    async fn find_product_by_sku(&self, shop: ShopId, sku: &str) -> StoreResult<Option<Product>> {
        let sku = sku.to_string();
        self.read(move |c| reads::find_product_by_sku(c, shop, &sku)).await
    }
    async fn list_products(&self, shop: ShopId, cursor: Option<ProductId>, limit: u32) -> StoreResult<Vec<Product>> {
        self.read(move |c| reads::list_products(c, shop, cursor, limit)).await
    }
    async fn create_warehouse(&self, warehouse: &Warehouse, event: NewEvent) -> StoreResult<()> {
        let warehouse = warehouse.clone();
        self.write(move |c| writes::create_warehouse(c, &warehouse, event))
            .await
    }
    async fn list_warehouses(&self, shop: ShopId) -> StoreResult<Vec<Warehouse>> {
        self.read(move |c| reads::list_warehouses(c, shop)).await
    }

    async fn stock_of(&self, shop: ShopId, sku: ProductId) -> StoreResult<Vec<StockLevel>> {
        self.read(move |c| reads::stock_of(c, shop, sku)).await
    }
    async fn list_stock(&self, shop: ShopId, warehouse: Option<WarehouseId>) -> StoreResult<Vec<StockLevel>> {
        self.read(move |c| reads::list_stock(c, shop, warehouse)).await
    }
    async fn ledger(
        &self,
        shop: ShopId,
        sku: ProductId,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, LedgerEntry)>> {
        self.read(move |c| ledger::read(c, shop, sku, after, limit)).await
    }

    async fn get_order(&self, shop: ShopId, id: OrderId) -> StoreResult<Order> {
        self.read(move |c| reads::get_order(c, shop, id)).await
    }
    async fn list_orders(&self, shop: ShopId, filter: &OrderFilter) -> StoreResult<Vec<Order>> {
        let filter = filter.clone();
        self.read(move |c| reads::list_orders(c, shop, &filter)).await
    }
    async fn payments_of(&self, shop: ShopId, order: OrderId) -> StoreResult<Vec<Payment>> {
        self.read(move |c| reads::payments_of(c, shop, order)).await
    }
    async fn refunds_of(&self, shop: ShopId, order: OrderId) -> StoreResult<Vec<Refund>> {
        self.read(move |c| reads::refunds_of(c, shop, order)).await
    }
    async fn due_unpaid(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(ShopId, OrderId)>> {
        self.read(move |c| reads::due_unpaid(c, now, limit)).await
    }
    async fn due_reminders(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(ShopId, OrderId)>> {
        self.read(move |c| reads::due_reminders(c, now, limit)).await
    }

    async fn get_idempotency(&self, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
        let (scope, key) = (scope.to_string(), key.to_string());
        self.read(move |c| reads::get_idempotency(c, &scope, &key)).await
    }
    async fn put_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<bool> {
        let record = record.clone();
        self.write(move |c| writes::put_idempotency_alone(c, &record)).await
    }

    async fn events_after(&self, shop: Option<ShopId>, after: EventSeq, limit: u32) -> StoreResult<Vec<Event>> {
        let durable = self.durable_seq.load(Ordering::Acquire);
        self.read(move |c| reads::events_after(c, shop, after, durable, limit))
            .await
    }
    async fn append_events(&self, events: Vec<NewEvent>) -> StoreResult<()> {
        self.write(move |c| writes::append_events(c, events)).await
    }
    async fn stock_totals(&self, shop: ShopId) -> StoreResult<StockTotals> {
        self.read(move |c| reads::stock_totals(c, shop)).await
    }

    // Notifications.
    async fn notification_cursor(&self) -> StoreResult<EventSeq> {
        self.read(notifications::cursor).await
    }
    async fn enqueue_notifications(&self, items: Vec<NewNotification>, cursor: EventSeq) -> StoreResult<u64> {
        self.write(move |c| notifications::enqueue(c, &items, cursor)).await
    }
    async fn due_notifications(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<NotificationRecord>> {
        self.read(move |c| notifications::due(c, now, limit)).await
    }
    async fn claim_notifications(&self, ids: &[i64], now: Timestamp, lease_until: Timestamp) -> StoreResult<Vec<i64>> {
        let ids = ids.to_vec();
        self.write(move |c| notifications::claim(c, &ids, now, lease_until))
            .await
    }
    async fn record_notification_attempt(
        &self,
        id: i64,
        attempt: &NotificationAttempt,
        then: AttemptOutcome,
    ) -> StoreResult<()> {
        let attempt = attempt.clone();
        self.write(move |c| notifications::record_attempt(c, id, &attempt, then))
            .await
    }
    async fn list_notifications(
        &self,
        shop: ShopId,
        filter: &NotificationFilter,
    ) -> StoreResult<Vec<NotificationRecord>> {
        let filter = filter.clone();
        self.read(move |c| notifications::list(c, shop, &filter)).await
    }
    async fn notification_attempts(&self, shop: ShopId, ids: &[i64]) -> StoreResult<Vec<NotificationAttempt>> {
        let ids = ids.to_vec();
        self.read(move |c| notifications::attempts(c, shop, &ids)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_core::auth::Actor;
    use rusqlite::params;

    use crate::codec::Key;
    use crate::scratch::Scratch;

    fn event(n: i64) -> NewEvent {
        NewEvent {
            shop: None,
            subject: format!("test_{n}"),
            kind: "test.happened",
            payload: serde_json::json!({ "n": n }).into(),
            actor: Actor::system("test"),
            at: Timestamp(n),
        }
    }

    #[test]
    fn the_event_log_is_read_only_up_to_the_durable_mark() {
        let dir = Scratch::new("durable");
        let mut conn = open_connection(&dir.db(), Durability::Full).unwrap();
        migrate(&mut conn).unwrap();
        let events: Vec<NewEvent> = (1..=5).map(event).collect();
        let last = codec::insert_events(&conn, &events).unwrap().unwrap();
        let seqs = |upto| -> Vec<i64> {
            reads::events_after(&conn, None, 0, upto, 100)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect()
        };
        assert_eq!(seqs(last - 2), vec![last - 4, last - 3, last - 2]);
        assert_eq!(seqs(last).len(), 5);
        assert!(seqs(0).is_empty());
    }

    /// A write that is not a batch moves the epoch in its own transaction, so a
    /// batch another process decided before it is not written over it.
    #[test]
    fn writes_beside_batches_move_the_batch_epoch() {
        let dir = Scratch::new("epoch");
        let mut conn = open_connection(&dir.db(), Durability::Normal).unwrap();
        migrate(&mut conn).unwrap();
        let before = epoch::Epoch::read(&conn).unwrap();
        let shop = Shop {
            id: ShopId(5),
            name: "epoch".into(),
            settings: ShopSettings::new(ordo_core::Currency::CNY),
            created_at: Timestamp(1),
        };
        writes::create_shop(&mut conn, &shop, event(1)).unwrap();
        let record = IdempotencyRecord {
            scope: "s".into(),
            key: "k".into(),
            request_hash: "h".into(),
            status_code: 201,
            resource: "r".into(),
            created_at: Timestamp(1),
        };
        assert!(writes::put_idempotency_alone(&mut conn, &record).unwrap());
        let after = epoch::Epoch::read(&conn).unwrap();
        assert_eq!(after.n, before.n + 2);
        assert_eq!(after.writer, epoch::NOT_A_BATCH);
    }

    /// New files get the larger pages; a file made before keeps its 4 KiB pages and
    /// opens and migrates as before.
    #[test]
    fn new_databases_get_8_kib_pages_and_old_ones_keep_theirs() {
        let page_size = |conn: &Connection| -> i64 { conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap() };
        let fresh = Scratch::new("pages-new");
        let mut conn = open_connection(&fresh.db(), Durability::Normal).unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(page_size(&conn), PAGE_SIZE);
        let old = Scratch::new("pages-old");
        let before = Connection::open(old.db()).unwrap();
        before
            .execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE kept (v TEXT); INSERT INTO kept VALUES ('x');")
            .unwrap();
        drop(before);
        let mut conn = open_connection(&old.db(), Durability::Normal).unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(page_size(&conn), 4096);
        let kept: String = conn.query_row("SELECT v FROM kept", [], |r| r.get(0)).unwrap();
        assert_eq!(kept, "x");
    }

    /// Both timers read one index on an order's next timer; each finds only its own
    /// due orders, whichever of the two timers is next.
    #[test]
    fn the_payment_timers_share_one_index() {
        let dir = Scratch::new("timers");
        let mut conn = open_connection(&dir.db(), Durability::Normal).unwrap();
        migrate(&mut conn).unwrap();
        // (order, status, reminder, deadline)
        let rows: [(u128, &str, Option<i64>, Option<i64>); 6] = [
            (1, "pending_payment", Some(10), Some(20)), // reminder due, deadline not
            (2, "pending_payment", Some(5), Some(8)),   // both due
            (3, "pending_payment", None, Some(9)),      // reminder sent, deadline due
            (4, "pending_payment", Some(30), Some(40)), // neither due
            (5, "pending_payment", None, Some(50)),     // reminder sent, deadline not due
            (6, "paid", None, None),                    // timers cleared
        ];
        for (id, status, reminder, deadline) in rows {
            conn.execute(
                "INSERT INTO orders (id, shop, status, channel, created_at, doc, payment_reminder_at, payment_due_at) \
                 VALUES (?1, ?2, ?3, 'api', 1, '{}', ?4, ?5)",
                params![OrderId(id).key(), ShopId(7).key(), status, reminder, deadline],
            )
            .unwrap();
        }
        let ids = |found: Vec<(ShopId, OrderId)>| -> Vec<u128> { found.iter().map(|(_, o)| o.0).collect() };
        assert_eq!(ids(reads::due_unpaid(&conn, Timestamp(15), 10).unwrap()), vec![2, 3]);
        assert_eq!(ids(reads::due_reminders(&conn, Timestamp(15), 10).unwrap()), vec![2, 1]);
        assert_eq!(
            ids(reads::due_unpaid(&conn, Timestamp(100), 10).unwrap()),
            vec![2, 3, 1, 4, 5]
        );
        assert_eq!(ids(reads::due_unpaid(&conn, Timestamp(100), 2).unwrap()), vec![2, 3]);
        for sql in [reads::DUE_UNPAID, reads::DUE_REMINDERS] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params![15, 10], |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter().any(|p| p.contains("USING INDEX orders_next_timer")),
                "{plan:?}"
            );
            assert!(
                !plan.iter().any(|p| p.contains("TEMP B-TREE")),
                "sorted by the index: {plan:?}"
            );
        }
    }

    #[test]
    fn a_database_from_before_id_keys_keeps_every_row() {
        let dir = Scratch::new("shop-keys");
        let mut conn = open_connection(&dir.db(), Durability::Normal).unwrap();
        // The schema as it was before migration 8, with rows naming ids by text.
        migrate_below(&mut conn, 8).unwrap();
        let (a, b) = (ShopId(0x0193_0000_0000_7000_8000_0000_0000_00aa), ShopId(7));
        let order = OrderId(42);
        conn.execute(
            "INSERT INTO orders (id, shop, status, channel, created_at, doc) VALUES (?1, ?2, 'paid', 'api', 1, ?3)",
            params![order.to_string(), a.to_string(), format!(r#"{{"marker":"{order}"}}"#)],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO events (shop, subject, kind, payload, actor, at) VALUES (?1, 's', 'k', '{}', 'x', 1), \
             (?2, 's', 'k', '{}', 'x', 2), (NULL, 's', 'k', '{}', 'x', 3)",
            params![a.to_string(), b.to_string()],
        )
        .unwrap();
        let (sku, warehouse, payment) = (ProductId(9), WarehouseId(10), ordo_core::PaymentId(11));
        conn.execute(
            "INSERT INTO stock_ledger (shop, sku, warehouse, on_hand_delta, reserved_delta, reason, order_id, actor, at) \
             VALUES (?1, ?2, ?3, 5, 0, 'receive', ?4, 'x', 1)",
            params![a.to_string(), sku.to_string(), warehouse.to_string(), order.to_string()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO payments (order_id, id, shop, status, doc) VALUES (?1, ?2, ?3, 'pending', '{}')",
            params![order.to_string(), payment.to_string(), a.to_string()],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let shops: Vec<Option<ShopId>> = reads::events_after(&conn, None, 0, i64::MAX, 10)
            .unwrap()
            .iter()
            .map(|e| e.shop)
            .collect();
        assert_eq!(shops, vec![Some(a), Some(b), None]);
        assert_eq!(reads::events_after(&conn, Some(b), 0, i64::MAX, 10).unwrap().len(), 1);
        let doc: String = conn
            .query_row(
                "SELECT doc FROM orders WHERE id = ?1 AND shop = ?2",
                params![order.key(), a.key()],
                |r| r.get(0),
            )
            .unwrap();
        assert!(doc.contains("marker"));
        assert_eq!(reads::stock_totals(&conn, a).unwrap().ledger_on_hand, 5);
        let ledger = crate::ledger::read(&conn, a, sku, 0, 10).unwrap();
        assert_eq!(
            (ledger.len(), ledger[0].1.warehouse, ledger[0].1.order),
            (1, warehouse, Some(order))
        );
        let payments: Vec<Vec<u8>> = conn
            .prepare("SELECT id FROM payments WHERE order_id = ?1")
            .unwrap()
            .query_map([order.key()], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(payments, vec![payment.key().to_vec()]);
        assert_eq!(reads::stock_totals(&conn, b).unwrap().ledger_on_hand, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_is_answered_with_its_events_readable_after_the_group_fsync() {
        let dir = Scratch::new("sync");
        let store = Arc::new(SqliteStore::open(dir.db(), Durability::Full).unwrap());
        // Many writers at once, so the syncer answers groups of commits with one fsync.
        let writes: Vec<_> = (0..50)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    let shop = Shop {
                        id: ShopId(n as u128 + 1),
                        name: format!("shop {n}"),
                        settings: ShopSettings::new(ordo_core::Currency::CNY),
                        created_at: Timestamp(n),
                    };
                    store.create_shop(&shop, event(n)).await
                })
            })
            .collect();
        for w in writes {
            w.await.unwrap().unwrap();
        }
        // Every write was answered, so every event is durable and readable.
        let read = store.events_after(None, 0, 1000).await.unwrap();
        assert_eq!(read.len(), 50);
        assert!(wal_path(&dir.db()).exists());
        drop(store);
    }
}
