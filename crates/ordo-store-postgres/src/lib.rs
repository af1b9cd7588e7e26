//! PostgreSQL backend of [`ordo_store::Store`].
//!
//! Ids are stored in their text form, times as Unix milliseconds, aggregates as a
//! JSON `doc` beside the columns that queries filter on (see
//! `migrations/0001_init.sql`). Batches run in one READ COMMITTED transaction that
//! locks the order and stock rows it changes in a fixed order; see [`batch`].

mod batch;
mod catalog;
mod channels;
mod codec;
mod codes;
mod docs;
mod error;
mod events;
mod migrate;
mod notifications;
mod orders;
mod shops;
mod stock;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use ordo_core::batch::{IdempotencyRecord, LoadRequest};
use ordo_core::catalog::{Product, Shop, ShopSettings, Warehouse};
use ordo_core::channel::{RawChannelOrder, RawStatus, SkuMapping};
use ordo_core::event::{Event, NewEvent};
use ordo_core::inventory::{LedgerEntry, StockLevel};
use ordo_core::order::Order;
use ordo_core::payment::{Payment, Refund};
use ordo_core::{ApiKeyId, ChannelOrderId, EventSeq, OrderId, ProductId, ShopId, Timestamp, WarehouseId};
use ordo_store::{
    ApiKeyRecord, AttemptOutcome, Committed, Decide, NewCode, NewNotification, NotificationAttempt, NotificationFilter,
    NotificationRecord, OrderFilter, SealedCode, StockTotals, Store, StoreError, StoreResult,
};
use tokio_postgres::NoTls;

use crate::error::db;

/// Connections kept open; a batch holds one for its whole transaction.
const POOL_SIZE: usize = 8;
/// How long to wait for a new connection before calling the database unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free connection when all are busy.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// A [`Store`] on PostgreSQL, backed by a small connection pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL or a `key=value` string) and checks
    /// that one connection can be made, so a bad address fails here, not later.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build the connection pool: {e}")))?;
        let store = PgStore { pool };
        drop(store.client().await?);
        Ok(store)
    }

    /// Applies the embedded migrations that have not run yet. Safe to call from
    /// several processes at once: they queue on an advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        migrate::run(&mut client).await
    }

    async fn client(&self) -> StoreResult<Client> {
        self.pool.get().await.map_err(error::pool)
    }
}

/// Appends the write's event and commits: every change is logged with its event.
async fn commit_with(tx: Transaction<'_>, event: NewEvent) -> StoreResult<()> {
    events::append(&tx, std::slice::from_ref(&event)).await?;
    tx.commit().await.map_err(db)
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn run_batch(&self, request: LoadRequest, decide: Decide) -> StoreResult<Committed> {
        let mut client = self.client().await?;
        batch::run(&mut client, request, decide).await
    }

    /// Two: one batch's commit overlaps the next one's work on another connection
    /// (rows are locked in key order, and a deadlock or serialization failure is retried).
    fn batches_in_flight(&self) -> usize {
        2
    }

    async fn create_shop(&self, shop: &Shop, event: NewEvent) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        shops::insert(&tx, shop).await?;
        commit_with(tx, event).await
    }

    async fn get_shop(&self, id: ShopId) -> StoreResult<Shop> {
        shops::get(&self.client().await?, id).await
    }

    async fn list_shops(&self) -> StoreResult<Vec<Shop>> {
        shops::list(&self.client().await?).await
    }

    async fn update_shop_settings(&self, id: ShopId, settings: &ShopSettings, event: NewEvent) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        shops::update_settings(&tx, id, settings, event.at).await?;
        commit_with(tx, event).await
    }

    async fn create_api_key(&self, key: &ApiKeyRecord, event: NewEvent) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        shops::insert_key(&tx, key).await?;
        commit_with(tx, event).await
    }

    async fn find_api_key(&self, secret_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        shops::find_key(&self.client().await?, secret_hash).await
    }

    async fn list_api_keys(&self, shop: ShopId) -> StoreResult<Vec<ApiKeyRecord>> {
        shops::list_keys(&self.client().await?, shop).await
    }

    async fn revoke_api_key(&self, shop: ShopId, id: ApiKeyId, at: Timestamp, event: NewEvent) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        shops::revoke_key(&tx, shop, id, at).await?;
        commit_with(tx, event).await
    }

    async fn put_gateway_secret(&self, shop: ShopId, gateway: &str, secret: &str, event: NewEvent) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        shops::put_secret(&tx, shop, gateway, secret).await?;
        commit_with(tx, event).await
    }

    async fn gateway_secret(&self, shop: ShopId, gateway: &str) -> StoreResult<Option<String>> {
        shops::secret(&self.client().await?, shop, gateway).await
    }

    async fn put_channel(
        &self,
        shop: ShopId,
        channel: &str,
        secret: &str,
        at: Timestamp,
        event: NewEvent,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        channels::put_channel(&tx, shop, channel, secret, at).await?;
        commit_with(tx, event).await
    }
    async fn channel_secret(&self, shop: ShopId, channel: &str) -> StoreResult<Option<String>> {
        channels::secret(&self.client().await?, shop, channel).await
    }
    async fn put_sku_mappings(
        &self,
        shop: ShopId,
        channel: &str,
        mappings: &[SkuMapping],
        event: NewEvent,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        channels::put_mappings(&tx, shop, channel, mappings).await?;
        commit_with(tx, event).await
    }
    async fn sku_mappings(&self, shop: ShopId, channel: &str) -> StoreResult<Vec<SkuMapping>> {
        channels::mappings(&self.client().await?, shop, channel).await
    }
    async fn get_channel_order(&self, shop: ShopId, id: ChannelOrderId) -> StoreResult<RawChannelOrder> {
        channels::get(&self.client().await?, shop, id).await
    }
    async fn list_channel_orders(
        &self,
        shop: ShopId,
        status: Option<RawStatus>,
        cursor: Option<ChannelOrderId>,
        limit: u32,
    ) -> StoreResult<Vec<RawChannelOrder>> {
        channels::list(&self.client().await?, shop, status, cursor, limit).await
    }

    async fn add_codes(
        &self,
        shop: ShopId,
        sku: ProductId,
        codes: &[NewCode],
        event: NewEvent,
    ) -> StoreResult<(u64, i64)> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let added = codes::add(&tx, shop, sku, codes).await?;
        commit_with(tx, event).await?;
        Ok(added)
    }
    async fn codes_of_order(&self, shop: ShopId, order: OrderId) -> StoreResult<Vec<SealedCode>> {
        codes::of_order(&self.client().await?, shop, order).await
    }
    async fn codes_available(&self, shop: ShopId, sku: ProductId) -> StoreResult<i64> {
        codes::available(&self.client().await?, shop, sku).await
    }

    async fn create_product(&self, product: &Product, event: NewEvent) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        catalog::insert_product(&tx, product).await?;
        commit_with(tx, event).await
    }

    async fn update_product(&self, product: &Product, event: NewEvent) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        catalog::update_product(&tx, product).await?;
        commit_with(tx, event).await
    }

    async fn get_product(&self, shop: ShopId, id: ProductId) -> StoreResult<Product> {
        catalog::get_product(&self.client().await?, shop, id).await
    }

    async fn find_product_by_sku(&self, shop: ShopId, sku: &str) -> StoreResult<Option<Product>> {
        catalog::product_by_sku(&self.client().await?, shop, sku).await
    }

    async fn list_products(&self, shop: ShopId, cursor: Option<ProductId>, limit: u32) -> StoreResult<Vec<Product>> {
        catalog::list_products(&self.client().await?, shop, cursor, limit).await
    }

    async fn create_warehouse(&self, warehouse: &Warehouse, event: NewEvent) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        catalog::insert_warehouse(&tx, warehouse).await?;
        commit_with(tx, event).await
    }

    async fn list_warehouses(&self, shop: ShopId) -> StoreResult<Vec<Warehouse>> {
        catalog::list_warehouses(&self.client().await?, shop).await
    }

    async fn stock_of(&self, shop: ShopId, sku: ProductId) -> StoreResult<Vec<StockLevel>> {
        stock::of_sku(&self.client().await?, shop, sku).await
    }

    async fn list_stock(&self, shop: ShopId, warehouse: Option<WarehouseId>) -> StoreResult<Vec<StockLevel>> {
        stock::list(&self.client().await?, shop, warehouse).await
    }

    async fn ledger(
        &self,
        shop: ShopId,
        sku: ProductId,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, LedgerEntry)>> {
        stock::ledger(&self.client().await?, shop, sku, after, limit).await
    }

    async fn get_order(&self, shop: ShopId, id: OrderId) -> StoreResult<Order> {
        orders::get(&self.client().await?, shop, id).await
    }

    async fn list_orders(&self, shop: ShopId, filter: &OrderFilter) -> StoreResult<Vec<Order>> {
        orders::list(&self.client().await?, shop, filter).await
    }

    async fn payments_of(&self, shop: ShopId, order: OrderId) -> StoreResult<Vec<Payment>> {
        orders::payments(&self.client().await?, shop, order).await
    }

    async fn refunds_of(&self, shop: ShopId, order: OrderId) -> StoreResult<Vec<Refund>> {
        orders::refunds(&self.client().await?, shop, order).await
    }

    async fn due_reminders(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(ShopId, OrderId)>> {
        orders::due_reminders(&self.client().await?, now, limit).await
    }
    async fn due_unpaid(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(ShopId, OrderId)>> {
        orders::due_unpaid(&self.client().await?, now, limit).await
    }

    async fn get_idempotency(&self, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
        shops::get_idempotency(&self.client().await?, scope, key).await
    }

    async fn put_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<bool> {
        shops::put_idempotency(&self.client().await?, record).await
    }

    async fn events_after(&self, shop: Option<ShopId>, after: EventSeq, limit: u32) -> StoreResult<Vec<Event>> {
        events::after(&self.client().await?, shop, after, limit).await
    }

    async fn append_events(&self, events: Vec<NewEvent>) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        events::append(&tx, &events).await?;
        tx.commit().await.map_err(db)
    }

    async fn stock_totals(&self, shop: ShopId) -> StoreResult<StockTotals> {
        stock::totals(&self.client().await?, shop).await
    }

    // Notifications.
    async fn notification_cursor(&self) -> StoreResult<EventSeq> {
        notifications::cursor(&self.client().await?).await
    }

    async fn enqueue_notifications(&self, items: Vec<NewNotification>, cursor: EventSeq) -> StoreResult<u64> {
        notifications::enqueue(&mut self.client().await?, &items, cursor).await
    }

    async fn due_notifications(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<NotificationRecord>> {
        notifications::due(&self.client().await?, now, limit).await
    }

    async fn claim_notifications(&self, ids: &[i64], now: Timestamp, lease_until: Timestamp) -> StoreResult<Vec<i64>> {
        notifications::claim(&self.client().await?, ids, now, lease_until).await
    }

    async fn record_notification_attempt(
        &self,
        id: i64,
        attempt: &NotificationAttempt,
        then: AttemptOutcome,
    ) -> StoreResult<()> {
        notifications::record_attempt(&mut self.client().await?, id, attempt, then).await
    }

    async fn list_notifications(
        &self,
        shop: ShopId,
        filter: &NotificationFilter,
    ) -> StoreResult<Vec<NotificationRecord>> {
        notifications::list(&self.client().await?, shop, filter).await
    }

    async fn notification_attempts(&self, shop: ShopId, ids: &[i64]) -> StoreResult<Vec<NotificationAttempt>> {
        notifications::attempts(&self.client().await?, shop, ids).await
    }
}
