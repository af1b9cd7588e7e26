//! The storage boundary: one trait every backend implements, the records it
//! stores besides the core's own types, and [`StoreError`].
//!
//! Invariant: storage errors stay here. The core never sees a `StoreError`; the
//! engine maps it once, and the API maps it to problem+json once.

use std::sync::Arc;

use async_trait::async_trait;
use ordo_core::auth::Role;
use ordo_core::batch::{Changes, IdempotencyRecord, LoadRequest, Outcome, WorkingSet};
use ordo_core::catalog::{Product, Shop, ShopSettings, Warehouse};
use ordo_core::channel::{RawChannelOrder, RawStatus, SkuMapping};
use ordo_core::event::{Event, NewEvent};
use ordo_core::inventory::{LedgerEntry, StockLevel};
use ordo_core::notify::{Channel, DeliveryStatus, Locale};
use ordo_core::order::{Order, OrderStatus};
use ordo_core::payment::{Payment, Refund};
use ordo_core::{
    ApiKeyId, ChannelOrderId, CodeId, CommandError, EventSeq, OrderId, ProductId, ShopId, Timestamp, WarehouseId,
};

#[cfg(feature = "contract")]
pub mod contract;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was hit (e.g. a SKU code that exists) or a concurrent
    /// writer won; the message names which.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A concurrent transaction made this one fail; retrying it is safe.
    #[error("transient: {0}")]
    Retry(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An API key as stored: only a hash of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub shop: ShopId,
    pub role: Role,
    pub name: String,
    /// SHA-256 of the full secret, hex.
    pub secret_hash: String,
    /// The first characters of the secret, shown in lists to tell keys apart.
    pub prefix: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// Cursor pagination: items strictly after (older than) `cursor`, newest first.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub created_from: Option<Timestamp>,
    pub created_to: Option<Timestamp>,
    pub cursor: Option<OrderId>,
    pub limit: u32,
}

/// Each command's result, in the order the commands were given.
pub type BatchOutcomes = Vec<Result<Outcome, CommandError>>;

/// A batch's decision: what to persist and what to tell each command's caller.
pub struct Decided {
    pub changes: Changes,
    pub outcomes: BatchOutcomes,
}

/// The pure decision the engine runs inside the store's transaction.
pub type Decide = Box<dyn FnOnce(&mut WorkingSet) -> Decided + Send>;

/// What a committed batch reports back.
pub struct Committed {
    pub outcomes: BatchOutcomes,
    /// Sequence number of the last event appended, if any.
    pub last_event: Option<EventSeq>,
}

/// A value a store reports for monitoring, in Prometheus terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub value: u64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Loads and locks what `request` names into a working set, runs `decide` on it,
    /// and persists the changes and events it returns in the same transaction.
    /// Returns only after the commit is durable.
    async fn run_batch(&self, request: LoadRequest, decide: Decide) -> StoreResult<Committed>;

    /// How many group commits the engine should keep in flight: more than one only
    /// pays where the store can start a transaction while another is still running or
    /// becoming durable.
    fn batches_in_flight(&self) -> usize {
        1
    }

    /// Waits until the store would start a new transaction at once, so a group commit
    /// collects its commands as late as possible (and so takes as many as possible).
    async fn wait_until_idle(&self) {}

    /// Backend-specific gauges for `/metrics`: name, help text, value.
    fn gauges(&self) -> Vec<Gauge> {
        Vec::new()
    }

    // Shops, keys and secrets.
    async fn create_shop(&self, shop: &Shop, event: NewEvent) -> StoreResult<()>;
    async fn get_shop(&self, id: ShopId) -> StoreResult<Shop>;
    async fn list_shops(&self) -> StoreResult<Vec<Shop>>;
    async fn update_shop_settings(&self, id: ShopId, settings: &ShopSettings, event: NewEvent) -> StoreResult<()>;
    async fn create_api_key(&self, key: &ApiKeyRecord, event: NewEvent) -> StoreResult<()>;
    async fn find_api_key(&self, secret_hash: &str) -> StoreResult<Option<ApiKeyRecord>>;
    async fn list_api_keys(&self, shop: ShopId) -> StoreResult<Vec<ApiKeyRecord>>;
    async fn revoke_api_key(&self, shop: ShopId, id: ApiKeyId, at: Timestamp, event: NewEvent) -> StoreResult<()>;
    async fn put_gateway_secret(&self, shop: ShopId, gateway: &str, secret: &str, event: NewEvent) -> StoreResult<()>;
    async fn gateway_secret(&self, shop: ShopId, gateway: &str) -> StoreResult<Option<String>>;

    // Catalogue.
    async fn create_product(&self, product: &Product, event: NewEvent) -> StoreResult<()>;
    async fn update_product(&self, product: &Product, event: NewEvent) -> StoreResult<()>;
    async fn get_product(&self, shop: ShopId, id: ProductId) -> StoreResult<Product>;
    async fn find_product_by_sku(&self, shop: ShopId, sku: &str) -> StoreResult<Option<Product>>;
    async fn list_products(&self, shop: ShopId, cursor: Option<ProductId>, limit: u32) -> StoreResult<Vec<Product>>;
    async fn create_warehouse(&self, warehouse: &Warehouse, event: NewEvent) -> StoreResult<()>;
    async fn list_warehouses(&self, shop: ShopId) -> StoreResult<Vec<Warehouse>>;

    // Stock.
    async fn stock_of(&self, shop: ShopId, sku: ProductId) -> StoreResult<Vec<StockLevel>>;
    async fn list_stock(&self, shop: ShopId, warehouse: Option<WarehouseId>) -> StoreResult<Vec<StockLevel>>;
    /// Ledger entries of one SKU, oldest first, after ledger position `after`.
    async fn ledger(
        &self,
        shop: ShopId,
        sku: ProductId,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, LedgerEntry)>>;

    // Orders and money.
    async fn get_order(&self, shop: ShopId, id: OrderId) -> StoreResult<Order>;
    async fn list_orders(&self, shop: ShopId, filter: &OrderFilter) -> StoreResult<Vec<Order>>;
    async fn payments_of(&self, shop: ShopId, order: OrderId) -> StoreResult<Vec<Payment>>;
    async fn refunds_of(&self, shop: ShopId, order: OrderId) -> StoreResult<Vec<Refund>>;
    /// Unpaid orders whose payment deadline is at or before `now`, oldest first.
    async fn due_unpaid(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(ShopId, OrderId)>>;
    /// Unpaid orders whose payment reminder is at or before `now`, earliest first.
    async fn due_reminders(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<(ShopId, OrderId)>>;

    // Idempotency for requests outside the batch path.
    async fn get_idempotency(&self, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>>;
    /// Inserts unless a record with that scope and key exists; returns whether it inserted.
    async fn put_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<bool>;

    // Events.
    /// Events after `after`, oldest first; `shop: None` reads every shop's (admin).
    async fn events_after(&self, shop: Option<ShopId>, after: EventSeq, limit: u32) -> StoreResult<Vec<Event>>;
    /// Appends events outside a batch (e.g. platform notices).
    async fn append_events(&self, events: Vec<NewEvent>) -> StoreResult<()>;

    // Channels (A1, A2, A7).
    /// Sets (or replaces) the secret a shop's channel signs its webhooks with.
    async fn put_channel(
        &self,
        shop: ShopId,
        channel: &str,
        secret: &str,
        at: Timestamp,
        event: NewEvent,
    ) -> StoreResult<()>;
    async fn channel_secret(&self, shop: ShopId, channel: &str) -> StoreResult<Option<String>>;
    /// Adds or replaces mappings of one channel's keys to Ordo SKUs.
    async fn put_sku_mappings(
        &self,
        shop: ShopId,
        channel: &str,
        mappings: &[SkuMapping],
        event: NewEvent,
    ) -> StoreResult<()>;
    async fn sku_mappings(&self, shop: ShopId, channel: &str) -> StoreResult<Vec<SkuMapping>>;
    /// A raw channel order with the body as received.
    async fn get_channel_order(&self, shop: ShopId, id: ChannelOrderId) -> StoreResult<RawChannelOrder>;
    /// Raw channel orders newest first, strictly older than `cursor`.
    async fn list_channel_orders(
        &self,
        shop: ShopId,
        status: Option<RawStatus>,
        cursor: Option<ChannelOrderId>,
        limit: u32,
    ) -> StoreResult<Vec<RawChannelOrder>>;

    // Virtual goods (G1).
    /// Adds sealed codes to a virtual SKU's pool, skipping any it holds already (same
    /// fingerprint). Returns how many were added and how many are unassigned after.
    async fn add_codes(
        &self,
        shop: ShopId,
        sku: ProductId,
        codes: &[NewCode],
        event: NewEvent,
    ) -> StoreResult<(u64, i64)>;
    /// The codes assigned to an order, sealed.
    async fn codes_of_order(&self, shop: ShopId, order: OrderId) -> StoreResult<Vec<SealedCode>>;
    /// Unassigned codes of a virtual SKU.
    async fn codes_available(&self, shop: ShopId, sku: ProductId) -> StoreResult<i64>;

    /// Totals used by invariant checks and tests: (Σ on_hand, Σ reserved, Σ ledger on-hand
    /// deltas, Σ ledger reserved deltas) over one shop.
    async fn stock_totals(&self, shop: ShopId) -> StoreResult<StockTotals>;

    // Notifications.
    /// The last event the notification worker has planned (starts at the newest event
    /// when the delivery log was created, so old events are never notified).
    async fn notification_cursor(&self) -> StoreResult<EventSeq>;
    /// Records `items` in the delivery log as pending (due at their `created_at`) and
    /// moves the cursor to `cursor`, in one transaction. An item whose (event, channel)
    /// is already recorded is skipped, so replanning an event never duplicates; returns
    /// how many were inserted. The cursor never moves backwards.
    async fn enqueue_notifications(&self, items: Vec<NewNotification>, cursor: EventSeq) -> StoreResult<u64>;
    /// Pending notifications of every shop whose next attempt is at or before `now`,
    /// earliest first.
    async fn due_notifications(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<NotificationRecord>>;
    /// Claims notifications `ids` for one delivery attempt: each one still pending and
    /// due at `now` has its next attempt moved to `lease_until` and is returned; one
    /// another worker (another process) claimed first is left out. So a notification
    /// is sent by one worker at a time; a worker that dies mid-send leaves the lease
    /// to run out, and the notification is tried again.
    async fn claim_notifications(&self, ids: &[i64], now: Timestamp, lease_until: Timestamp) -> StoreResult<Vec<i64>>;
    /// Records one delivery attempt of notification `id` and its consequence: `Sent`,
    /// `Retry { at }` (still pending) or `Failed`. Bumps `attempts`.
    async fn record_notification_attempt(
        &self,
        id: i64,
        attempt: &NotificationAttempt,
        then: AttemptOutcome,
    ) -> StoreResult<()>;
    /// A shop's delivery log, newest first; `cursor` returns ids strictly below it.
    async fn list_notifications(
        &self,
        shop: ShopId,
        filter: &NotificationFilter,
    ) -> StoreResult<Vec<NotificationRecord>>;
    /// The attempts of the shop's notifications `ids`, by notification then time.
    async fn notification_attempts(&self, shop: ShopId, ids: &[i64]) -> StoreResult<Vec<NotificationAttempt>>;
}

/// A notification about to be recorded in the delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub shop: ShopId,
    pub event_seq: EventSeq,
    pub order: OrderId,
    pub channel: Channel,
    pub recipient: String,
    /// The template's name: the event kind that triggered it.
    pub template: String,
    pub locale: Locale,
    /// The event facts the message needs (see `ordo_core::notify::Planned::data`).
    pub data: serde_json::Value,
    pub created_at: Timestamp,
}

/// A notification as the delivery log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRecord {
    /// Assigned by the store, increasing.
    pub id: i64,
    pub shop: ShopId,
    pub event_seq: EventSeq,
    pub order: OrderId,
    pub channel: Channel,
    pub recipient: String,
    pub template: String,
    pub locale: Locale,
    pub data: serde_json::Value,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// When the next attempt is due; `None` once sent or failed.
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
}

/// One try at delivering a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationAttempt {
    pub notification: i64,
    pub at: Timestamp,
    pub ok: bool,
    /// The provider's response when it worked, the error when it did not.
    pub detail: String,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Sent,
    Retry { at: Timestamp },
    Failed,
}

/// Cursor pagination of the delivery log: ids strictly below `cursor`, newest first.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub order: Option<OrderId>,
    pub cursor: Option<i64>,
    pub limit: u32,
}

/// A code for a virtual SKU's pool, sealed by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCode {
    pub id: CodeId,
    /// Keyed hash of the plain code, so the same code is never added twice.
    pub fingerprint: String,
    /// The code encrypted (nonce and ciphertext, base64).
    pub sealed: String,
    pub created_at: Timestamp,
}

/// An assigned code as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedCode {
    pub id: CodeId,
    pub sku: ProductId,
    pub sealed: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StockTotals {
    pub on_hand: i64,
    pub reserved: i64,
    pub ledger_on_hand: i64,
    pub ledger_reserved: i64,
}

pub type DynStore = Arc<dyn Store>;
