//! The store contract: behaviour every [`Store`] backend must show, written once
//! against the trait so SQLite and PostgreSQL are held to the same rules.
//!
//! A backend's test creates an empty, migrated store and calls [`run_all`]. Each
//! check makes its own shops with random ids, so checks (and whole runs) can share
//! one database; a failing check panics with a message naming what broke.
//!
//! Conventions the checks pin down (where the trait leaves a choice):
//! - `list_orders`: newest first; `cursor` returns ids strictly below it;
//!   `created_from` and `created_to` are both inclusive.
//! - `list_products`: oldest first; `cursor` returns ids strictly above it.
//! - `list_warehouses`, `list_api_keys`: by id.
//! - Another shop's records read as `NotFound` (single records) or as nothing (lists).
//! - Concurrent batches never oversell and never lose a stock change, even when
//!   several create the same stock level; a backend may answer `Retry` for a lost
//!   race, and the suite then runs the batch again as the engine would.

use std::fmt::Debug;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use ordo_core::auth::{Actor, Role};
use ordo_core::batch::{
    self, AdjustStock, By, ChannelIntake, Command, IdempotencyClaim, IdempotencyRecord, LineRequest, LoadRequest,
    PaymentResult, PlaceOrder, RefundRequest, Step, StockChange,
};
use ordo_core::catalog::{AddressOrdersRule, Product, ProductKind, Shop, ShopSettings, Warehouse};
use ordo_core::channel::{RawChannelOrder, RawStatus, SkuMapping, Unmapped};
use ordo_core::event::{EventPayload, NewEvent, kinds};
use ordo_core::inventory::LedgerReason;
use ordo_core::limits::PurchaseLimit;
use ordo_core::order::{Address, Buyer, CancelReason, Order, OrderStatus};
use ordo_core::payment::{PaymentNotice, PaymentStatus};
use ordo_core::promotion::{Promotion, PromotionKind};
use ordo_core::{
    ApiKeyId, CodeId, CommandError, Context, Currency, IdSource, OrderId, Outcome, ProductId, ShopId, Timestamp,
    WarehouseId,
};

mod notifications;

use crate::{
    ApiKeyRecord, Committed, Decide, Decided, NewCode, OrderFilter, StockTotals, Store, StoreError, StoreResult,
};

type CheckFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type Check = fn(Arc<dyn Store>) -> CheckFuture;

/// Every check, by name, in the order [`run_all`] runs them.
pub const CHECKS: &[(&str, Check)] = &[
    ("shops_round_trip", |s| Box::pin(shops_round_trip(s))),
    ("api_keys_round_trip", |s| Box::pin(api_keys_round_trip(s))),
    ("gateway_secrets_round_trip", |s| {
        Box::pin(gateway_secrets_round_trip(s))
    }),
    ("products_round_trip", |s| Box::pin(products_round_trip(s))),
    ("sku_and_warehouse_code_unique_per_shop", |s| {
        Box::pin(sku_and_warehouse_code_unique_per_shop(s))
    }),
    ("warehouses_round_trip", |s| Box::pin(warehouses_round_trip(s))),
    ("batch_places_an_order", |s| Box::pin(batch_places_an_order(s))),
    ("batch_replays_idempotent_and_external_orders", |s| {
        Box::pin(batch_replays_idempotent_and_external_orders(s))
    }),
    ("failed_commands_change_nothing", |s| {
        Box::pin(failed_commands_change_nothing(s))
    }),
    ("cancel_releases_stock_and_expires_payment", |s| {
        Box::pin(cancel_releases_stock_and_expires_payment(s))
    }),
    ("payment_notice_is_processed_once", |s| {
        Box::pin(payment_notice_is_processed_once(s))
    }),
    ("shop_scoping", |s| Box::pin(shop_scoping(s))),
    ("due_reminders_fire_once_for_unpaid_orders", |s| {
        Box::pin(due_reminders_fire_once_for_unpaid_orders(s))
    }),
    ("due_unpaid_oldest_deadline_first", |s| {
        Box::pin(due_unpaid_oldest_deadline_first(s))
    }),
    ("list_orders_pages_and_filters", |s| {
        Box::pin(list_orders_pages_and_filters(s))
    }),
    ("events_are_scoped_and_ordered", |s| {
        Box::pin(events_are_scoped_and_ordered(s))
    }),
    ("idempotency_outside_batches", |s| {
        Box::pin(idempotency_outside_batches(s))
    }),
    ("concurrent_batches_never_oversell", |s| {
        Box::pin(concurrent_batches_never_oversell(s))
    }),
    ("concurrent_first_stock_changes_all_count", |s| {
        Box::pin(concurrent_first_stock_changes_all_count(s))
    }),
    ("a_thousand_orders_commit_in_one_batch", |s| {
        Box::pin(a_thousand_orders_commit_in_one_batch(s))
    }),
    ("a_batch_sent_during_a_big_one_sees_all_of_it", |s| {
        Box::pin(a_batch_sent_during_a_big_one_sees_all_of_it(s))
    }),
    ("concurrent_coupon_uses_stop_at_the_limit", |s| {
        Box::pin(concurrent_coupon_uses_stop_at_the_limit(s))
    }),
    ("purchase_limits_and_history_counters", |s| {
        Box::pin(purchase_limits_and_history_counters(s))
    }),
    ("a_purchase_limit_counts_orders_placed_before_it", |s| {
        Box::pin(a_purchase_limit_counts_orders_placed_before_it(s))
    }),
    ("a_limit_set_while_orders_are_placed_counts_every_one", |s| {
        Box::pin(a_limit_set_while_orders_are_placed_counts_every_one(s))
    }),
    ("channel_orders_are_kept_and_completed_on_resend", |s| {
        Box::pin(channel_orders_are_kept_and_completed_on_resend(s))
    }),
    ("codes_are_assigned_once_under_concurrency", |s| {
        Box::pin(codes_are_assigned_once_under_concurrency(s))
    }),
    // Notifications (K1), in contract/notifications.rs.
    ("notifications_enqueue_once_per_event_and_channel", |s| {
        Box::pin(notifications::notifications_enqueue_once_per_event_and_channel(s))
    }),
    ("notifications_are_due_by_time_and_record_attempts", |s| {
        Box::pin(notifications::notifications_are_due_by_time_and_record_attempts(s))
    }),
    ("each_due_notification_is_claimed_by_one_worker", |s| {
        Box::pin(notifications::each_due_notification_is_claimed_by_one_worker(s))
    }),
    ("notifications_are_scoped_and_paged", |s| {
        Box::pin(notifications::notifications_are_scoped_and_paged(s))
    }),
];

/// Runs every check against `store`, stopping at the first failure (a panic).
pub async fn run_all(store: Arc<dyn Store>) {
    for (name, check) in CHECKS {
        eprintln!("store contract ({}): {name}", store.backend());
        check(Arc::clone(&store)).await;
    }
    eprintln!(
        "store contract ({}): all {} checks passed",
        store.backend(),
        CHECKS.len()
    );
}

// ---------------------------------------------------------------------------
// Fixtures

/// A fixed "now" for batches; checks that care about time pick their own.
const T0: Timestamp = Timestamp(1_700_000_000_000);
const PRICE: i64 = 1999;
const SHIPPING: i64 = 500;

/// Ids for one check: a random 64-bit prefix (so checks and runs sharing a database
/// never collide) and a counter (so ids made later in a check sort higher).
#[derive(Clone)]
struct Ids {
    prefix: u128,
    counter: Arc<AtomicU64>,
}

impl Ids {
    fn fresh() -> Ids {
        // RandomState is seeded randomly per process and per instance.
        let random = RandomState::new().hash_one(std::process::id());
        Ids {
            prefix: u128::from(random) << 64,
            counter: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl IdSource for Ids {
    fn next_id(&mut self) -> u128 {
        self.prefix | u128::from(self.counter.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

fn actor() -> Actor {
    Actor("key_contract".into())
}

fn event(shop: Option<ShopId>, subject: impl ToString, kind: &'static str, at: Timestamp) -> NewEvent {
    let subject = subject.to_string();
    NewEvent {
        shop,
        payload: EventPayload::of(&format!("{kind} {subject}")),
        subject,
        kind,
        actor: actor(),
        at,
    }
}

fn address() -> Address {
    Address {
        recipient: "Li Lei".into(),
        phone: "13800000000".into(),
        country: "CN".into(),
        province: "广东省".into(),
        city: "深圳市".into(),
        district: None,
        line1: "1 Keji Road".into(),
        line2: None,
        postal_code: None,
    }
}

/// One shop with one warehouse and one physical SKU `TEE`, optionally stocked.
struct World {
    store: Arc<dyn Store>,
    ids: Ids,
    shop: ShopId,
    warehouse: WarehouseId,
    product: Product,
}

impl World {
    async fn new(store: &Arc<dyn Store>, settings: ShopSettings, stock: i64) -> World {
        let mut ids = Ids::fresh();
        let shop = new_shop(store.as_ref(), &mut ids, settings).await.id;
        let warehouse = new_warehouse(store.as_ref(), &mut ids, shop, "SZ1").await;
        let product = new_product(store.as_ref(), &mut ids, shop, "TEE").await;
        let world = World {
            store: Arc::clone(store),
            ids,
            shop,
            warehouse,
            product,
        };
        if stock > 0 {
            let done = world.run(T0, vec![world.adjust(stock)]).await;
            expect_stock_outcome(&done, 0, stock);
        }
        world
    }

    fn by(&self) -> By {
        By {
            shop: self.shop,
            actor: actor(),
        }
    }

    fn adjust(&self, delta: i64) -> Command {
        Command::AdjustStock(AdjustStock {
            by: self.by(),
            sku: self.product.sku.clone(),
            warehouse: self.warehouse,
            change: StockChange::Delta(delta),
            note: Some("contract stock".into()),
        })
    }

    fn place(&self, quantity: i64) -> PlaceOrder {
        PlaceOrder {
            by: self.by(),
            channel: "web".into(),
            external_id: None,
            buyer: Buyer {
                id: "buyer-1".into(),
                name: Some("Li Lei".into()),
                ..Buyer::default()
            },
            shipping_address: Some(address()),
            lines: vec![LineRequest {
                sku: self.product.sku.clone(),
                quantity,
            }],
            shipping_minor: SHIPPING,
            note: None,
            payment_method: None,
            coupon_codes: vec![],
            channel_terms: None,
            idempotency: None,
        }
    }

    fn notice(&self, order: &Order, transaction_id: &str) -> Command {
        Command::PaymentNotice(PaymentNotice {
            shop: self.shop,
            gateway: "generic".into(),
            order: order.id,
            transaction_id: transaction_id.into(),
            succeeded: true,
            amount_minor: order.pricing.total_minor,
            currency: order.pricing.currency,
        })
    }

    fn transition(&self, order: OrderId, step: Step) -> Command {
        Command::Transition {
            by: self.by(),
            order,
            step,
        }
    }

    async fn run(&self, now: Timestamp, commands: Vec<Command>) -> Committed {
        run_batch(self.store.as_ref(), &self.ids, now, commands).await
    }

    /// Places one order of `quantity` at `now` and returns it.
    async fn place_order(&self, now: Timestamp, quantity: i64) -> Order {
        let done = self
            .run(now, vec![Command::PlaceOrder(Box::new(self.place(quantity)))])
            .await;
        placed(&done.outcomes[0], "placing an order").0
    }

    /// Pays `order` in full through a gateway notice.
    async fn pay(&self, now: Timestamp, order: &Order) {
        let tx_id = format!("tx-{}", order.id);
        let done = self.run(now, vec![self.notice(order, &tx_id)]).await;
        assert_eq!(
            payment_result(&done.outcomes[0]),
            PaymentResult::Captured,
            "paying an order in full"
        );
    }

    async fn totals(&self) -> StockTotals {
        ok("stock_totals", self.store.stock_totals(self.shop).await)
    }
}

async fn new_shop(store: &dyn Store, ids: &mut Ids, settings: ShopSettings) -> Shop {
    let id = ShopId(ids.next_id());
    let shop = Shop {
        id,
        name: format!("Contract shop {id}"),
        settings,
        created_at: T0,
    };
    ok(
        "create_shop",
        store
            .create_shop(&shop, event(Some(id), id, kinds::SHOP_CREATED, T0))
            .await,
    );
    shop
}

fn cny() -> ShopSettings {
    ShopSettings::new(Currency::CNY)
}

async fn new_warehouse(store: &dyn Store, ids: &mut Ids, shop: ShopId, code: &str) -> WarehouseId {
    let warehouse = warehouse(ids, shop, code);
    let id = warehouse.id;
    ok(
        "create_warehouse",
        store
            .create_warehouse(&warehouse, event(Some(shop), id, kinds::WAREHOUSE_CREATED, T0))
            .await,
    );
    id
}

fn warehouse(ids: &mut Ids, shop: ShopId, code: &str) -> Warehouse {
    Warehouse {
        id: WarehouseId(ids.next_id()),
        shop,
        code: code.into(),
        name: format!("Warehouse {code}"),
        region: "CN-GD".into(),
        active: true,
        created_at: T0,
    }
}

async fn new_product(store: &dyn Store, ids: &mut Ids, shop: ShopId, sku: &str) -> Product {
    let product = product(ids, shop, sku);
    ok(
        "create_product",
        store
            .create_product(&product, event(Some(shop), product.id, kinds::PRODUCT_CREATED, T0))
            .await,
    );
    product
}

fn product(ids: &mut Ids, shop: ShopId, sku: &str) -> Product {
    let mut product = Product {
        id: ProductId(ids.next_id()),
        shop,
        sku: sku.into(),
        name: format!("Product {sku}"),
        kind: ProductKind::Physical,
        price_minor: PRICE,
        currency: Currency::CNY,
        weight_g: 200,
        on_sale: true,
        attributes: Default::default(),
        presale_ships_at: None,
        created_at: T0,
    };
    // Values built through `From` so this crate needs no JSON dependency of its own.
    product.attributes.insert("colour".into(), "red".into());
    product.attributes.insert("sizes".into(), vec!["S", "M"].into());
    product
}

// ---------------------------------------------------------------------------
// Running batches and reading outcomes

/// Runs `commands` as one batch the way the engine does: `apply` each command to
/// the working set inside the store's transaction. A `Retry` (a concurrent batch
/// interfered) runs the batch again, as the engine would.
async fn run_batch(store: &dyn Store, ids: &Ids, now: Timestamp, commands: Vec<Command>) -> Committed {
    const ATTEMPTS: usize = 20;
    let mut attempt = 1;
    loop {
        let request = LoadRequest::for_batch(&commands);
        match store
            .run_batch(request, decide(ids.clone(), now, commands.clone()))
            .await
        {
            Ok(done) => {
                assert_eq!(
                    done.outcomes.len(),
                    commands.len(),
                    "run_batch returns one outcome per command"
                );
                return done;
            }
            Err(StoreError::Retry(_)) if attempt < ATTEMPTS => attempt += 1,
            Err(e) => panic!("run_batch failed (attempt {attempt}): {e}"),
        }
    }
}

fn decide(mut ids: Ids, now: Timestamp, commands: Vec<Command>) -> Decide {
    Box::new(move |ws| {
        let mut ctx = Context { now, ids: &mut ids };
        let outcomes = commands.iter().map(|c| batch::apply(ws, c, &mut ctx)).collect();
        Decided {
            changes: ws.take_changes(),
            outcomes,
        }
    })
}

/// The order an outcome carries and whether it was replayed.
fn placed(outcome: &Result<Outcome, CommandError>, what: &str) -> (Order, bool) {
    match outcome {
        Ok(Outcome::Order { order, replayed }) => ((**order).clone(), *replayed),
        other => panic!("{what}: expected an order outcome, got {other:?}"),
    }
}

fn payment_result(outcome: &Result<Outcome, CommandError>) -> PaymentResult {
    match outcome {
        Ok(Outcome::Payment { result, .. }) => *result,
        other => panic!("expected a payment outcome, got {other:?}"),
    }
}

fn expect_stock_outcome(done: &Committed, index: usize, on_hand: i64) {
    match &done.outcomes[index] {
        Ok(Outcome::Stock(level)) => assert_eq!(level.on_hand, on_hand, "stock adjustment outcome"),
        other => panic!("expected a stock outcome, got {other:?}"),
    }
}

fn ok<T>(what: &str, result: StoreResult<T>) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

fn expect_not_found<T: Debug>(what: &str, result: StoreResult<T>) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

fn expect_conflict<T: Debug>(what: &str, result: StoreResult<T>) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

/// Another shop's child records read as nothing; `NotFound` is accepted too.
fn expect_none_visible<T: Debug>(what: &str, result: StoreResult<Vec<T>>) {
    match result {
        Ok(items) if items.is_empty() => {}
        Err(StoreError::NotFound) => {}
        other => panic!("{what}: expected nothing from another shop, got {other:?}"),
    }
}

fn order_ids(orders: &[Order]) -> Vec<OrderId> {
    orders.iter().map(|o| o.id).collect()
}

/// Polls every future on the current task until all finish; enough to run batches
/// concurrently without depending on an async runtime here.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

// ---------------------------------------------------------------------------
// Shops, keys, secrets, catalogue

async fn shops_round_trip(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let mut ids = Ids::fresh();
    let mut settings = cny();
    settings.review_above_minor = Some(100_000);
    let shop = new_shop(store, &mut ids, settings.clone()).await;

    assert_eq!(
        ok("get_shop", store.get_shop(shop.id).await),
        shop,
        "get_shop returns the shop as created"
    );
    let all = ok("list_shops", store.list_shops().await);
    assert!(all.contains(&shop), "list_shops includes a created shop");

    settings.payment_timeout_secs = 120;
    settings.review_above_minor = None;
    let updated = event(Some(shop.id), shop.id, kinds::SHOP_UPDATED, T0);
    ok(
        "update_shop_settings",
        store.update_shop_settings(shop.id, &settings, updated).await,
    );
    assert_eq!(
        ok("get_shop", store.get_shop(shop.id).await).settings,
        settings,
        "update_shop_settings replaces the settings"
    );

    let missing = ShopId(ids.next_id());
    expect_not_found("get_shop of an unknown id", store.get_shop(missing).await);
    let stray = event(Some(missing), missing, kinds::SHOP_UPDATED, T0);
    expect_not_found(
        "update_shop_settings of an unknown shop",
        store.update_shop_settings(missing, &settings, stray).await,
    );
    let logged = ok("events_after", store.events_after(Some(missing), 0, 10).await);
    assert!(
        logged.is_empty(),
        "a write that failed appends no event, got {logged:?}"
    );
    let again = event(Some(shop.id), shop.id, kinds::SHOP_CREATED, T0);
    expect_conflict("create_shop with an existing id", store.create_shop(&shop, again).await);
}

async fn api_keys_round_trip(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let mut ids = Ids::fresh();
    let shop = new_shop(store, &mut ids, cny()).await.id;
    let other = new_shop(store, &mut ids, cny()).await.id;
    let mut key = ApiKeyRecord {
        id: ApiKeyId(ids.next_id()),
        shop,
        role: Role::Operator,
        name: "operations".into(),
        secret_hash: format!("hash-{}", ids.next_id()),
        prefix: "ok_live_ab".into(),
        created_at: T0,
        revoked_at: None,
    };
    let created = |k: &ApiKeyRecord| event(Some(shop), k.id, kinds::API_KEY_CREATED, T0);
    ok("create_api_key", store.create_api_key(&key, created(&key)).await);
    let viewer = ApiKeyRecord {
        id: ApiKeyId(ids.next_id()),
        role: Role::Viewer,
        secret_hash: format!("hash-{}", ids.next_id()),
        ..key.clone()
    };
    ok("create_api_key", store.create_api_key(&viewer, created(&viewer)).await);

    assert_eq!(
        ok("find_api_key", store.find_api_key(&key.secret_hash).await),
        Some(key.clone()),
        "find_api_key finds a key by its secret hash"
    );
    assert_eq!(
        ok("list_api_keys", store.list_api_keys(shop).await),
        vec![key.clone(), viewer.clone()],
        "list_api_keys lists the shop's keys by id"
    );
    assert!(
        ok("list_api_keys", store.list_api_keys(other).await).is_empty(),
        "keys are per shop"
    );
    assert_eq!(ok("find_api_key", store.find_api_key("no-such-hash").await), None);

    let clash = ApiKeyRecord {
        id: ApiKeyId(ids.next_id()),
        ..key.clone()
    };
    expect_conflict(
        "create_api_key with a secret hash in use",
        store.create_api_key(&clash, created(&clash)).await,
    );

    let revoked = |at| event(Some(shop), key.id, kinds::API_KEY_REVOKED, at);
    expect_not_found(
        "revoke_api_key from another shop",
        store.revoke_api_key(other, key.id, T0, revoked(T0)).await,
    );
    let at = T0.plus_secs(60);
    ok(
        "revoke_api_key",
        store.revoke_api_key(shop, key.id, at, revoked(at)).await,
    );
    key.revoked_at = Some(at);
    assert_eq!(
        ok("find_api_key", store.find_api_key(&key.secret_hash).await),
        Some(key),
        "a revoked key is still found, with its revocation time"
    );
}

async fn gateway_secrets_round_trip(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let mut ids = Ids::fresh();
    let shop = new_shop(store, &mut ids, cny()).await.id;
    let other = new_shop(store, &mut ids, cny()).await.id;
    let configured = || event(Some(shop), "generic", kinds::GATEWAY_CONFIGURED, T0);

    ok(
        "put_gateway_secret",
        store
            .put_gateway_secret(shop, "generic", "s3cret-1", configured())
            .await,
    );
    assert_eq!(
        ok("gateway_secret", store.gateway_secret(shop, "generic").await).as_deref(),
        Some("s3cret-1")
    );
    ok(
        "put_gateway_secret",
        store
            .put_gateway_secret(shop, "generic", "s3cret-2", configured())
            .await,
    );
    assert_eq!(
        ok("gateway_secret", store.gateway_secret(shop, "generic").await).as_deref(),
        Some("s3cret-2"),
        "putting a secret again replaces it"
    );
    assert_eq!(
        ok("gateway_secret", store.gateway_secret(shop, "other-gateway").await),
        None
    );
    assert_eq!(
        ok("gateway_secret", store.gateway_secret(other, "generic").await),
        None,
        "secrets are per shop"
    );
}

async fn products_round_trip(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let mut ids = Ids::fresh();
    let shop = new_shop(store, &mut ids, cny()).await.id;
    let other = new_shop(store, &mut ids, cny()).await.id;
    let first = new_product(store, &mut ids, shop, "A-1").await;

    assert_eq!(ok("get_product", store.get_product(shop, first.id).await), first);
    assert_eq!(
        ok("find_product_by_sku", store.find_product_by_sku(shop, "A-1").await),
        Some(first.clone())
    );
    assert_eq!(
        ok("find_product_by_sku", store.find_product_by_sku(shop, "NOPE").await),
        None
    );

    let mut changed = first.clone();
    changed.name = "Renamed".into();
    changed.price_minor = 2999;
    changed.on_sale = false;
    changed.attributes.insert("material".into(), "cotton".into());
    let updated = event(Some(shop), changed.id, kinds::PRODUCT_UPDATED, T0);
    ok("update_product", store.update_product(&changed, updated).await);
    assert_eq!(
        ok("get_product", store.get_product(shop, first.id).await),
        changed,
        "update_product replaces the product"
    );

    let ghost = product(&mut ids, shop, "GHOST");
    let stray = event(Some(shop), ghost.id, kinds::PRODUCT_UPDATED, T0);
    expect_not_found(
        "update_product of an unknown id",
        store.update_product(&ghost, stray).await,
    );
    let moved = Product {
        shop: other,
        ..changed.clone()
    };
    let stray = event(Some(other), moved.id, kinds::PRODUCT_UPDATED, T0);
    expect_not_found(
        "update_product of another shop's product",
        store.update_product(&moved, stray).await,
    );

    let second = new_product(store, &mut ids, shop, "A-2").await;
    let third = new_product(store, &mut ids, shop, "A-3").await;
    assert_eq!(
        ok("list_products", store.list_products(shop, None, 2).await),
        vec![changed, second.clone()],
        "list_products: oldest first, at most `limit`"
    );
    assert_eq!(
        ok("list_products", store.list_products(shop, Some(second.id), 10).await),
        vec![third.clone()],
        "list_products: the cursor returns the products after it"
    );
    assert!(ok("list_products", store.list_products(shop, Some(third.id), 10).await).is_empty());

    expect_not_found(
        "get_product from another shop",
        store.get_product(other, first.id).await,
    );
    assert_eq!(
        ok("find_product_by_sku", store.find_product_by_sku(other, "A-1").await),
        None
    );
    assert!(ok("list_products", store.list_products(other, None, 10).await).is_empty());
}

async fn sku_and_warehouse_code_unique_per_shop(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let mut ids = Ids::fresh();
    let shop = new_shop(store, &mut ids, cny()).await.id;
    let other = new_shop(store, &mut ids, cny()).await.id;

    new_product(store, &mut ids, shop, "DUP").await;
    let twin = product(&mut ids, shop, "DUP");
    let created = event(Some(shop), twin.id, kinds::PRODUCT_CREATED, T0);
    expect_conflict(
        "a second product with the same SKU",
        store.create_product(&twin, created).await,
    );
    new_product(store, &mut ids, other, "DUP").await;

    let mut renamed = new_product(store, &mut ids, shop, "UNIQUE").await;
    renamed.sku = "DUP".into();
    let updated = event(Some(shop), renamed.id, kinds::PRODUCT_UPDATED, T0);
    expect_conflict(
        "renaming a SKU onto one in use",
        store.update_product(&renamed, updated).await,
    );

    new_warehouse(store, &mut ids, shop, "W1").await;
    let twin = warehouse(&mut ids, shop, "W1");
    let created = event(Some(shop), twin.id, kinds::WAREHOUSE_CREATED, T0);
    expect_conflict(
        "a second warehouse with the same code",
        store.create_warehouse(&twin, created).await,
    );
    new_warehouse(store, &mut ids, other, "W1").await;
}

async fn warehouses_round_trip(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let mut ids = Ids::fresh();
    let shop = new_shop(store, &mut ids, cny()).await.id;
    let other = new_shop(store, &mut ids, cny()).await.id;
    let mut made = Vec::new();
    for code in ["SZ", "SH"] {
        let w = warehouse(&mut ids, shop, code);
        let created = event(Some(shop), w.id, kinds::WAREHOUSE_CREATED, T0);
        ok("create_warehouse", store.create_warehouse(&w, created).await);
        made.push(w);
    }
    assert_eq!(
        ok("list_warehouses", store.list_warehouses(shop).await),
        made,
        "list_warehouses lists the shop's warehouses by id"
    );
    assert!(ok("list_warehouses", store.list_warehouses(other).await).is_empty());
}

// ---------------------------------------------------------------------------
// Batches

async fn batch_places_an_order(store: Arc<dyn Store>) {
    let w = World::new(&store, cny(), 10).await;
    let done = w.run(T0, vec![Command::PlaceOrder(Box::new(w.place(2)))]).await;
    let (order, replayed) = placed(&done.outcomes[0], "placing an order");
    assert!(!replayed, "a new order is not a replay");
    assert_eq!(order.status, OrderStatus::PendingPayment);
    assert_eq!(order.pricing.total_minor, 2 * PRICE + SHIPPING);
    assert_eq!(order.lines[0].warehouse, Some(w.warehouse));

    let stored = ok("get_order", store.get_order(w.shop, order.id).await);
    assert_eq!(stored, order, "get_order returns the order as the batch decided it");

    let payments = ok("payments_of", store.payments_of(w.shop, order.id).await);
    assert_eq!(payments.len(), 1, "placing an order opens one payment: {payments:?}");
    assert_eq!(
        (payments[0].order, payments[0].status, payments[0].expected_minor),
        (order.id, PaymentStatus::Pending, order.pricing.total_minor)
    );

    stock_is_reserved(&w, &order).await;
    ledger_records_each_movement(&w, &order).await;
    assert_eq!(
        w.totals().await,
        StockTotals {
            on_hand: 10,
            reserved: 2,
            ledger_on_hand: 10,
            ledger_reserved: 2
        },
        "stock_totals: levels and ledger agree"
    );
    batch_events_are_logged(&w, &order, &done).await;
}

async fn stock_is_reserved(w: &World, order: &Order) {
    let store = w.store.as_ref();
    let levels = ok("stock_of", store.stock_of(w.shop, w.product.id).await);
    assert_eq!(levels.len(), 1, "one level per (SKU, warehouse): {levels:?}");
    let level = &levels[0];
    assert_eq!(
        (level.shop, level.sku, level.warehouse, level.on_hand, level.reserved),
        (w.shop, w.product.id, w.warehouse, 10, 2),
        "stock_of after reserving for {}",
        order.id
    );
    assert_eq!(level.updated_at, T0);
    assert_eq!(ok("list_stock", store.list_stock(w.shop, None).await), levels);
    assert_eq!(
        ok("list_stock", store.list_stock(w.shop, Some(w.warehouse)).await),
        levels
    );
    let elsewhere = WarehouseId(w.ids.clone().next_id());
    assert!(ok("list_stock", store.list_stock(w.shop, Some(elsewhere)).await).is_empty());
}

async fn ledger_records_each_movement(w: &World, order: &Order) {
    let store = w.store.as_ref();
    let ledger = ok("ledger", store.ledger(w.shop, w.product.id, 0, 100).await);
    let moves: Vec<_> = ledger
        .iter()
        .map(|(_, e)| (e.reason, e.on_hand_delta, e.reserved_delta, e.order, e.warehouse))
        .collect();
    assert_eq!(
        moves,
        vec![
            (LedgerReason::Receive, 10, 0, None, w.warehouse),
            (LedgerReason::Reserve, 0, 2, Some(order.id), w.warehouse),
        ],
        "the ledger holds every movement, oldest first"
    );
    assert!(ledger[0].0 < ledger[1].0, "ledger positions increase");
    assert_eq!(ledger[0].1.note.as_deref(), Some("contract stock"));
    assert_eq!(ledger[1].1.actor, actor());
    let rest = ok("ledger", store.ledger(w.shop, w.product.id, ledger[0].0, 100).await);
    assert_eq!(rest, ledger[1..].to_vec(), "ledger pages after a position");
    assert_eq!(ok("ledger", store.ledger(w.shop, w.product.id, 0, 1).await).len(), 1);
}

async fn batch_events_are_logged(w: &World, order: &Order, done: &Committed) {
    let events = ok("events_after", w.store.events_after(Some(w.shop), 0, 100).await);
    let kinds_seen: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds_seen,
        vec![
            kinds::SHOP_CREATED,
            kinds::WAREHOUSE_CREATED,
            kinds::PRODUCT_CREATED,
            kinds::STOCK_CHANGED,
            kinds::ORDER_PLACED
        ],
        "every write logs its events, in order"
    );
    assert!(events.windows(2).all(|p| p[0].seq < p[1].seq), "event seq increases");
    assert!(events.iter().all(|e| e.shop == Some(w.shop)));
    let last = events.last().expect("events were listed");
    assert_eq!(
        done.last_event,
        Some(last.seq),
        "Committed.last_event is the batch's last event"
    );
    assert_eq!((last.subject.as_str(), last.at), (order.id.to_string().as_str(), T0));
    assert_eq!(last.actor, actor());
}

async fn batch_replays_idempotent_and_external_orders(store: Arc<dyn Store>) {
    let w = World::new(&store, cny(), 10).await;
    let claim = IdempotencyClaim {
        scope: "key_contract".into(),
        key: format!("idem-{}", w.shop),
        request_hash: "hash-1".into(),
    };
    let mut cmd = w.place(1);
    cmd.external_id = Some("EXT-1".into());
    cmd.idempotency = Some(claim.clone());
    let first = w.run(T0, vec![Command::PlaceOrder(Box::new(cmd.clone()))]).await;
    let (order, _) = placed(&first.outcomes[0], "placing an idempotent order");

    let record = ok("get_idempotency", store.get_idempotency(&claim.scope, &claim.key).await);
    assert_eq!(
        record,
        Some(IdempotencyRecord {
            scope: claim.scope.clone(),
            key: claim.key.clone(),
            request_hash: claim.request_hash.clone(),
            status_code: 201,
            resource: order.id.to_string(),
            created_at: T0,
        }),
        "the batch persisted the idempotency record"
    );

    let again = w
        .run(T0.plus_secs(1), vec![Command::PlaceOrder(Box::new(cmd.clone()))])
        .await;
    let (replay, replayed) = placed(&again.outcomes[0], "retrying with the same Idempotency-Key");
    assert!(replayed && replay.id == order.id, "the same key returns the same order");
    assert_eq!(again.last_event, None, "a replay appends no event");

    let mut same_channel_order = cmd.clone();
    same_channel_order.idempotency = None;
    let dup = w
        .run(T0.plus_secs(2), vec![Command::PlaceOrder(Box::new(same_channel_order))])
        .await;
    let (dup, replayed) = placed(&dup.outcomes[0], "placing a known channel order again");
    assert!(
        replayed && dup.id == order.id,
        "the same external id returns the same order"
    );

    let mut reused = cmd;
    reused.idempotency = Some(IdempotencyClaim {
        request_hash: "hash-2".into(),
        ..claim
    });
    let reused = w
        .run(T0.plus_secs(3), vec![Command::PlaceOrder(Box::new(reused))])
        .await;
    assert_eq!(reused.outcomes[0], Err(CommandError::IdempotencyKeyReused));

    let all = ok("list_orders", store.list_orders(w.shop, &limit(10)).await);
    assert_eq!(order_ids(&all), vec![order.id], "replays create no order");
    assert_eq!(w.totals().await.reserved, 1, "replays reserve nothing");
}

fn limit(limit: u32) -> OrderFilter {
    OrderFilter {
        limit,
        ..OrderFilter::default()
    }
}

async fn failed_commands_change_nothing(store: Arc<dyn Store>) {
    let w = World::new(&store, cny(), 1).await;
    let before = ok("events_after", store.events_after(Some(w.shop), 0, 100).await);
    let mut unknown = w.place(1);
    unknown.lines[0].sku = "NO-SUCH-SKU".into();
    let done = w
        .run(
            T0,
            vec![
                Command::PlaceOrder(Box::new(w.place(5))),
                Command::PlaceOrder(Box::new(unknown)),
            ],
        )
        .await;
    assert!(
        matches!(done.outcomes[0], Err(CommandError::InsufficientStock { .. })),
        "{:?}",
        done.outcomes[0]
    );
    assert!(
        matches!(done.outcomes[1], Err(CommandError::UnknownSku { .. })),
        "{:?}",
        done.outcomes[1]
    );
    assert_eq!(done.last_event, None, "a batch that changed nothing appends no event");
    let after = ok("events_after", store.events_after(Some(w.shop), 0, 100).await);
    assert_eq!(after, before);
    assert_eq!(
        w.totals().await,
        StockTotals {
            on_hand: 1,
            reserved: 0,
            ledger_on_hand: 1,
            ledger_reserved: 0
        }
    );

    let done = w
        .run(
            T0,
            vec![
                Command::PlaceOrder(Box::new(w.place(1))),
                Command::PlaceOrder(Box::new(w.place(1))),
            ],
        )
        .await;
    placed(&done.outcomes[0], "the first of two orders for the last unit");
    assert!(
        matches!(done.outcomes[1], Err(CommandError::InsufficientStock { .. })),
        "outcomes follow command order; the second order finds no stock: {:?}",
        done.outcomes[1]
    );
    assert!(done.last_event.is_some());
}

async fn cancel_releases_stock_and_expires_payment(store: Arc<dyn Store>) {
    let w = World::new(&store, cny(), 5).await;
    let order = w.place_order(T0, 3).await;
    let later = T0.plus_secs(60);
    let done = w
        .run(later, vec![w.transition(order.id, Step::Cancel(CancelReason::Buyer))])
        .await;
    let (cancelled, _) = placed(&done.outcomes[0], "cancelling an order");
    assert_eq!(
        (cancelled.status, cancelled.cancel_reason, cancelled.payment_due_at),
        (OrderStatus::Cancelled, Some(CancelReason::Buyer), None)
    );
    assert_eq!(
        ok("get_order", store.get_order(w.shop, order.id).await),
        cancelled,
        "the updated order is persisted"
    );
    let payments = ok("payments_of", store.payments_of(w.shop, order.id).await);
    let statuses: Vec<_> = payments.iter().map(|p| p.status).collect();
    assert_eq!(statuses, vec![PaymentStatus::Expired], "the pending payment expired");

    let levels = ok("stock_of", store.stock_of(w.shop, w.product.id).await);
    assert_eq!(
        (levels[0].on_hand, levels[0].reserved, levels[0].updated_at),
        (5, 0, later)
    );
    assert_eq!(
        w.totals().await,
        StockTotals {
            on_hand: 5,
            reserved: 0,
            ledger_on_hand: 5,
            ledger_reserved: 0
        }
    );
    let ledger = ok("ledger", store.ledger(w.shop, w.product.id, 0, 100).await);
    let last = &ledger.last().expect("ledger entries").1;
    assert_eq!(
        (last.reason, last.reserved_delta, last.order),
        (LedgerReason::Release, -3, Some(order.id))
    );
}

async fn payment_notice_is_processed_once(store: Arc<dyn Store>) {
    let w = World::new(&store, cny(), 5).await;
    let order = w.place_order(T0, 1).await;
    let notice = w.notice(&order, "TX-1");

    let first = w.run(T0.plus_secs(10), vec![notice.clone()]).await;
    assert_eq!(payment_result(&first.outcomes[0]), PaymentResult::Captured);
    let paid = ok("get_order", store.get_order(w.shop, order.id).await);
    assert_eq!(
        (paid.status, paid.paid_minor, paid.payment_due_at),
        (OrderStatus::Fulfilling, order.pricing.total_minor, None),
        "a captured payment pays the order and review approves it"
    );

    let second = w.run(T0.plus_secs(20), vec![notice]).await;
    assert_eq!(
        payment_result(&second.outcomes[0]),
        PaymentResult::AlreadyProcessed,
        "the store loads processed notices, so a repeat is recognised"
    );
    assert_eq!(second.last_event, None);
    assert_eq!(ok("get_order", store.get_order(w.shop, order.id).await), paid);

    let payments = ok("payments_of", store.payments_of(w.shop, order.id).await);
    assert_eq!(payments.len(), 1, "{payments:?}");
    let payment = &payments[0];
    assert_eq!(
        (
            payment.status,
            payment.transaction_id.as_deref(),
            payment.captured_minor
        ),
        (PaymentStatus::Captured, Some("TX-1"), order.pricing.total_minor)
    );

    let refund = Command::Refund(RefundRequest {
        by: w.by(),
        order: order.id,
        amount_minor: 100,
        lines: Vec::new(),
        reason: "damaged".into(),
        idempotency: None,
    });
    let done = w.run(T0.plus_secs(30), vec![refund]).await;
    let Ok(Outcome::Refunds { refunds, .. }) = &done.outcomes[0] else {
        panic!("expected a refund outcome, got {:?}", done.outcomes[0]);
    };
    let stored = ok("refunds_of", store.refunds_of(w.shop, order.id).await);
    let got: Vec<_> = stored.iter().map(|r| (r.id, r.payment, r.amount_minor)).collect();
    assert_eq!(got, vec![(refunds[0], payment.id, 100)], "refunds_of lists the refund");
    let payments = ok("payments_of", store.payments_of(w.shop, order.id).await);
    assert_eq!(payments[0].refunded_minor, 100, "the refunded payment is updated");
    assert_eq!(
        ok("get_order", store.get_order(w.shop, order.id).await).refunded_minor,
        100
    );
}

async fn shop_scoping(store: Arc<dyn Store>) {
    let a = World::new(&store, cny(), 5).await;
    let order = a.place_order(T0, 1).await;
    let mut ids = Ids::fresh();
    let b = new_shop(store.as_ref(), &mut ids, cny()).await.id;

    expect_not_found("get_order from another shop", store.get_order(b, order.id).await);
    assert!(ok("list_orders", store.list_orders(b, &limit(10)).await).is_empty());
    expect_none_visible("payments_of from another shop", store.payments_of(b, order.id).await);
    expect_none_visible("refunds_of from another shop", store.refunds_of(b, order.id).await);
    expect_not_found(
        "get_product from another shop",
        store.get_product(b, a.product.id).await,
    );
    assert_eq!(
        ok("find_product_by_sku", store.find_product_by_sku(b, "TEE").await),
        None
    );
    expect_none_visible("stock_of from another shop", store.stock_of(b, a.product.id).await);
    assert!(ok("list_stock", store.list_stock(b, None).await).is_empty());
    assert!(ok("list_stock", store.list_stock(b, Some(a.warehouse)).await).is_empty());
    expect_none_visible("ledger from another shop", store.ledger(b, a.product.id, 0, 10).await);
    assert!(ok("list_warehouses", store.list_warehouses(b).await).is_empty());
    assert_eq!(ok("stock_totals", store.stock_totals(b).await), StockTotals::default());

    // Through a batch: shop B acting on A's order or SKU finds nothing.
    let by_b = By {
        shop: b,
        actor: actor(),
    };
    let cancel = Command::Transition {
        by: by_b.clone(),
        order: order.id,
        step: Step::Cancel(CancelReason::Seller),
    };
    let adjust = Command::AdjustStock(AdjustStock {
        by: by_b,
        sku: "TEE".into(),
        warehouse: a.warehouse,
        change: StockChange::Delta(5),
        note: None,
    });
    let done = run_batch(store.as_ref(), &ids, T0, vec![cancel, adjust]).await;
    assert_eq!(done.outcomes[0], Err(CommandError::OrderNotFound));
    assert!(
        matches!(done.outcomes[1], Err(CommandError::UnknownSku { .. })),
        "{:?}",
        done.outcomes[1]
    );
    assert_eq!(ok("get_order", store.get_order(a.shop, order.id).await), order);
    assert_eq!(
        a.totals().await,
        StockTotals {
            on_hand: 5,
            reserved: 1,
            ledger_on_hand: 5,
            ledger_reserved: 1
        }
    );
}

async fn due_reminders_fire_once_for_unpaid_orders(store: Arc<dyn Store>) {
    let mut settings = cny();
    settings.payment_timeout_secs = 600;
    settings.payment_reminder_secs = 120;
    let w = World::new(&store, settings, 10).await;
    // Long before every other check's orders, so only this check's are due then.
    let base = Timestamp(1_100_000_000);
    let unpaid = w.place_order(base, 1).await;
    let paid = w.place_order(base.plus_secs(1), 1).await;
    w.pay(base.plus_secs(2), &paid).await;
    assert_eq!(
        unpaid.payment_reminder_at,
        Some(base.plus_secs(480)),
        "reminded 120 s before the deadline"
    );

    let due = |now: Timestamp| {
        let store = Arc::clone(&store);
        let shop = w.shop;
        async move {
            let all = ok("due_reminders", store.due_reminders(now, 10_000).await);
            all.into_iter()
                .filter(|(s, _)| *s == shop)
                .map(|(_, id)| id)
                .collect::<Vec<_>>()
        }
    };
    assert!(
        due(base.plus_secs(479)).await.is_empty(),
        "nothing is due before its reminder time"
    );
    assert_eq!(
        due(base.plus_secs(481)).await,
        vec![unpaid.id],
        "paid orders are never reminded"
    );
    let done = w
        .run(
            base.plus_secs(481),
            vec![Command::RemindUnpaid {
                shop: w.shop,
                order: unpaid.id,
            }],
        )
        .await;
    let (reminded, _) = placed(&done.outcomes[0], "reminding an unpaid order");
    assert_eq!(reminded.payment_reminder_at, None);
    assert!(due(base.plus_secs(500)).await.is_empty(), "a reminder fires once");
    let stored = ok("get_order", store.get_order(w.shop, unpaid.id).await);
    assert_eq!(
        (stored.payment_reminder_at, stored.version),
        (None, reminded.version),
        "the reminder was persisted"
    );
}

async fn due_unpaid_oldest_deadline_first(store: Arc<dyn Store>) {
    let mut settings = cny();
    settings.payment_timeout_secs = 60;
    let w = World::new(&store, settings, 10).await;
    // Long before every other check's orders, so only this check's are due then.
    let base = Timestamp(1_000_000_000);
    let first = w.place_order(base, 1).await;
    let second = w.place_order(base.plus_secs(1), 1).await;
    let paid = w.place_order(base.plus_secs(2), 1).await;
    w.pay(base.plus_secs(3), &paid).await;

    let due = |now: Timestamp| {
        let store = Arc::clone(&store);
        let shop = w.shop;
        async move {
            let all = ok("due_unpaid", store.due_unpaid(now, 10_000).await);
            all.into_iter()
                .filter(|(s, _)| *s == shop)
                .map(|(_, id)| id)
                .collect::<Vec<_>>()
        }
    };
    let deadline = base.plus_secs(60);
    assert!(
        due(deadline.plus_millis(-1)).await.is_empty(),
        "nothing is due before its deadline"
    );
    assert_eq!(due(deadline).await, vec![first.id], "an order is due at its deadline");
    let later = base.plus_secs(70);
    assert_eq!(
        due(later).await,
        vec![first.id, second.id],
        "oldest deadline first; paid orders are never due"
    );
    assert_eq!(
        ok("due_unpaid", store.due_unpaid(later, 1).await).len(),
        1,
        "due_unpaid honours its limit"
    );

    let expire = Command::ExpireUnpaid {
        shop: w.shop,
        order: first.id,
    };
    let done = w.run(later, vec![expire]).await;
    let (expired, _) = placed(&done.outcomes[0], "expiring an unpaid order");
    assert_eq!(expired.cancel_reason, Some(CancelReason::PaymentTimeout));
    assert_eq!(due(later).await, vec![second.id], "a cancelled order is no longer due");
}

async fn list_orders_pages_and_filters(store: Arc<dyn Store>) {
    let w = World::new(&store, cny(), 100).await;
    let mut orders = Vec::new();
    for i in 0..5 {
        orders.push(w.place_order(T0.plus_secs(i), 1).await.id);
    }
    let paid = ok("get_order", store.get_order(w.shop, orders[1]).await);
    w.pay(T0.plus_secs(10), &paid).await;
    let [o0, o1, o2, o3, o4] = orders[..] else {
        panic!("five orders were placed")
    };

    let list = |filter: OrderFilter| {
        let store = Arc::clone(&store);
        let shop = w.shop;
        async move { order_ids(&ok("list_orders", store.list_orders(shop, &filter).await)) }
    };
    let page = |cursor: Option<OrderId>| OrderFilter {
        cursor,
        limit: 2,
        ..OrderFilter::default()
    };
    assert_eq!(list(page(None)).await, vec![o4, o3], "newest first, at most `limit`");
    assert_eq!(
        list(page(Some(o3))).await,
        vec![o2, o1],
        "the cursor returns older orders"
    );
    assert_eq!(list(page(Some(o1))).await, vec![o0]);
    assert!(list(page(Some(o0))).await.is_empty());

    let status = |status| OrderFilter {
        status: Some(status),
        ..limit(10)
    };
    assert_eq!(list(status(OrderStatus::PendingPayment)).await, vec![o4, o3, o2, o0]);
    assert_eq!(list(status(OrderStatus::Fulfilling)).await, vec![o1]);
    let range = OrderFilter {
        created_from: Some(T0.plus_secs(1)),
        created_to: Some(T0.plus_secs(3)),
        ..limit(10)
    };
    assert_eq!(
        list(range.clone()).await,
        vec![o3, o2, o1],
        "created_from and created_to are inclusive"
    );
    let pending_in_range = OrderFilter {
        status: Some(OrderStatus::PendingPayment),
        ..range.clone()
    };
    assert_eq!(list(pending_in_range.clone()).await, vec![o3, o2]);
    let pending_in_range_after_o3 = OrderFilter {
        cursor: Some(o3),
        ..pending_in_range
    };
    assert_eq!(
        list(pending_in_range_after_o3).await,
        vec![o2],
        "filters combine with the cursor"
    );

    let listed = ok("list_orders", store.list_orders(w.shop, &limit(1)).await);
    assert_eq!(
        listed,
        vec![ok("get_order", store.get_order(w.shop, o4).await)],
        "lists return whole orders"
    );
}

async fn events_are_scoped_and_ordered(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let mut ids = Ids::fresh();
    let a = new_shop(store, &mut ids, cny()).await.id;
    let b = new_shop(store, &mut ids, cny()).await.id;
    let start = ok("events_after", store.events_after(Some(b), 0, 10).await)
        .last()
        .map(|e| e.seq)
        .expect("creating a shop logs an event");

    let appended = vec![
        event(None, format!("{b}-platform"), kinds::SHOP_UPDATED, T0),
        event(Some(a), format!("{a}-1"), kinds::STOCK_CHANGED, T0.plus_secs(1)),
        event(Some(b), format!("{b}-1"), kinds::STOCK_CHANGED, T0.plus_secs(2)),
        event(Some(a), format!("{a}-2"), kinds::STOCK_CHANGED, T0.plus_secs(3)),
    ];
    ok("append_events", store.append_events(appended.clone()).await);
    ok("append_events with none", store.append_events(Vec::new()).await);

    let of_a = ok("events_after", store.events_after(Some(a), start, 100).await);
    let as_new: Vec<NewEvent> = of_a
        .iter()
        .map(|e| NewEvent {
            shop: e.shop,
            subject: e.subject.clone(),
            kind: kinds::STOCK_CHANGED,
            payload: e.payload.clone().into(),
            actor: e.actor.clone(),
            at: e.at,
        })
        .collect();
    assert_eq!(
        as_new,
        vec![appended[1].clone(), appended[3].clone()],
        "a shop reads only its own events"
    );
    assert!(of_a.iter().all(|e| e.kind == kinds::STOCK_CHANGED));
    assert!(of_a[0].seq < of_a[1].seq);
    let rest = ok("events_after", store.events_after(Some(a), of_a[0].seq, 100).await);
    assert_eq!(rest, of_a[1..].to_vec(), "events_after pages by seq");

    let of_b = ok("events_after", store.events_after(Some(b), start, 100).await);
    let subjects: Vec<&str> = of_b.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, vec![format!("{b}-1")], "platform events are not a shop's");

    let all = ok("events_after", store.events_after(None, start, 1000).await);
    assert!(all.windows(2).all(|p| p[0].seq < p[1].seq), "events come oldest first");
    let ours: Vec<(Option<ShopId>, &str)> = all
        .iter()
        .filter(|e| appended.iter().any(|n| n.subject == e.subject))
        .map(|e| (e.shop, e.subject.as_str()))
        .collect();
    let expected: Vec<(Option<ShopId>, &str)> = appended.iter().map(|e| (e.shop, e.subject.as_str())).collect();
    assert_eq!(
        ours, expected,
        "the admin view reads every shop's events and platform events"
    );
    assert_eq!(ok("events_after", store.events_after(None, start, 1).await).len(), 1);
}

async fn idempotency_outside_batches(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let mut ids = Ids::fresh();
    let scope = ApiKeyId(ids.next_id()).to_string();
    let record = IdempotencyRecord {
        scope: scope.clone(),
        key: "k1".into(),
        request_hash: "hash-1".into(),
        status_code: 201,
        resource: ProductId(ids.next_id()).to_string(),
        created_at: T0,
    };
    assert!(
        ok("put_idempotency", store.put_idempotency(&record).await),
        "a new key is inserted"
    );
    let clash = IdempotencyRecord {
        request_hash: "hash-2".into(),
        ..record.clone()
    };
    assert!(
        !ok("put_idempotency", store.put_idempotency(&clash).await),
        "a used key is not replaced"
    );
    assert_eq!(
        ok("get_idempotency", store.get_idempotency(&scope, "k1").await),
        Some(record)
    );
    assert_eq!(ok("get_idempotency", store.get_idempotency(&scope, "k2").await), None);
    assert_eq!(
        ok("get_idempotency", store.get_idempotency("other-scope", "k1").await),
        None
    );
}

async fn concurrent_batches_never_oversell(store: Arc<dyn Store>) {
    const BUYERS: i64 = 10;
    const UNITS: i64 = 5;
    let w = World::new(&store, cny(), UNITS).await;
    let batches = (0..BUYERS).map(|i| w.run(T0.plus_millis(i), vec![Command::PlaceOrder(Box::new(w.place(1)))]));
    let results = join_all(batches.collect()).await;

    let mut sold = 0;
    let mut last_events = Vec::new();
    for done in &results {
        match &done.outcomes[0] {
            Ok(Outcome::Order { .. }) => {
                sold += 1;
                last_events.push(done.last_event.expect("a placed order logs an event"));
            }
            Err(CommandError::InsufficientStock { .. }) => {}
            other => panic!("unexpected outcome of a concurrent order: {other:?}"),
        }
    }
    assert_eq!(sold, UNITS, "exactly the units in stock were sold");
    last_events.sort_unstable();
    last_events.dedup();
    assert_eq!(
        last_events.len(),
        usize::try_from(UNITS).unwrap_or(0),
        "every batch drew its own event seq"
    );
    assert_eq!(
        w.totals().await,
        StockTotals {
            on_hand: UNITS,
            reserved: UNITS,
            ledger_on_hand: UNITS,
            ledger_reserved: UNITS
        }
    );
    let listed = ok("list_orders", store.list_orders(w.shop, &limit(100)).await);
    assert_eq!(listed.len(), usize::try_from(UNITS).unwrap_or(0));
}

/// Batches that each create the same stock level find no row to lock; the store
/// must still keep every change (e.g. by retrying the losers) rather than let the
/// last writer overwrite the others.
async fn concurrent_first_stock_changes_all_count(store: Arc<dyn Store>) {
    const ADJUSTERS: i64 = 6;
    let w = World::new(&store, cny(), 0).await;
    let batches = (0..ADJUSTERS).map(|i| w.run(T0.plus_millis(i), vec![w.adjust(1)]));
    for done in join_all(batches.collect()).await {
        assert!(
            matches!(done.outcomes[0], Ok(Outcome::Stock(_))),
            "{:?}",
            done.outcomes[0]
        );
    }
    assert_eq!(
        w.totals().await,
        StockTotals {
            on_hand: ADJUSTERS,
            reserved: 0,
            ledger_on_hand: ADJUSTERS,
            ledger_reserved: 0
        },
        "no concurrent stock change was lost"
    );
}

async fn a_thousand_orders_commit_in_one_batch(store: Arc<dyn Store>) {
    const ORDERS: usize = 1000;
    let w = World::new(&store, cny(), 1000).await;
    let commands = (0..ORDERS).map(|_| Command::PlaceOrder(Box::new(w.place(1)))).collect();
    let done = w.run(T0, commands).await;
    let placed_ids: Vec<OrderId> = done
        .outcomes
        .iter()
        .map(|o| placed(o, "one order of a large batch").0.id)
        .collect();
    let listed = ok("list_orders", store.list_orders(w.shop, &limit(2000)).await);
    let mut newest_first = placed_ids;
    newest_first.reverse();
    assert_eq!(order_ids(&listed), newest_first, "every order of the batch is stored");
    let totals = w.totals().await;
    assert_eq!((totals.reserved, totals.ledger_reserved), (1000, 1000));
    let events = ok("events_after", store.events_after(Some(w.shop), 0, 2000).await);
    let placed_events = events.iter().filter(|e| e.kind == kinds::ORDER_PLACED).count();
    assert_eq!(placed_events, ORDERS, "every order logged its event");
    assert_eq!(done.last_event, events.last().map(|e| e.seq));
}

/// Two batches in flight at once — a big one and, submitted right after it, one
/// that re-sends the big one's first channel order and asks for one unit more
/// than is left — are decided as if one ran after the other: the re-sent order is
/// placed once (the other is a replay of it) and no unit is sold twice. A store
/// that decides the next batch while still writing the last one (SQLite) must
/// decide it on the unwritten changes too; one that locks rows (PostgreSQL) may
/// run them in either order.
async fn a_batch_sent_during_a_big_one_sees_all_of_it(store: Arc<dyn Store>) {
    const ORDERS: usize = 1000;
    let w = World::new(&store, cny(), ORDERS as i64).await;
    let from_channel = |i: usize| {
        let mut order = w.place(1);
        order.channel = "shopify".into();
        order.external_id = Some(format!("ext-{i}"));
        Command::PlaceOrder(Box::new(order))
    };
    let big = w.run(T0, (0..ORDERS).map(from_channel).collect());
    let after = w.run(T0.plus_millis(1), vec![from_channel(0), from_channel(ORDERS)]);
    type Running<'a> = Pin<Box<dyn Future<Output = Committed> + Send + 'a>>;
    let done = join_all(vec![Box::pin(big) as Running<'_>, Box::pin(after)]).await;
    let (first, first_replayed) = placed(&done[0].outcomes[0], "the big batch's first order");
    let (again, again_replayed) = placed(&done[1].outcomes[0], "re-sending the first order");
    assert_eq!(first.id, again.id, "a re-sent channel order is the same order");
    assert!(
        first_replayed != again_replayed,
        "one of the two placed it, the other replayed it"
    );
    let sold_out = done
        .iter()
        .flat_map(|d| &d.outcomes)
        .filter(|o| matches!(o, Err(CommandError::InsufficientStock { .. })))
        .count();
    assert_eq!(sold_out, 1, "one order more than the stock asked for");
    let totals = w.totals().await;
    assert_eq!(
        (totals.reserved, totals.ledger_reserved),
        (ORDERS as i64, ORDERS as i64)
    );
    let listed = ok("list_orders", store.list_orders(w.shop, &limit(2000)).await);
    assert_eq!(listed.len(), ORDERS, "one order per unit, each channel reference once");
}

fn coupon(code: &str, usage_limit: Option<i64>, per_buyer_limit: Option<i64>) -> Promotion {
    Promotion {
        id: format!("promo-{code}"),
        coupon_code: Some(code.into()),
        kind: PromotionKind::Fixed { amount_minor: 100 },
        starts_at: None,
        ends_at: None,
        stackable: true,
        priority: 0,
        usage_limit,
        per_buyer_limit,
    }
}

/// Buyers racing in separate batches for a coupon with 3 uses: exactly 3 get it;
/// a cancelled order gives its use back; a per-buyer limit holds too.
async fn concurrent_coupon_uses_stop_at_the_limit(store: Arc<dyn Store>) {
    const BUYERS: usize = 10;
    let mut settings = cny();
    settings.promotions = vec![coupon("TRIO", Some(3), None), coupon("ONCE", None, Some(1))];
    let w = World::new(&store, settings, 100).await;
    let with = |buyer: String, code: &str| {
        let mut p = w.place(1);
        p.buyer.id = buyer;
        p.coupon_codes = vec![code.into()];
        Command::PlaceOrder(Box::new(p))
    };
    let batches = (0..BUYERS).map(|i| w.run(T0.plus_millis(i as i64), vec![with(format!("racer-{i}"), "TRIO")]));
    let mut winners = Vec::new();
    for done in join_all(batches.collect()).await {
        match &done.outcomes[0] {
            Ok(Outcome::Order { order, .. }) => winners.push((**order).clone()),
            Err(CommandError::CouponUsedUp { code }) => assert_eq!(code, "TRIO"),
            other => panic!("unexpected outcome of a coupon race: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 3, "exactly the coupon's 3 uses were granted");
    assert!(winners.iter().all(|o| o.pricing.discount_minor == 100));

    let late = w.run(T0.plus_secs(1), vec![with("late".into(), "TRIO")]).await;
    assert!(matches!(late.outcomes[0], Err(CommandError::CouponUsedUp { .. })));
    let cancel = w.transition(winners[0].id, Step::Cancel(CancelReason::Buyer));
    placed(&w.run(T0.plus_secs(2), vec![cancel]).await.outcomes[0], "cancelling");
    let again = w.run(T0.plus_secs(3), vec![with("late".into(), "TRIO")]).await;
    placed(&again.outcomes[0], "the use a cancelled order gave back");

    // Per buyer: one use each, in the same batch as well as across batches.
    let done = w
        .run(
            T0.plus_secs(4),
            vec![
                with("b1".into(), "ONCE"),
                with("b1".into(), "ONCE"),
                with("b2".into(), "ONCE"),
            ],
        )
        .await;
    placed(&done.outcomes[0], "b1's first use");
    assert!(matches!(
        done.outcomes[1],
        Err(CommandError::CouponPerBuyerLimit { max: 1, .. })
    ));
    placed(&done.outcomes[2], "b2's first use");
}

/// 限购 per buyer and window, and the history facts the review rules read.
async fn purchase_limits_and_history_counters(store: Arc<dyn Store>) {
    const DAY: i64 = 86_400;
    let mut settings = cny();
    settings.purchase_limits = vec![PurchaseLimit {
        sku: "TEE".into(),
        max_units: 2,
        window_secs: Some(DAY),
    }];
    settings.review.new_buyer_above_minor = Some(1);
    settings.review.address_orders = Some(AddressOrdersRule {
        max_orders: 2,
        window_secs: DAY,
    });
    let w = World::new(&store, settings, 100).await;
    let first = w.place_order(T0, 2).await;
    assert_eq!(first.history.buyer_orders_before, Some(0), "a new buyer");
    assert_eq!(first.history.address_orders_in_window, Some(1));
    let over = w
        .run(T0.plus_secs(60), vec![Command::PlaceOrder(Box::new(w.place(1)))])
        .await;
    match &over.outcomes[0] {
        Err(CommandError::PurchaseLimit { sku, max, already }) => {
            assert_eq!((sku.as_str(), *max, *already), ("TEE", 2, 2));
        }
        other => panic!("a third unit within the day must be refused, got {other:?}"),
    }
    let next_day = w.place_order(T0.plus_secs(DAY), 1).await;
    assert_eq!(next_day.history.buyer_orders_before, Some(1), "the buyer is known now");
    assert_eq!(
        next_day.history.address_orders_in_window,
        Some(1),
        "yesterday's orders to the address are outside the window"
    );
    let mut other_buyer = w.place(1);
    other_buyer.buyer.id = "buyer-2".into();
    let done = w
        .run(T0.plus_secs(DAY + 1), vec![Command::PlaceOrder(Box::new(other_buyer))])
        .await;
    let (second_at_address, _) = placed(&done.outcomes[0], "another buyer, same address");
    assert_eq!(second_at_address.history.buyer_orders_before, Some(0));
    assert_eq!(second_at_address.history.address_orders_in_window, Some(2));
}

/// A limit set on a shop with orders counts the units its buyers bought within the
/// window before it was set; cancelling one of those orders gives its units back.
async fn a_purchase_limit_counts_orders_placed_before_it(store: Arc<dyn Store>) {
    const DAY: i64 = 86_400;
    let w = World::new(&store, cny(), 100).await;
    let placed_by = |buyer: &str, quantity: i64| {
        let mut place = w.place(quantity);
        place.buyer.id = buyer.into();
        Command::PlaceOrder(Box::new(place))
    };
    let place = |at: Timestamp, buyer: &'static str, quantity: i64| {
        let command = placed_by(buyer, quantity);
        let w = &w;
        async move { w.run(at, vec![command]).await }
    };
    let old = place(T0, "carol", 2).await;
    placed(&old.outcomes[0], "carol, two days before the limit");
    let morning = place(T0.plus_secs(2 * DAY), "ann", 1).await;
    let (morning, _) = placed(&morning.outcomes[0], "ann's first");
    placed(
        &place(T0.plus_secs(2 * DAY + 60), "ann", 1).await.outcomes[0],
        "ann's second",
    );

    let noon = T0.plus_secs(2 * DAY + 3_600);
    let mut settings = cny();
    settings.purchase_limits = vec![PurchaseLimit {
        sku: "TEE".into(),
        max_units: 2,
        window_secs: Some(DAY),
    }];
    ok(
        "update_shop_settings",
        store
            .update_shop_settings(
                w.shop,
                &settings,
                event(Some(w.shop), w.shop, kinds::SHOP_UPDATED, noon),
            )
            .await,
    );

    let later = noon.plus_secs(60);
    let refused = place(later, "ann", 1).await;
    match &refused.outcomes[0] {
        Err(CommandError::PurchaseLimit { already, .. }) => assert_eq!(*already, 2, "ann's morning counts"),
        other => panic!("ann bought two before the limit and must be refused a third, got {other:?}"),
    }
    placed(
        &place(later, "carol", 2).await.outcomes[0],
        "carol's orders are outside the window",
    );
    placed(&place(later, "bob", 2).await.outcomes[0], "bob bought nothing before");

    let cancel = w.transition(morning.id, Step::Cancel(CancelReason::Buyer));
    let done = w.run(later.plus_secs(60), vec![cancel]).await;
    assert!(done.outcomes[0].is_ok(), "cancel: {:?}", done.outcomes[0]);
    placed(
        &place(later.plus_secs(120), "ann", 1).await.outcomes[0],
        "the cancelled morning order gave its unit back",
    );
    let over = place(later.plus_secs(180), "ann", 1).await;
    assert!(
        matches!(over.outcomes[0], Err(CommandError::PurchaseLimit { .. })),
        "and the limit holds again: {:?}",
        over.outcomes[0]
    );
}

/// A limit set while a buyer's orders are being placed counts every one of them:
/// those committed before it from history, those after it as they are placed, and
/// none decided on the old settings slips in between.
async fn a_limit_set_while_orders_are_placed_counts_every_one(store: Arc<dyn Store>) {
    const ORDERS: i64 = 120;
    let w = World::new(&store, cny(), 1_000).await;
    let limited = |max_units: i64| {
        let mut settings = cny();
        settings.purchase_limits = vec![PurchaseLimit {
            sku: "TEE".into(),
            max_units,
            window_secs: Some(86_400),
        }];
        settings
    };
    let at = T0.plus_secs(1);
    let mut jobs: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = Vec::new();
    for i in 0..ORDERS {
        let mut place = w.place(1);
        place.buyer.id = "ann".into();
        let w = &w;
        jobs.push(Box::pin(async move {
            let done = w.run(at, vec![Command::PlaceOrder(Box::new(place))]).await;
            placed(&done.outcomes[0], "one of ann's orders");
        }));
        if i == ORDERS / 2 {
            let (store, shop, settings) = (&store, w.shop, limited(1_000_000));
            jobs.push(Box::pin(async move {
                let set = event(Some(shop), shop, kinds::SHOP_UPDATED, at);
                ok(
                    "update_shop_settings",
                    store.update_shop_settings(shop, &settings, set).await,
                );
            }));
        }
    }
    join_all(jobs).await;
    // Lowering the cap alone keeps the counters: ann has used all of it.
    let lowered = event(Some(w.shop), w.shop, kinds::SHOP_UPDATED, at);
    ok(
        "update_shop_settings",
        store.update_shop_settings(w.shop, &limited(ORDERS), lowered).await,
    );
    let mut one_more = w.place(1);
    one_more.buyer.id = "ann".into();
    let done = w.run(at, vec![Command::PlaceOrder(Box::new(one_more))]).await;
    match &done.outcomes[0] {
        Err(CommandError::PurchaseLimit { already, .. }) => assert_eq!(*already, ORDERS, "every order counted"),
        other => panic!("ann has bought {ORDERS} and must be refused, got {other:?}"),
    }
}

fn intake(w: &World, external_id: &str, body: &str, mapped: Result<PlaceOrder, Unmapped>) -> Command {
    Command::IntakeChannelOrder(Box::new(ChannelIntake {
        shop: w.shop,
        channel: "shopify".into(),
        external_id: external_id.into(),
        body: body.into(),
        actor: actor(),
        mapped,
        cancelled: false,
    }))
}

fn raw_outcome(outcome: &Result<Outcome, CommandError>) -> (RawChannelOrder, Option<OrderId>, bool) {
    match outcome {
        Ok(Outcome::ChannelOrder { raw, order, replayed }) => ((**raw).clone(), *order, *replayed),
        other => panic!("expected a channel order outcome, got {other:?}"),
    }
}

/// A raw order is stored as received even when it cannot be mapped; a re-send
/// after the fix completes it; a re-send of a mapped one changes nothing.
async fn channel_orders_are_kept_and_completed_on_resend(store: Arc<dyn Store>) {
    let w = World::new(&store, cny(), 10).await;
    let unknown = Unmapped {
        code: "unknown-sku".into(),
        reason: "variant 42 is not mapped".into(),
    };
    let done = w.run(T0, vec![intake(&w, "1001", "{\"id\":1001}", Err(unknown))]).await;
    let (raw, order, _) = raw_outcome(&done.outcomes[0]);
    assert_eq!(
        (raw.status, raw.reason_code.as_deref(), order),
        (RawStatus::Unmapped, Some("unknown-sku"), None)
    );
    let stored = ok("get_channel_order", store.get_channel_order(w.shop, raw.id).await);
    assert_eq!((&*stored.body, stored.deliveries), ("{\"id\":1001}", 1));
    let unmapped = ok(
        "list_channel_orders",
        store
            .list_channel_orders(w.shop, Some(RawStatus::Unmapped), None, 10)
            .await,
    );
    assert_eq!(unmapped.iter().map(|r| r.id).collect::<Vec<_>>(), vec![raw.id]);

    ok(
        "put_sku_mappings",
        store
            .put_sku_mappings(
                w.shop,
                "shopify",
                &[SkuMapping {
                    channel_key: "variant:42".into(),
                    sku: "TEE".into(),
                }],
                event(Some(w.shop), w.shop, kinds::SKU_MAPPING_CHANGED, T0),
            )
            .await,
    );
    let mappings = ok("sku_mappings", store.sku_mappings(w.shop, "shopify").await);
    assert_eq!(mappings.len(), 1);
    let mut place = w.place(2);
    place.channel = "shopify".into();
    place.external_id = Some("1001".into());
    let done = w
        .run(
            T0.plus_secs(1),
            vec![intake(&w, "1001", "{\"id\":1001,\"v\":2}", Ok(place.clone()))],
        )
        .await;
    let (again, order, replayed) = raw_outcome(&done.outcomes[0]);
    let order = order.expect("the re-sent order was placed");
    assert_eq!(
        (again.id, again.status, again.deliveries, replayed),
        (raw.id, RawStatus::Mapped, 2, false)
    );
    assert_eq!(again.order, Some(order));
    let resend = w.run(T0.plus_secs(2), vec![intake(&w, "1001", "{}", Ok(place))]).await;
    let (third, same, replayed) = raw_outcome(&resend.outcomes[0]);
    assert!(replayed, "a mapped order's re-send is a replay");
    assert_eq!((third.deliveries, same), (2, Some(order)));
    // Once mapped, a re-send that would not map now (its mapping was removed) is
    // still a replay of the order it became.
    let gone = Unmapped {
        code: "unknown-sku".into(),
        reason: "variant 42 is not mapped".into(),
    };
    let resend = w.run(T0.plus_secs(3), vec![intake(&w, "1001", "{}", Err(gone))]).await;
    let (fourth, same, replayed) = raw_outcome(&resend.outcomes[0]);
    assert_eq!((fourth.status, same, replayed), (RawStatus::Mapped, Some(order), true));
    let stored = ok("get_channel_order", store.get_channel_order(w.shop, raw.id).await);
    assert_eq!(&*stored.body, "{\"id\":1001,\"v\":2}", "the body that mapped is kept");
    assert!(
        ok(
            "list",
            store
                .list_channel_orders(w.shop, Some(RawStatus::Unmapped), None, 10)
                .await
        )
        .is_empty()
    );
    assert_eq!(w.totals().await.reserved, 2);

    let other = World::new(&store, cny(), 0).await;
    expect_not_found(
        "another shop's raw order",
        store.get_channel_order(other.shop, raw.id).await,
    );
    assert!(ok("list", store.list_channel_orders(other.shop, None, None, 10).await).is_empty());
    assert!(ok("sku_mappings", store.sku_mappings(other.shop, "shopify").await).is_empty());

    ok(
        "put_channel",
        store
            .put_channel(
                w.shop,
                "shopify",
                "s3cret",
                T0,
                event(Some(w.shop), w.shop, kinds::CHANNEL_CONFIGURED, T0),
            )
            .await,
    );
    assert_eq!(
        ok("channel_secret", store.channel_secret(w.shop, "shopify").await).as_deref(),
        Some("s3cret")
    );
    assert_eq!(
        ok("channel_secret", store.channel_secret(other.shop, "shopify").await),
        None
    );
}

/// Concurrent payments draw from one code pool: every code goes to one order,
/// the orders beyond the pool are held, and the pool counts down to zero.
async fn codes_are_assigned_once_under_concurrency(store: Arc<dyn Store>) {
    const POOL: usize = 5;
    const BUYERS: usize = 12;
    let w = World::new(&store, cny(), 0).await;
    let mut ids = w.ids.clone();
    let mut card = product(&mut ids, w.shop, "CARD");
    card.kind = ProductKind::Virtual;
    let created = event(Some(w.shop), card.id, kinds::PRODUCT_CREATED, T0);
    ok("create_product", store.create_product(&card, created).await);
    let codes: Vec<NewCode> = (0..POOL)
        .map(|i| NewCode {
            id: CodeId(ids.next_id()),
            fingerprint: format!("fp-{i}"),
            sealed: format!("sealed-{i}"),
            created_at: T0,
        })
        .collect();
    let imported = || event(Some(w.shop), card.id, kinds::CODES_IMPORTED, T0);
    assert_eq!(
        ok("add_codes", store.add_codes(w.shop, card.id, &codes, imported()).await),
        (5, 5)
    );
    assert_eq!(
        ok(
            "add_codes",
            store.add_codes(w.shop, card.id, &codes[..2], imported()).await
        ),
        (0, 5),
        "a code the pool holds is not added again"
    );

    let place = || {
        let mut p = w.place(1);
        p.lines[0].sku = "CARD".into();
        p.shipping_address = None;
        Command::PlaceOrder(Box::new(p))
    };
    let done = w.run(T0, (0..BUYERS).map(|_| place()).collect()).await;
    let orders: Vec<Order> = done.outcomes.iter().map(|o| placed(o, "a card order").0).collect();
    let payments = orders
        .iter()
        .enumerate()
        .map(|(i, o)| w.run(T0.plus_millis(i as i64 + 1), vec![w.notice(o, &format!("tx-card-{i}"))]));
    join_all(payments.collect()).await;

    let mut assigned = std::collections::HashSet::new();
    let (mut delivered, mut held) = (0, 0);
    for o in &orders {
        let now = ok("get_order", store.get_order(w.shop, o.id).await);
        let codes = ok("codes_of_order", store.codes_of_order(w.shop, o.id).await);
        match now.status {
            OrderStatus::Delivered => {
                delivered += 1;
                assert_eq!(codes.len(), 1);
                assert_eq!(now.lines[0].codes, vec![codes[0].id]);
                assert!(assigned.insert(codes[0].id), "a code went to two orders");
            }
            OrderStatus::OnHold => {
                held += 1;
                assert!(codes.is_empty());
            }
            other => panic!("a paid card order is delivered or held, not {other:?}"),
        }
    }
    assert_eq!((delivered, held), (POOL, BUYERS - POOL));
    assert_eq!(ok("codes_available", store.codes_available(w.shop, card.id).await), 0);
    let other = World::new(&store, cny(), 0).await;
    assert!(ok("codes_of_order", store.codes_of_order(other.shop, orders[0].id).await).is_empty());
}
