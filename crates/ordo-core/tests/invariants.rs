//! Invariants of the pure core under random command sequences.
//!
//! One hand-built working set (one shop, two warehouses, three physical SKUs and one
//! virtual SKU) takes random sequences of commands: orders (some impossible), payment
//! notices (exact, under, over, wrong currency, failed, duplicate), cancels, timeouts,
//! hold/approve, shipping, delivery, refunds and stock adjustments (some invalid).
//! After every step the harness checks
//!
//! * the command's result against a small model of what it should do;
//! * that a failing command changed nothing and recorded no changes;
//! * that every change in the working set is reported by `take_changes`;
//! * stock: `0 <= reserved <= on_hand`, the ledger sums to every level, and reserved
//!   equals what orders still holding stock have allocated;
//! * money: payments (captured − refunded, in the shop currency) match the orders'
//!   paid − refunded, refunds never exceed captures and the recorded refunds add up;
//! * every order status moved only along the state machine.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ordo_core::auth::Actor;
use ordo_core::batch::{
    self, AdjustStock, By, Changes, EditOrder, ExternalRef, IdempotencyClaim, IdempotencyKey, IdempotencyRecord,
    LINE_QUANTITY_MAX, LineRequest, NoticeKey, PaymentResult, PlaceOrder, RefundRequest, Step, StockChange,
};
use ordo_core::catalog::{Product, ProductKind, ShopSettings, Warehouse};
use ordo_core::inventory::{LedgerEntry, LedgerReason, STOCK_UNITS_MAX, StockKey, StockLevel};
use ordo_core::money::AMOUNT_MINOR_MAX;
use ordo_core::order::{Address, Buyer, CancelReason, Order, OrderEvent, OrderStatus, OrderStatus as S, transition};
use ordo_core::payment::{AmountCheck, Payment, PaymentNotice, PaymentStatus, Refund};
use ordo_core::{
    CodeId, Command, CommandError, Context, Currency, IdSource, OrderId, Outcome, PaymentId, ProductId, ShopId,
    Timestamp, WarehouseId, WorkingSet,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------

const SHOP: ShopId = ShopId(1);
/// A shop that is not loaded: its caller must never see the fixture's orders.
const OTHER_SHOP: ShopId = ShopId(2);
const CNY: Currency = Currency::CNY;
const GATEWAY: &str = "generic";
const START: Timestamp = Timestamp(1_700_000_000_000);
/// An order id no command ever creates.
const MISSING_ORDER: OrderId = OrderId(7);

const WAREHOUSES: [(WarehouseId, &str); 2] = [(WarehouseId(11), "WH-A"), (WarehouseId(12), "WH-B")];
const UNKNOWN_WAREHOUSE: WarehouseId = WarehouseId(19);

struct Sku {
    id: ProductId,
    code: &'static str,
    kind: ProductKind,
    price_minor: i64,
}

/// Three physical SKUs, then one virtual SKU.
const SKUS: [Sku; 4] = [
    Sku {
        id: ProductId(21),
        code: "TEA-001",
        kind: ProductKind::Physical,
        price_minor: 1_999,
    },
    Sku {
        id: ProductId(22),
        code: "CUP-002",
        kind: ProductKind::Physical,
        price_minor: 500,
    },
    Sku {
        id: ProductId(23),
        code: "POT-003",
        kind: ProductKind::Physical,
        price_minor: 12_345,
    },
    Sku {
        id: ProductId(24),
        code: "GIFT-CARD",
        kind: ProductKind::Virtual,
        price_minor: 3_000,
    },
];
const UNKNOWN_SKU: &str = "NO-SUCH-SKU";
/// Codes in the gift card's pool: few, so sequences run it dry.
const GIFT_CODES: u128 = 4;

fn gift_codes() -> impl Iterator<Item = CodeId> {
    (0..GIFT_CODES).map(|i| CodeId(900 + i))
}

/// SKU code by index; `SKUS.len()` and above name an unknown SKU.
fn sku_code(i: usize) -> &'static str {
    SKUS.get(i).map_or(UNKNOWN_SKU, |s| s.code)
}

fn sku_by_code(code: &str) -> Option<&'static Sku> {
    SKUS.iter().find(|s| s.code == code)
}

fn warehouse_id(i: usize) -> WarehouseId {
    WAREHOUSES.get(i).map_or(UNKNOWN_WAREHOUSE, |w| w.0)
}

fn stock_key(sku: usize, warehouse: usize) -> StockKey {
    StockKey {
        sku: SKUS[sku].id,
        warehouse: warehouse_id(warehouse),
    }
}

fn by() -> By {
    By {
        shop: SHOP,
        actor: Actor("key_test".into()),
    }
}

fn address() -> Address {
    Address {
        recipient: "Li Lei".into(),
        phone: "13800000000".into(),
        country: "CN".into(),
        province: "广东省".into(),
        city: "深圳市".into(),
        district: Some("南山区".into()),
        line1: "1 Keji Road".into(),
        line2: None,
        postal_code: Some("518000".into()),
    }
}

/// The working set: `stock` lists (physical SKU index, warehouse index, on hand).
fn fixture(stock: &[(usize, usize, i64)], review_above_minor: Option<i64>) -> WorkingSet {
    let mut ws = WorkingSet::default();
    let mut settings = ShopSettings::new(CNY);
    settings.review_above_minor = review_above_minor;
    ws.shops.insert(SHOP, settings);
    ws.warehouses.insert(
        SHOP,
        WAREHOUSES
            .iter()
            .map(|(id, code)| Warehouse {
                id: *id,
                shop: SHOP,
                code: (*code).into(),
                name: format!("Warehouse {code}"),
                region: "CN-GD".into(),
                active: true,
                created_at: START,
            })
            .collect(),
    );
    for s in &SKUS {
        ws.products.insert(
            (SHOP, s.code.into()),
            Product {
                id: s.id,
                shop: SHOP,
                sku: s.code.into(),
                name: format!("Product {}", s.code),
                kind: s.kind,
                price_minor: s.price_minor,
                currency: CNY,
                weight_g: 250,
                on_sale: true,
                attributes: Default::default(),
                presale_ships_at: None,
                created_at: START,
            },
        );
    }
    for &(sku, warehouse, on_hand) in stock {
        assert_eq!(
            SKUS[sku].kind,
            ProductKind::Physical,
            "fixture stock is for physical SKUs"
        );
        let key = stock_key(sku, warehouse);
        ws.stock.insert(
            key,
            StockLevel {
                shop: SHOP,
                sku: key.sku,
                warehouse: key.warehouse,
                on_hand,
                reserved: 0,
                updated_at: START,
            },
        );
    }
    ws.codes.insert(SKUS[3].id, gift_codes().collect());
    ws
}

/// Time-ordered ids from a counter, far from the fixture's ids.
struct Counter(u128);

impl IdSource for Counter {
    fn next_id(&mut self) -> u128 {
        self.0 += 1;
        self.0
    }
}

// ---------------------------------------------------------------------------
// Operations (what proptest generates)
// ---------------------------------------------------------------------------

/// Which order a command targets.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// Among the orders in a state where the command makes sense (index modulo their
    /// number; any order when there is none).
    Apt(usize),
    /// Among all orders placed so far.
    Any(usize),
    /// An order that does not exist.
    Missing,
}

#[derive(Debug, Clone)]
struct PlaceOp {
    /// (SKU index, quantity); index 4 is an unknown SKU.
    lines: Vec<(usize, i64)>,
    shipping_minor: i64,
    address: bool,
    external_id: Option<u8>,
    idempotency_key: Option<u8>,
}

#[derive(Debug, Clone, Copy)]
enum PayKind {
    Exact,
    Under(i64),
    Over(i64),
    WrongCurrency,
    Failed,
    Zero,
    Negative,
    EmptyTransactionId,
}

#[derive(Debug, Clone, Copy)]
enum TxPick {
    Fresh,
    /// Reuses an earlier transaction id (index modulo those used so far).
    Reuse(usize),
}

#[derive(Debug, Clone, Copy)]
enum RefundAmount {
    /// This percentage of what is still refundable (rounded down, may be 0).
    Percent(i64),
    All,
    TooMuch(i64),
    Zero,
    Negative,
}

#[derive(Debug, Clone)]
enum Op {
    Place(PlaceOp),
    Pay {
        order: Pick,
        kind: PayKind,
        tx: TxPick,
    },
    Cancel {
        order: Pick,
        reason: CancelReason,
        foreign_shop: bool,
    },
    /// The payment-timeout timer; `advance` first moves the clock to the order's
    /// deadline plus this many milliseconds (never backwards).
    Expire {
        order: Pick,
        advance: Option<i64>,
    },
    Hold {
        order: Pick,
        blank_reason: bool,
    },
    Approve {
        order: Pick,
    },
    Resolve {
        order: Pick,
        accept: bool,
    },
    Ship {
        order: Pick,
        blank_carrier: bool,
    },
    Deliver {
        order: Pick,
    },
    Complete {
        order: Pick,
    },
    Refund {
        order: Pick,
        amount: RefundAmount,
        blank_reason: bool,
    },
    /// SKU index 3 is virtual, 4 unknown; warehouse index 2 is unknown.
    Adjust {
        sku: usize,
        warehouse: usize,
        change: StockChange,
    },
    Tick {
        secs: i64,
    },
    /// New lines for an order (A8); `stale` edits an older version than the order's.
    Edit {
        order: Pick,
        lines: Vec<(usize, i64)>,
        stale: bool,
    },
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        16 => (0usize..1_000).prop_map(Pick::Apt),
        4 => (0usize..1_000).prop_map(Pick::Any),
        1 => Just(Pick::Missing),
    ]
}

fn quantity() -> impl Strategy<Value = i64> {
    prop_oneof![
        40 => 1i64..=4,
        6 => 5i64..=40,
        1 => Just(0i64),
        1 => Just(-3i64),
        1 => Just(LINE_QUANTITY_MAX),
        1 => Just(LINE_QUANTITY_MAX + 1),
    ]
}

fn place_op() -> impl Strategy<Value = PlaceOp> {
    let line = (prop_oneof![25 => 0usize..4, 1 => Just(4usize)], quantity());
    (
        prop_oneof![1 => Just(Vec::new()), 25 => prop::collection::vec(line, 1..=3)],
        prop_oneof![20 => 0i64..=1_000, 1 => Just(-1i64), 1 => Just(AMOUNT_MINOR_MAX + 1)],
        prop::bool::weighted(0.9),
        prop::option::weighted(0.2, 0u8..4),
        prop::option::weighted(0.15, 0u8..3),
    )
        .prop_map(
            |(lines, shipping_minor, address, external_id, idempotency_key)| PlaceOp {
                lines,
                shipping_minor,
                address,
                external_id,
                idempotency_key,
            },
        )
}

fn pay_kind() -> impl Strategy<Value = PayKind> {
    prop_oneof![
        12 => Just(PayKind::Exact),
        2 => (1i64..=500).prop_map(PayKind::Under),
        2 => prop_oneof![1i64..=500, Just(AMOUNT_MINOR_MAX / 2)].prop_map(PayKind::Over),
        2 => Just(PayKind::WrongCurrency),
        3 => Just(PayKind::Failed),
        1 => Just(PayKind::Zero),
        1 => Just(PayKind::Negative),
        1 => Just(PayKind::EmptyTransactionId),
    ]
}

fn tx_pick() -> impl Strategy<Value = TxPick> {
    prop_oneof![4 => Just(TxPick::Fresh), 1 => (0usize..100).prop_map(TxPick::Reuse)]
}

fn refund_amount() -> impl Strategy<Value = RefundAmount> {
    prop_oneof![
        3 => (1i64..=100).prop_map(RefundAmount::Percent),
        3 => Just(RefundAmount::All),
        2 => (1i64..=1_000).prop_map(RefundAmount::TooMuch),
        1 => Just(RefundAmount::Zero),
        1 => Just(RefundAmount::Negative),
    ]
}

fn stock_change() -> impl Strategy<Value = StockChange> {
    prop_oneof![
        6 => (-20i64..=30).prop_map(StockChange::Delta),
        4 => (-3i64..=40).prop_map(StockChange::SetOnHand),
        1 => Just(StockChange::Delta(0)),
        1 => Just(StockChange::Delta(STOCK_UNITS_MAX)),
        1 => Just(StockChange::Delta(-STOCK_UNITS_MAX)),
        1 => Just(StockChange::SetOnHand(STOCK_UNITS_MAX + 1)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let blank = || prop::bool::weighted(0.08);
    prop_oneof![
        14 => place_op().prop_map(Op::Place),
        8 => (pick(), pay_kind(), tx_pick()).prop_map(|(order, kind, tx)| Op::Pay { order, kind, tx }),
        3 => (pick(), prop::sample::select(CancelReason::ALL.to_vec()), prop::bool::weighted(0.05))
            .prop_map(|(order, reason, foreign_shop)| Op::Cancel { order, reason, foreign_shop }),
        3 => (
            pick(),
            prop::option::weighted(0.6, prop_oneof![Just(-1i64), Just(0i64), Just(1i64), 1i64..=600_000]),
        )
            .prop_map(|(order, advance)| Op::Expire { order, advance }),
        2 => (pick(), blank()).prop_map(|(order, blank_reason)| Op::Hold { order, blank_reason }),
        2 => pick().prop_map(|order| Op::Approve { order }),
        2 => (pick(), any::<bool>()).prop_map(|(order, accept)| Op::Resolve { order, accept }),
        4 => (pick(), blank()).prop_map(|(order, blank_carrier)| Op::Ship { order, blank_carrier }),
        2 => pick().prop_map(|order| Op::Deliver { order }),
        1 => pick().prop_map(|order| Op::Complete { order }),
        3 => (pick(), refund_amount(), blank())
            .prop_map(|(order, amount, blank_reason)| Op::Refund { order, amount, blank_reason }),
        3 => (
            prop_oneof![12 => 0usize..3, 1 => Just(3usize), 1 => Just(4usize)],
            prop_oneof![12 => 0usize..2, 1 => Just(2usize)],
            stock_change(),
        )
            .prop_map(|(sku, warehouse, change)| Op::Adjust { sku, warehouse, change }),
        2 => prop_oneof![3 => 1i64..=600, 1 => 1_800i64..=4_000].prop_map(|secs| Op::Tick { secs }),
        3 => (pick(), prop::collection::vec((0usize..4, 1i64..=5), 1..=3), prop::bool::weighted(0.1))
            .prop_map(|(order, lines, stale)| Op::Edit { order, lines, stale }),
    ]
}

// ---------------------------------------------------------------------------
// Snapshots and expectations
// ---------------------------------------------------------------------------

/// Everything a command may change, in a comparable, deterministic form.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    stock: BTreeMap<StockKey, StockLevel>,
    orders: BTreeMap<OrderId, Order>,
    payments: BTreeMap<PaymentId, Payment>,
    notices: BTreeSet<NoticeKey>,
    idempotency: BTreeMap<IdempotencyKey, IdempotencyRecord>,
    external_refs: BTreeMap<ExternalRef, OrderId>,
}

impl Snapshot {
    fn of(ws: &WorkingSet) -> Self {
        Snapshot {
            stock: ws.stock.iter().map(|(k, v)| (*k, v.clone())).collect(),
            orders: ws.orders.iter().map(|(k, v)| (*k, v.clone())).collect(),
            payments: ws.payments.values().flatten().map(|p| (p.id, p.clone())).collect(),
            notices: ws.notices.iter().cloned().collect(),
            idempotency: ws.idempotency.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            external_refs: ws.external_refs.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    fn on_hand(&self, key: &StockKey) -> i64 {
        self.stock.get(key).map_or(0, |l| l.on_hand)
    }
}

/// What the model says a command must do.
#[derive(Debug, Clone)]
enum Expect {
    /// Fails with this error code and changes nothing.
    Err(&'static str),
    /// Places a new order with this total and these physical units per SKU, from
    /// one warehouse when `one_warehouse` (some warehouse can serve every SKU).
    Placed {
        total_minor: i64,
        demand: BTreeMap<ProductId, i64>,
        one_warehouse: bool,
    },
    /// Returns an existing order (idempotent retry, duplicate channel order).
    Replay(OrderId),
    /// Moves the order to `to`.
    Moved {
        order: OrderId,
        to: OrderStatus,
    },
    /// Resolves a payment exception, moving the order to `to` and clearing its flag.
    Resolved {
        order: OrderId,
        to: OrderStatus,
    },
    /// A timer with nothing to do.
    Skipped,
    Payment {
        order: OrderId,
        result: PaymentResult,
        to: OrderStatus,
        paid_delta: i64,
    },
    Refunded {
        order: OrderId,
        amount: i64,
    },
    Stock {
        key: StockKey,
        on_hand: i64,
    },
    /// An edit of this order: it succeeds (a new version, same status) or fails
    /// (stock, address) changing nothing; the invariants check the money and stock.
    Edited(OrderId),
}

impl Expect {
    /// The only existing order the command may change.
    fn target(&self) -> Option<OrderId> {
        match self {
            Expect::Moved { order, .. }
            | Expect::Resolved { order, .. }
            | Expect::Payment { order, .. }
            | Expect::Refunded { order, .. } => Some(*order),
            Expect::Edited(order) => Some(*order),
            _ => None,
        }
    }
}

fn is_empty(c: &Changes) -> bool {
    c.new_orders.is_empty()
        && c.updated_orders.is_empty()
        && c.stock.is_empty()
        && c.ledger.is_empty()
        && c.new_payments.is_empty()
        && c.updated_payments.is_empty()
        && c.refunds.is_empty()
        && c.notices.is_empty()
        && c.idempotency.is_empty()
        && c.events.is_empty()
}

/// Legal (from, to) moves of at most two state-machine steps, plus staying put.
/// Two steps because a capture goes pending_payment → paid → fulfilling (or on_hold)
/// within one command, and so does accepting a payment exception.
fn legal_moves() -> HashSet<(OrderStatus, OrderStatus)> {
    let mut one = HashSet::new();
    for from in OrderStatus::ALL {
        for event in OrderEvent::all() {
            if let Ok(to) = transition(from, event) {
                one.insert((from, to));
            }
        }
    }
    let mut legal: HashSet<_> = OrderStatus::ALL.iter().map(|&s| (s, s)).collect();
    legal.extend(one.iter().copied());
    for &(a, b) in &one {
        for &(b2, c) in &one {
            if b == b2 {
                legal.insert((a, c));
            }
        }
    }
    legal
}

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

struct Harness {
    ws: WorkingSet,
    ids: Counter,
    now: Timestamp,
    review_above_minor: Option<i64>,
    initial_on_hand: HashMap<StockKey, i64>,
    /// Every ledger entry and refund drained from the working set so far.
    ledger: Vec<LedgerEntry>,
    refunds: Vec<Refund>,
    /// Order ids in creation order, and each order's status after the last step.
    order_ids: Vec<OrderId>,
    statuses: HashMap<OrderId, OrderStatus>,
    transaction_ids: Vec<String>,
    next_tx: u64,
    legal: HashSet<(OrderStatus, OrderStatus)>,
    steps: usize,
}

impl Harness {
    fn new(stock: &[(usize, usize, i64)], review_above_minor: Option<i64>) -> Self {
        let ws = fixture(stock, review_above_minor);
        let initial_on_hand = ws.stock.iter().map(|(k, l)| (*k, l.on_hand)).collect();
        let h = Harness {
            ws,
            ids: Counter(1_000_000),
            now: START,
            review_above_minor,
            initial_on_hand,
            ledger: Vec::new(),
            refunds: Vec::new(),
            order_ids: Vec::new(),
            statuses: HashMap::new(),
            transaction_ids: Vec::new(),
            next_tx: 0,
            legal: legal_moves(),
            steps: 0,
        };
        h.check_invariants();
        h
    }

    /// The order a pick names; `apt` says which orders suit the command.
    fn order_id(&self, pick: Pick, apt: impl Fn(&Order) -> bool) -> OrderId {
        let suitable: Vec<OrderId> = self
            .order_ids
            .iter()
            .copied()
            .filter(|id| apt(&self.ws.orders[id]))
            .collect();
        match pick {
            Pick::Missing => MISSING_ORDER,
            _ if self.order_ids.is_empty() => MISSING_ORDER,
            Pick::Apt(i) if !suitable.is_empty() => suitable[i % suitable.len()],
            Pick::Apt(i) | Pick::Any(i) => self.order_ids[i % self.order_ids.len()],
        }
    }

    fn order(&self, shop: ShopId, id: OrderId) -> Option<&Order> {
        self.ws.orders.get(&id).filter(|o| o.shop == shop)
    }

    /// Where a paid (or accepted) order ends up after the shop's automatic review.
    fn reviewed(&self, order: &Order) -> OrderStatus {
        let owed: i64 = order.lines.iter().map(|l| l.codes_owed()).sum();
        if owed > 0 {
            let available = self.ws.codes.get(&SKUS[3].id).map_or(0, |pool| pool.len() as i64);
            if available < owed {
                return OrderStatus::OnHold;
            }
            if order.lines.iter().all(|l| l.digital) {
                return OrderStatus::Delivered;
            }
        }
        match self.review_above_minor {
            Some(limit) if order.pricing.total_minor > limit => OrderStatus::OnHold,
            _ => OrderStatus::Fulfilling,
        }
    }

    /// Applies a command without per-step checks; drains and keeps its changes.
    fn apply(&mut self, cmd: &Command) -> (Result<Outcome, CommandError>, Changes) {
        let result = {
            let mut ctx = Context {
                now: self.now,
                ids: &mut self.ids,
            };
            batch::apply(&mut self.ws, cmd, &mut ctx)
        };
        let changes = self.ws.take_changes();
        self.ledger.extend(changes.ledger.iter().cloned());
        self.refunds.extend(changes.refunds.iter().cloned());
        if let Ok(Outcome::Order { order, replayed: false }) = &result
            && !self.order_ids.contains(&order.id)
        {
            self.order_ids.push(order.id);
        }
        (result, changes)
    }

    /// Runs one operation and checks the model and every invariant.
    fn step(&mut self, op: &Op) {
        self.steps += 1;
        self.now = self.now.plus_secs(1);
        let Some((cmd, expect)) = self.plan(op) else {
            self.check_invariants();
            return;
        };
        let before = Snapshot::of(&self.ws);
        let (result, changes) = self.apply(&cmd);
        let after = Snapshot::of(&self.ws);
        let ctx = format!(
            "step {} {op:?}\ncommand: {cmd:?}\nexpected: {expect:?}\ngot: {result:?}",
            self.steps
        );
        self.check_result(&ctx, &expect, &before, &after, &result, &changes);
        if result.is_ok() {
            check_changes_complete(&ctx, &before, &after, &changes);
        }
        self.check_invariants();
    }

    // --- the model: build each command and predict its result -----------------

    fn plan(&mut self, op: &Op) -> Option<(Command, Expect)> {
        let planned = match op {
            Op::Tick { secs } => {
                self.now = self.now.plus_secs(*secs);
                return None;
            }
            Op::Place(p) => self.plan_place(p),
            Op::Pay { order, kind, tx } => {
                self.plan_pay(self.order_id(*order, status_in(&[S::PendingPayment])), *kind, *tx)
            }
            Op::Cancel {
                order,
                reason,
                foreign_shop,
            } => {
                let shop = if *foreign_shop { OTHER_SHOP } else { SHOP };
                self.plan_step(
                    shop,
                    self.order_id(
                        *order,
                        status_in(&[S::PendingPayment, S::PaymentException, S::OnHold, S::Fulfilling]),
                    ),
                    Step::Cancel(*reason),
                )
            }
            Op::Expire { order, advance } => {
                let id = self.order_id(*order, status_in(&[S::PendingPayment]));
                if let (Some(ms), Some(due)) = (advance, self.ws.orders.get(&id).and_then(|o| o.payment_due_at)) {
                    self.now = self.now.max(due.plus_millis(*ms));
                }
                let expect = match self.order(SHOP, id) {
                    Some(o) if o.status == OrderStatus::PendingPayment => {
                        let due = o.payment_due_at.expect("an unpaid order has a deadline");
                        if due <= self.now {
                            Expect::Moved {
                                order: id,
                                to: OrderStatus::Cancelled,
                            }
                        } else {
                            Expect::Skipped
                        }
                    }
                    _ => Expect::Skipped,
                };
                (Command::ExpireUnpaid { shop: SHOP, order: id }, expect)
            }
            Op::Hold { order, blank_reason } => {
                let reason = if *blank_reason { " " } else { "address check" };
                self.plan_step(
                    SHOP,
                    self.order_id(*order, status_in(&[S::Fulfilling])),
                    Step::Hold { reason: reason.into() },
                )
            }
            Op::Approve { order } => self.plan_step(
                SHOP,
                self.order_id(*order, status_in(&[S::OnHold])),
                Step::Approve { note: None },
            ),
            Op::Ship { order, blank_carrier } => {
                let carrier = if *blank_carrier { "" } else { "SF Express" };
                let id = self.order_id(*order, status_in(&[S::Fulfilling]));
                let (cmd, expect) = self.plan_step(
                    SHOP,
                    id,
                    Step::Ship {
                        carrier: carrier.into(),
                        tracking_number: "SF1234567890".into(),
                        parcel: None,
                    },
                );
                // Money an edit asked for holds a fulfilling order back.
                let owes = self
                    .ws
                    .payments
                    .get(&id)
                    .is_some_and(|ps| ps.iter().any(|p| p.status == PaymentStatus::Pending));
                let moving = matches!(expect, Expect::Moved { .. });
                if owes && moving {
                    (cmd, Expect::Err("payment-due"))
                } else {
                    (cmd, expect)
                }
            }
            Op::Deliver { order } => self.plan_step(
                SHOP,
                self.order_id(*order, status_in(&[S::Shipped])),
                Step::ConfirmDelivery,
            ),
            Op::Complete { order } => {
                self.plan_step(SHOP, self.order_id(*order, status_in(&[S::Delivered])), Step::Complete)
            }
            Op::Resolve { order, accept } => {
                let id = self.order_id(*order, |o: &Order| {
                    o.status == S::PaymentException || o.payment_exception.is_some()
                });
                let expect = match self.order(SHOP, id) {
                    None => Expect::Err("order-not-found"),
                    // Only flagged (a payment that did not match after the order moved on):
                    // accepting clears the flag, rejecting refunds and cancels where legal.
                    Some(o) if o.status != OrderStatus::PaymentException => match (&o.payment_exception, accept) {
                        (None, _) => Expect::Err("no-payment-exception"),
                        (Some(_), true) => Expect::Resolved {
                            order: id,
                            to: o.status,
                        },
                        (Some(_), false) => match transition(o.status, OrderEvent::Cancel(CancelReason::Seller)) {
                            Ok(to) => Expect::Resolved { order: id, to },
                            Err(_) => Expect::Err("illegal-transition"),
                        },
                    },
                    Some(o) => Expect::Resolved {
                        order: id,
                        to: if *accept {
                            self.reviewed(o)
                        } else {
                            OrderStatus::Cancelled
                        },
                    },
                };
                let cmd = Command::ResolvePaymentException {
                    by: by(),
                    order: id,
                    accept: *accept,
                };
                (cmd, expect)
            }
            Op::Refund {
                order,
                amount,
                blank_reason,
            } => self.plan_refund(
                self.order_id(*order, |o: &Order| o.paid_minor > o.refunded_minor),
                *amount,
                *blank_reason,
            ),
            Op::Adjust { sku, warehouse, change } => self.plan_adjust(*sku, *warehouse, *change),
            Op::Edit { order, lines, stale } => self.plan_edit(
                self.order_id(
                    *order,
                    status_in(&[S::PendingPayment, S::PaymentException, S::OnHold, S::Fulfilling]),
                ),
                lines,
                *stale,
            ),
        };
        Some(planned)
    }

    fn plan_place(&self, p: &PlaceOp) -> (Command, Expect) {
        let cmd = PlaceOrder {
            by: by(),
            channel: "web".into(),
            external_id: p.external_id.map(|e| format!("ext-{e}")),
            buyer: Buyer {
                id: "buyer-1".into(),
                name: Some("Han Meimei".into()),
                phone: None,
                email: None,
            },
            shipping_address: p.address.then(address),
            lines: p
                .lines
                .iter()
                .map(|&(sku, quantity)| LineRequest {
                    sku: sku_code(sku).into(),
                    quantity,
                })
                .collect(),
            shipping_minor: p.shipping_minor,
            note: None,
            payment_method: None,
            coupon_codes: vec![],
            channel_terms: None,
            idempotency: p.idempotency_key.map(|k| IdempotencyClaim {
                scope: "key_test".into(),
                key: format!("idem-{k}"),
                request_hash: format!("{:?}/{}/{}", p.lines, p.shipping_minor, p.address),
            }),
        };
        let expect = self.predict_place(&cmd);
        (Command::PlaceOrder(Box::new(cmd)), expect)
    }

    fn predict_place(&self, c: &PlaceOrder) -> Expect {
        let ws = &self.ws;
        if let Some(claim) = &c.idempotency
            && let Some(rec) = ws.idempotency.get(&(claim.scope.clone(), claim.key.clone()))
        {
            if rec.request_hash != claim.request_hash {
                return Expect::Err("idempotency-key-reused");
            }
            return Expect::Replay(rec.resource.parse().expect("an order id was remembered"));
        }
        if let Some(ext) = &c.external_id
            && let Some(id) = ws.external_refs.get(&(SHOP, c.channel.clone(), ext.clone()))
        {
            return Expect::Replay(*id);
        }
        if c.lines.is_empty() {
            return Expect::Err("line-count");
        }
        if !(0..=AMOUNT_MINOR_MAX).contains(&c.shipping_minor) {
            return Expect::Err("money-out-of-range");
        }
        let mut total_minor = c.shipping_minor;
        let mut demand = BTreeMap::new();
        for l in &c.lines {
            if !(1..=LINE_QUANTITY_MAX).contains(&l.quantity) {
                return Expect::Err("quantity-out-of-range");
            }
            let Some(sku) = sku_by_code(&l.sku) else {
                return Expect::Err("unknown-sku");
            };
            total_minor += sku.price_minor * l.quantity;
            if sku.kind == ProductKind::Physical {
                *demand.entry(sku.id).or_insert(0) += l.quantity;
            }
        }
        if !demand.is_empty() && c.shipping_address.is_none() {
            return Expect::Err("address-required");
        }
        // Each SKU must fit in one active warehouse (a SKU's units are never split).
        let active: Vec<WarehouseId> = ws.warehouses[&SHOP].iter().filter(|w| w.active).map(|w| w.id).collect();
        let available = |sku, warehouse| {
            ws.stock
                .get(&StockKey { sku, warehouse })
                .map_or(0, StockLevel::available)
        };
        for (&sku, &qty) in &demand {
            let best = active.iter().map(|&w| available(sku, w)).max().unwrap_or(0);
            if qty > best {
                return Expect::Err("insufficient-stock");
            }
        }
        let one_warehouse = active
            .iter()
            .any(|&w| demand.iter().all(|(&sku, &qty)| available(sku, w) >= qty));
        Expect::Placed {
            total_minor,
            demand,
            one_warehouse,
        }
    }

    fn plan_pay(&mut self, id: OrderId, kind: PayKind, tx: TxPick) -> (Command, Expect) {
        let order = self.order(SHOP, id).cloned();
        // A further payment an edit asked for, on an order past payment.
        let due = order
            .as_ref()
            .filter(|o| !matches!(o.status, OrderStatus::PendingPayment | OrderStatus::Cancelled))
            .and_then(|o| self.ws.payments.get(&o.id))
            .and_then(|ps| ps.iter().find(|p| p.status == PaymentStatus::Pending))
            .map(|p| p.expected_minor);
        let total = due.unwrap_or_else(|| order.as_ref().map_or(1_000, |o| o.pricing.total_minor));
        let (succeeded, amount_minor, currency) = match kind {
            PayKind::Exact | PayKind::EmptyTransactionId => (true, total, CNY),
            PayKind::Under(d) => (true, (total - d).max(0), CNY),
            PayKind::Over(d) => (true, total + d, CNY),
            PayKind::WrongCurrency => (true, total, Currency::USD),
            PayKind::Failed => (false, total, CNY),
            PayKind::Zero => (true, 0, CNY),
            PayKind::Negative => (true, -1, CNY),
        };
        let transaction_id = match (kind, tx) {
            (PayKind::EmptyTransactionId, _) => String::new(),
            (_, TxPick::Reuse(i)) if !self.transaction_ids.is_empty() => {
                self.transaction_ids[i % self.transaction_ids.len()].clone()
            }
            _ => {
                self.next_tx += 1;
                let t = format!("tx-{:05}", self.next_tx);
                self.transaction_ids.push(t.clone());
                t
            }
        };
        let notice = PaymentNotice {
            shop: SHOP,
            gateway: GATEWAY.into(),
            order: id,
            transaction_id,
            succeeded,
            amount_minor,
            currency,
        };
        let expect = match order {
            None => Expect::Err("order-not-found"),
            Some(o) => {
                let seen = self
                    .ws
                    .notices
                    .contains(&(SHOP, GATEWAY.to_string(), notice.transaction_id.clone()));
                let counted = if currency == CNY { amount_minor } else { 0 };
                let payment = |result, to, paid_delta| Expect::Payment {
                    order: id,
                    result,
                    to,
                    paid_delta,
                };
                if seen {
                    payment(PaymentResult::AlreadyProcessed, o.status, 0)
                } else if amount_minor < 0 || notice.transaction_id.is_empty() {
                    Expect::Err("empty-field")
                } else if !succeeded {
                    payment(PaymentResult::Failed, o.status, 0)
                } else if o.status == OrderStatus::PendingPayment || due.is_some() {
                    let check = if currency != CNY {
                        AmountCheck::WrongCurrency
                    } else if amount_minor < total {
                        AmountCheck::Under
                    } else if amount_minor > total {
                        AmountCheck::Over
                    } else {
                        AmountCheck::Exact
                    };
                    if due.is_some() {
                        let result = if check == AmountCheck::Exact {
                            PaymentResult::Captured
                        } else {
                            PaymentResult::Mismatch(check)
                        };
                        payment(result, o.status, counted)
                    } else if check == AmountCheck::Exact {
                        payment(PaymentResult::Captured, self.reviewed(&o), counted)
                    } else {
                        payment(PaymentResult::Mismatch(check), OrderStatus::PaymentException, counted)
                    }
                } else {
                    payment(PaymentResult::Unexpected, o.status, counted)
                }
            }
        };
        (Command::PaymentNotice(notice), expect)
    }

    fn plan_step(&self, shop: ShopId, id: OrderId, step: Step) -> (Command, Expect) {
        let event = match &step {
            Step::Cancel(r) => OrderEvent::Cancel(*r),
            Step::Hold { .. } => OrderEvent::Hold,
            Step::Approve { .. } => OrderEvent::Approve,
            Step::Reject { .. } => OrderEvent::Cancel(CancelReason::Seller),
            Step::Ship { .. } => OrderEvent::Ship,
            Step::ConfirmDelivery => OrderEvent::ConfirmDelivery,
            Step::Complete => OrderEvent::Complete,
            // Not generated: the model has no virtual goods.
            Step::DeliverCodes => OrderEvent::CodesDelivered,
        };
        let blank = match &step {
            Step::Hold { reason } => reason.trim().is_empty(),
            Step::Ship {
                carrier,
                tracking_number,
                ..
            } => carrier.trim().is_empty() || tracking_number.trim().is_empty(),
            _ => false,
        };
        let expect = match self.order(shop, id) {
            None => Expect::Err("order-not-found"),
            Some(_) if blank => Expect::Err("empty-field"),
            Some(o) => match transition(o.status, event) {
                Ok(to) => Expect::Moved { order: id, to },
                Err(_) => Expect::Err("illegal-transition"),
            },
        };
        let cmd = Command::Transition {
            by: By { shop, ..by() },
            order: id,
            step,
        };
        (cmd, expect)
    }

    fn plan_refund(&self, id: OrderId, amount: RefundAmount, blank_reason: bool) -> (Command, Expect) {
        let order = self.order(SHOP, id);
        let refundable = order.map_or(0, |o| o.paid_minor - o.refunded_minor);
        let amount_minor = match amount {
            RefundAmount::Percent(p) => refundable * p / 100,
            RefundAmount::All => refundable,
            RefundAmount::TooMuch(d) => refundable + d,
            RefundAmount::Zero => 0,
            RefundAmount::Negative => -100,
        };
        let expect = match order {
            None => Expect::Err("order-not-found"),
            Some(_) if blank_reason => Expect::Err("empty-field"),
            Some(_) if amount_minor <= 0 || amount_minor > refundable => Expect::Err("refund-exceeds-captured"),
            Some(_) => Expect::Refunded {
                order: id,
                amount: amount_minor,
            },
        };
        let cmd = Command::Refund(RefundRequest {
            by: by(),
            order: id,
            amount_minor,
            lines: Vec::new(),
            reason: if blank_reason { "  " } else { "damaged in transit" }.into(),
            idempotency: None,
        });
        (cmd, expect)
    }

    fn plan_adjust(&self, sku: usize, warehouse: usize, change: StockChange) -> (Command, Expect) {
        let expect = match SKUS.get(sku) {
            None => Expect::Err("unknown-sku"),
            Some(s) if s.kind == ProductKind::Virtual => Expect::Err("virtual-sku-has-no-stock"),
            Some(_) if warehouse >= WAREHOUSES.len() => Expect::Err("warehouse-not-found"),
            Some(_) => {
                let key = stock_key(sku, warehouse);
                let (on_hand, reserved) = self.ws.stock.get(&key).map_or((0, 0), |l| (l.on_hand, l.reserved));
                // Numbers beyond i64 are out of range like any other too-large count.
                let would_be = match change {
                    StockChange::Delta(d) => on_hand.checked_add(d),
                    StockChange::SetOnHand(n) => Some(n),
                };
                match would_be {
                    Some(n) if n == on_hand => Expect::Stock { key, on_hand },
                    Some(n) if (reserved..=STOCK_UNITS_MAX).contains(&n) => Expect::Stock { key, on_hand: n },
                    _ => Expect::Err("stock-rule"),
                }
            }
        };
        let cmd = Command::AdjustStock(AdjustStock {
            by: by(),
            sku: sku_code(sku).into(),
            warehouse: warehouse_id(warehouse),
            change,
            note: Some("stocktake".into()),
        });
        (cmd, expect)
    }

    fn plan_edit(&self, id: OrderId, lines: &[(usize, i64)], stale: bool) -> (Command, Expect) {
        let order = self.ws.orders.get(&id);
        let version = order.map_or(1, |o| o.version);
        let cmd = Command::EditOrder(Box::new(EditOrder {
            by: by(),
            order: id,
            expected_version: if stale { version - 1 } else { version },
            lines: Some(
                lines
                    .iter()
                    .map(|&(sku, quantity)| LineRequest {
                        sku: sku_code(sku).into(),
                        quantity,
                    })
                    .collect(),
            ),
            shipping_address: None,
            reason: Some("buyer asked".into()),
        }));
        let expect = match order {
            None => Expect::Err("order-not-found"),
            Some(_) if stale => Expect::Err("version-conflict"),
            Some(_) => Expect::Edited(id),
        };
        (cmd, expect)
    }

    // --- checking one command's result ---------------------------------------

    fn check_result(
        &self,
        ctx: &str,
        expect: &Expect,
        before: &Snapshot,
        after: &Snapshot,
        result: &Result<Outcome, CommandError>,
        changes: &Changes,
    ) {
        if let (Err(_), Expect::Edited(_)) = (result, expect) {
            assert!(before == after, "a failing edit changed the working set\n{ctx}");
            assert!(is_empty(changes), "a failing edit recorded changes: {changes:?}\n{ctx}");
            return;
        }
        if let Err(err) = result {
            let Expect::Err(code) = expect else {
                panic!("unexpected error\n{ctx}");
            };
            assert_eq!(err.code(), *code, "wrong error\n{ctx}");
            assert!(before == after, "a failing command changed the working set\n{ctx}");
            assert!(
                is_empty(changes),
                "a failing command recorded changes: {changes:?}\n{ctx}"
            );
            return;
        }
        let outcome = result.as_ref().expect("checked above");
        // Orders other than the target never change (placing only adds one).
        let target = expect.target();
        for (id, was) in &before.orders {
            if Some(*id) != target {
                assert_eq!(after.orders.get(id), Some(was), "an untouched order changed\n{ctx}");
            }
        }
        if !matches!(expect, Expect::Placed { .. }) {
            assert_eq!(after.orders.len(), before.orders.len(), "orders appeared\n{ctx}");
        }
        // Every change is stamped with the command's time; orders bump their version (A8).
        for (id, o) in &after.orders {
            if let Some(was) = before.orders.get(id).filter(|was| *was != o) {
                assert!(o.version > was.version, "order changed without a version bump\n{ctx}");
                assert_eq!(o.updated_at, self.now, "{ctx}");
            }
        }
        for (k, l) in &after.stock {
            if before.stock.get(k) != Some(l) {
                assert_eq!(l.updated_at, self.now, "{ctx}");
            }
        }
        match expect {
            Expect::Err(_) => panic!("expected an error\n{ctx}"),
            Expect::Placed {
                total_minor,
                demand,
                one_warehouse,
            } => {
                let Outcome::Order { order, replayed: false } = outcome else {
                    panic!("expected a new order\n{ctx}");
                };
                assert!(!before.orders.contains_key(&order.id), "order id reused\n{ctx}");
                assert_eq!(after.orders.len(), before.orders.len() + 1, "{ctx}");
                assert_eq!(after.orders.get(&order.id), Some(&**order), "{ctx}");
                assert_eq!(order.status, OrderStatus::PendingPayment, "{ctx}");
                assert_eq!(order.pricing.total_minor, *total_minor, "{ctx}");
                assert_eq!(
                    order.pricing.total_minor,
                    order.pricing.items_minor + order.pricing.shipping_minor - order.pricing.discount_minor,
                    "{ctx}"
                );
                let timeout = self.ws.shops[&SHOP].payment_timeout_secs;
                assert_eq!(order.payment_due_at, Some(self.now.plus_secs(timeout)), "{ctx}");
                let mut allocated: BTreeMap<ProductId, i64> = BTreeMap::new();
                for l in &order.lines {
                    assert_eq!(l.total_minor, l.unit_price_minor * l.quantity, "{ctx}");
                    if let Some(w) = l.warehouse {
                        let active = self.ws.warehouses[&SHOP].iter().any(|x| x.id == w && x.active);
                        assert!(active, "allocated to an unknown or inactive warehouse\n{ctx}");
                        *allocated.entry(l.sku_id).or_insert(0) += l.quantity;
                    }
                }
                assert_eq!(&allocated, demand, "allocated units differ from the demand\n{ctx}");
                let used: BTreeSet<_> = order.lines.iter().filter_map(|l| l.warehouse).collect();
                if *one_warehouse {
                    assert!(
                        used.len() <= 1,
                        "split although one warehouse could serve it all\n{ctx}"
                    );
                }
                let pays: Vec<_> = after.payments.values().filter(|p| p.order == order.id).collect();
                assert_eq!(pays.len(), 1, "{ctx}");
                assert_eq!(pays[0].status, PaymentStatus::Pending, "{ctx}");
                assert_eq!(pays[0].expected_minor, *total_minor, "{ctx}");
                assert_eq!(before.payments.len() + 1, after.payments.len(), "{ctx}");
            }
            Expect::Replay(id) => {
                let Outcome::Order { order, replayed: true } = outcome else {
                    panic!("expected a replay\n{ctx}");
                };
                assert_eq!(order.id, *id, "{ctx}");
                assert!(before == after, "a replay changed the working set\n{ctx}");
                assert!(is_empty(changes), "a replay recorded changes\n{ctx}");
            }
            Expect::Skipped => {
                assert!(matches!(outcome, Outcome::Skipped), "{ctx}");
                assert!(before == after, "a skipped timer changed the working set\n{ctx}");
                assert!(is_empty(changes), "a skipped timer recorded changes\n{ctx}");
            }
            Expect::Moved { order: id, to } | Expect::Resolved { order: id, to } => {
                let Outcome::Order { order, replayed: false } = outcome else {
                    panic!("expected an order\n{ctx}");
                };
                assert_eq!(order.id, *id, "{ctx}");
                assert_eq!(order.status, *to, "{ctx}");
                assert_eq!(after.orders.get(id), Some(&**order), "{ctx}");
                if matches!(expect, Expect::Resolved { .. }) {
                    assert_eq!(order.payment_exception, None, "a resolved exception is cleared\n{ctx}");
                }
                let was_cancelled = before
                    .orders
                    .get(id)
                    .is_some_and(|o| o.status == OrderStatus::Cancelled);
                // (Money that arrived after a cancel waits for a person to refund it.)
                if *to == OrderStatus::Cancelled && !was_cancelled {
                    assert!(order.cancel_reason.is_some(), "{ctx}");
                    assert_eq!(
                        order.paid_minor, order.refunded_minor,
                        "cancel must refund the rest\n{ctx}"
                    );
                }
                if *to == OrderStatus::Shipped {
                    assert!(order.shipment.is_some(), "{ctx}");
                }
            }
            Expect::Payment {
                order: id,
                result: want,
                to,
                paid_delta,
            } => {
                let Outcome::Payment { order, result } = outcome else {
                    panic!("expected a payment outcome\n{ctx}");
                };
                assert_eq!((order, result), (id, want), "{ctx}");
                let (was, now) = (&before.orders[id], &after.orders[id]);
                assert_eq!(now.status, *to, "{ctx}");
                assert_eq!(now.paid_minor, was.paid_minor + paid_delta, "{ctx}");
                assert_eq!(now.refunded_minor, was.refunded_minor, "{ctx}");
                if *want == PaymentResult::AlreadyProcessed {
                    assert!(before == after, "a duplicate notice changed the working set\n{ctx}");
                    assert!(is_empty(changes), "a duplicate notice recorded changes\n{ctx}");
                } else {
                    assert_eq!(
                        after.notices.len(),
                        before.notices.len() + 1,
                        "notice not recorded\n{ctx}"
                    );
                }
                assert_eq!(before.stock, after.stock, "a payment moved stock\n{ctx}");
            }
            Expect::Refunded { order: id, amount } => {
                let Outcome::Refunds {
                    order,
                    refunds,
                    replayed: false,
                } = outcome
                else {
                    panic!("expected refunds\n{ctx}");
                };
                assert_eq!(order.id, *id, "{ctx}");
                let (was, now) = (&before.orders[id], &after.orders[id]);
                assert_eq!(now.refunded_minor, was.refunded_minor + amount, "{ctx}");
                assert_eq!(now.paid_minor, was.paid_minor, "{ctx}");
                assert_eq!(now.status, was.status, "{ctx}");
                let recorded: Vec<_> = changes.refunds.iter().map(|r| r.id).collect();
                assert_eq!(refunds, &recorded, "{ctx}");
                assert_eq!(
                    changes.refunds.iter().map(|r| r.amount_minor).sum::<i64>(),
                    *amount,
                    "{ctx}"
                );
                assert!(
                    changes.refunds.iter().all(|r| r.amount_minor > 0 && r.order == *id),
                    "{ctx}"
                );
                assert_eq!(before.stock, after.stock, "a refund moved stock\n{ctx}");
            }
            Expect::Edited(id) => {
                let Outcome::Order { order, replayed: false } = outcome else {
                    panic!("expected the edited order\n{ctx}");
                };
                assert_eq!(order.id, *id, "{ctx}");
                let (was, now) = (&before.orders[id], &after.orders[id]);
                assert_eq!(now.status, was.status, "an edit moves no status\n{ctx}");
                assert_eq!(now.revisions.len(), was.revisions.len() + 1, "{ctx}");
                assert_eq!(
                    now.revisions.last().map(|r| r.total_after),
                    Some(now.pricing.total_minor)
                );
            }
            Expect::Stock { key, on_hand } => {
                let Outcome::Stock(level) = outcome else {
                    panic!("expected a stock level\n{ctx}");
                };
                assert_eq!(level.key(), *key, "{ctx}");
                assert_eq!(level.on_hand, *on_hand, "{ctx}");
                assert_eq!(after.on_hand(key), *on_hand, "{ctx}");
                for (k, l) in &before.stock {
                    if k != key {
                        assert_eq!(after.stock.get(k), Some(l), "another stock level changed\n{ctx}");
                    }
                }
                assert_eq!(before.payments, after.payments, "{ctx}");
                if *on_hand == before.on_hand(key) {
                    assert!(
                        before == after && is_empty(changes),
                        "a no-op adjustment changed something\n{ctx}"
                    );
                }
            }
        }
        // Per step, the ledger explains every stock movement.
        let mut moved: BTreeMap<StockKey, (i64, i64)> = BTreeMap::new();
        for e in &changes.ledger {
            check_ledger_entry(ctx, e);
            let m = moved
                .entry(StockKey {
                    sku: e.sku,
                    warehouse: e.warehouse,
                })
                .or_default();
            m.0 += e.on_hand_delta;
            m.1 += e.reserved_delta;
        }
        let keys: BTreeSet<_> = before.stock.keys().chain(after.stock.keys()).copied().collect();
        for k in keys {
            let level = |s: &Snapshot| s.stock.get(&k).map_or((0, 0), |l| (l.on_hand, l.reserved));
            let ((oh0, r0), (oh1, r1)) = (level(before), level(after));
            let (doh, dr) = moved.get(&k).copied().unwrap_or_default();
            assert_eq!(
                (oh1 - oh0, r1 - r0),
                (doh, dr),
                "ledger of this step does not match {k:?}\n{ctx}"
            );
        }
    }

    // --- invariants over the whole working set --------------------------------

    fn check_invariants(&self) {
        let ws = &self.ws;
        let at = format!("after step {}", self.steps);

        // Stock levels are valid and the ledger sums to them.
        let mut ledger_sum: HashMap<StockKey, (i64, i64)> = HashMap::new();
        for e in &self.ledger {
            let s = ledger_sum
                .entry(StockKey {
                    sku: e.sku,
                    warehouse: e.warehouse,
                })
                .or_default();
            s.0 += e.on_hand_delta;
            s.1 += e.reserved_delta;
        }
        let mut held: HashMap<StockKey, i64> = HashMap::new();
        for o in ws.orders.values().filter(|o| o.status.holds_reservation()) {
            for l in &o.lines {
                if let Some(warehouse) = l.warehouse {
                    *held
                        .entry(StockKey {
                            sku: l.sku_id,
                            warehouse,
                        })
                        .or_default() += l.quantity;
                }
            }
        }
        let keys: BTreeSet<StockKey> = ws
            .stock
            .keys()
            .chain(ledger_sum.keys())
            .chain(held.keys())
            .chain(self.initial_on_hand.keys())
            .copied()
            .collect();
        for key in keys {
            let (on_hand, reserved) = match ws.stock.get(&key) {
                Some(l) => {
                    assert_eq!(l.key(), key, "{at}");
                    assert_eq!(l.shop, SHOP, "{at}");
                    assert!(l.on_hand >= 0, "negative on hand {l:?} {at}");
                    assert!(l.reserved >= 0, "negative reserved {l:?} {at}");
                    assert!(l.reserved <= l.on_hand, "reserved above on hand {l:?} {at}");
                    assert!(l.available() >= 0, "{at}");
                    assert!(l.on_hand <= STOCK_UNITS_MAX, "{at}");
                    (l.on_hand, l.reserved)
                }
                None => (0, 0),
            };
            let initial = self.initial_on_hand.get(&key).copied().unwrap_or(0);
            let (d_on_hand, d_reserved) = ledger_sum.get(&key).copied().unwrap_or_default();
            assert_eq!(initial + d_on_hand, on_hand, "ledger on hand of {key:?} {at}");
            assert_eq!(d_reserved, reserved, "ledger reserved of {key:?} {at}");
            let held = held.get(&key).copied().unwrap_or(0);
            assert_eq!(
                held, reserved,
                "reserved of {key:?} differs from the orders holding it {at}"
            );
        }

        // Codes: each is in the pool or on one order line, never both, never twice.
        let mut codes: Vec<CodeId> = ws.codes.values().flatten().copied().collect();
        for o in ws.orders.values() {
            for l in &o.lines {
                assert!(
                    l.codes.len() as i64 <= l.quantity,
                    "a line got more codes than units {at}"
                );
                assert!(l.digital || l.codes.is_empty(), "a physical line got codes {at}");
                codes.extend(&l.codes);
            }
        }
        codes.sort_unstable();
        assert_eq!(
            codes,
            gift_codes().collect::<Vec<_>>(),
            "codes lost or assigned twice {at}"
        );

        // Money.
        let mut refunded_per_payment: HashMap<PaymentId, i64> = HashMap::new();
        let mut refunded_per_order: HashMap<OrderId, i64> = HashMap::new();
        for r in &self.refunds {
            assert!(r.amount_minor > 0, "{at}");
            *refunded_per_payment.entry(r.payment).or_default() += r.amount_minor;
            // Money in another currency than the order's is refunded as it came and
            // never counts toward the order's own totals.
            if r.currency == CNY {
                *refunded_per_order.entry(r.order).or_default() += r.amount_minor;
            }
        }
        let (mut net_payments, mut net_orders) = (0i128, 0i128);
        let (mut refunds_total, mut payment_refunds_total) = (0i128, 0i128);
        for (order_id, pays) in &ws.payments {
            assert!(ws.orders.contains_key(order_id), "payments of an unknown order {at}");
            for p in pays {
                assert_eq!(p.order, *order_id, "{at}");
                assert!(p.refunded_minor >= 0, "{p:?} {at}");
                assert!(
                    p.refunded_minor <= p.captured_minor,
                    "refunded more than captured {p:?} {at}"
                );
                if p.status == PaymentStatus::Captured {
                    assert!(p.captured_currency.is_some() && p.captured_minor >= 0, "{p:?} {at}");
                    if p.captured_currency == Some(CNY) {
                        net_payments += i128::from(p.captured_minor - p.refunded_minor);
                    }
                } else {
                    assert_eq!((p.captured_minor, p.refunded_minor), (0, 0), "{p:?} {at}");
                }
                assert_eq!(
                    refunded_per_payment.get(&p.id).copied().unwrap_or(0),
                    p.refunded_minor,
                    "recorded refunds of {p:?} {at}"
                );
                payment_refunds_total += i128::from(p.refunded_minor);
            }
        }
        refunds_total += self.refunds.iter().map(|r| i128::from(r.amount_minor)).sum::<i128>();
        for o in ws.orders.values() {
            net_orders += i128::from(o.paid_minor - o.refunded_minor);
            let pays = ws.payments.get(&o.id).map(Vec::as_slice).unwrap_or_default();
            let net: i64 = pays
                .iter()
                .filter(|p| p.status == PaymentStatus::Captured && p.captured_currency == Some(CNY))
                .map(|p| p.captured_minor - p.refunded_minor)
                .sum();
            assert_eq!(net, o.paid_minor - o.refunded_minor, "money of {} {at}", o.id);
            assert!(0 <= o.refunded_minor && o.refunded_minor <= o.paid_minor, "{at}");
            assert_eq!(
                refunded_per_order.get(&o.id).copied().unwrap_or(0),
                o.refunded_minor,
                "recorded refunds of {} {at}",
                o.id
            );

            // Order shape per status.
            let pending: Vec<&Payment> = pays.iter().filter(|p| p.status == PaymentStatus::Pending).collect();
            let unpaid = o.status == OrderStatus::PendingPayment;
            if unpaid {
                assert_eq!(pending.len(), 1, "pending payments of {} {at}", o.id);
                assert_eq!(pending[0].expected_minor, o.pricing.total_minor, "{at}");
            } else if let Some(due) = pending.first() {
                // An edit raised a paid order's total: one further payment is asked for.
                assert_eq!(pending.len(), 1, "pending payments of {} {at}", o.id);
                assert!(!matches!(o.status, OrderStatus::Cancelled), "{at}");
                assert!(due.expected_minor > 0, "{at}");
            }
            assert_eq!(o.payment_due_at.is_some(), unpaid, "deadline of {} {at}", o.id);
            assert_eq!(o.status == OrderStatus::Cancelled, o.cancel_reason.is_some(), "{at}");
            let left_warehouse = matches!(
                o.status,
                OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::Completed
            );
            if o.lines.iter().all(|l| l.digital) {
                // Codes are delivered without a parcel (unless a person shipped one).
                assert!(o.shipment.is_none() || left_warehouse, "shipment of {} {at}", o.id);
            } else {
                assert_eq!(left_warehouse, o.shipment.is_some(), "shipment of {} {at}", o.id);
            }
            for l in &o.lines {
                let physical = sku_by_code(&l.sku).expect("known SKU").kind == ProductKind::Physical;
                assert_eq!(l.warehouse.is_some(), physical, "{at}");
            }
        }
        assert_eq!(net_payments, net_orders, "payments and orders disagree on money {at}");
        assert_eq!(refunds_total, payment_refunds_total, "{at}");

        // Orders never vanish and move only along the state machine.
        for (id, prev) in &self.statuses {
            let now = ws
                .orders
                .get(id)
                .unwrap_or_else(|| panic!("order {id} vanished {at}"))
                .status;
            assert!(
                self.legal.contains(&(*prev, now)),
                "illegal move {prev:?} -> {now:?} of {id} {at}"
            );
        }
        for (id, o) in &ws.orders {
            if !self.statuses.contains_key(id) {
                assert_eq!(o.status, OrderStatus::PendingPayment, "a new order starts unpaid {at}");
            }
        }
    }

    /// Remembers every order's status for the next legality check.
    fn record_statuses(&mut self) {
        self.statuses = self.ws.orders.iter().map(|(id, o)| (*id, o.status)).collect();
    }
}

/// Suits orders in one of these states.
fn status_in(states: &'static [OrderStatus]) -> impl Fn(&Order) -> bool {
    move |o| states.contains(&o.status)
}

fn check_ledger_entry(ctx: &str, e: &LedgerEntry) {
    let ok = match e.reason {
        LedgerReason::Receive => e.on_hand_delta > 0 && e.reserved_delta == 0 && e.order.is_none(),
        LedgerReason::Adjust => e.on_hand_delta < 0 && e.reserved_delta == 0 && e.order.is_none(),
        LedgerReason::Reserve => e.on_hand_delta == 0 && e.reserved_delta > 0 && e.order.is_some(),
        LedgerReason::Release => e.on_hand_delta == 0 && e.reserved_delta < 0 && e.order.is_some(),
        LedgerReason::Ship => e.on_hand_delta < 0 && e.on_hand_delta == e.reserved_delta && e.order.is_some(),
    };
    assert!(ok, "ledger entry does not fit its reason: {e:?}\n{ctx}");
}

/// Every change a successful command made is in what `take_changes` returned, so
/// the store persists all of it.
fn check_changes_complete(ctx: &str, before: &Snapshot, after: &Snapshot, c: &Changes) {
    let new_orders: BTreeMap<_, _> = c.new_orders.iter().map(|o| (o.id, o)).collect();
    let updated_orders: BTreeMap<_, _> = c.updated_orders.iter().map(|o| (o.id, o)).collect();
    let mut changed_anything = false;
    for (id, o) in &after.orders {
        match before.orders.get(id) {
            None => {
                changed_anything = true;
                assert_eq!(new_orders.get(id), Some(&o), "new order missing from changes\n{ctx}");
            }
            Some(was) if was != o => {
                changed_anything = true;
                assert_eq!(
                    updated_orders.get(id),
                    Some(&o),
                    "changed order missing from changes\n{ctx}"
                );
            }
            Some(_) => {}
        }
    }
    let stock: BTreeMap<_, _> = c.stock.iter().map(|l| (l.key(), l)).collect();
    for (key, l) in &after.stock {
        if before.stock.get(key) != Some(l) {
            changed_anything = true;
            assert_eq!(
                stock.get(key),
                Some(&l),
                "changed stock level missing from changes\n{ctx}"
            );
        }
    }
    let new_payments: BTreeMap<_, _> = c.new_payments.iter().map(|p| (p.id, p)).collect();
    let updated_payments: BTreeMap<_, _> = c.updated_payments.iter().map(|p| (p.id, p)).collect();
    for (id, p) in &after.payments {
        match before.payments.get(id) {
            None => {
                changed_anything = true;
                assert_eq!(
                    new_payments.get(id),
                    Some(&p),
                    "new payment missing from changes\n{ctx}"
                );
            }
            Some(was) if was != p => {
                changed_anything = true;
                assert_eq!(
                    updated_payments.get(id),
                    Some(&p),
                    "changed payment missing from changes\n{ctx}"
                );
            }
            Some(_) => {}
        }
    }
    assert!(
        before.payments.keys().all(|id| after.payments.contains_key(id)),
        "a payment vanished\n{ctx}"
    );
    let new_notices: BTreeSet<_> = after.notices.difference(&before.notices).cloned().collect();
    let recorded: BTreeSet<_> = c
        .notices
        .iter()
        .map(|n| (n.shop, n.gateway.clone(), n.transaction_id.clone()))
        .collect();
    assert_eq!(new_notices, recorded, "notices\n{ctx}");
    let new_claims: BTreeSet<_> = after
        .idempotency
        .keys()
        .filter(|k| !before.idempotency.contains_key(*k))
        .cloned()
        .collect();
    let recorded: BTreeSet<_> = c.idempotency.iter().map(|r| (r.scope.clone(), r.key.clone())).collect();
    assert_eq!(new_claims, recorded, "idempotency records\n{ctx}");
    if changed_anything {
        assert!(!c.events.is_empty(), "a state change emitted no event\n{ctx}");
    }
}

fn stock_spec(on_hand: &[Option<i64>]) -> Vec<(usize, usize, i64)> {
    // Six (SKU, warehouse) slots: the three physical SKUs at both warehouses.
    on_hand
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.map(|n| (i / 2, i % 2, n)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // Keep the repository clean: a failure prints its minimal case instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_command_sequences_keep_every_invariant(
        on_hand in prop::collection::vec(prop::option::weighted(0.8, 0i64..=30), 6),
        review_above_minor in prop::option::weighted(0.3, 1_000i64..=50_000),
        second_warehouse_active in prop::bool::weighted(0.85),
        ops in prop::collection::vec(op(), 1..=60),
    ) {
        let mut h = Harness::new(&stock_spec(&on_hand), review_above_minor);
        h.ws.warehouses.get_mut(&SHOP).expect("fixture warehouses")[1].active = second_warehouse_active;
        h.record_statuses();
        for op in &ops {
            h.step(op);
            h.record_statuses();
        }
    }
}

// ---------------------------------------------------------------------------
// Deterministic scenarios
// ---------------------------------------------------------------------------

fn place_one(sku: &str, quantity: i64) -> Command {
    Command::PlaceOrder(Box::new(PlaceOrder {
        by: by(),
        channel: "web".into(),
        external_id: None,
        buyer: Buyer::default(),
        shipping_address: Some(address()),
        lines: vec![LineRequest {
            sku: sku.into(),
            quantity,
        }],
        shipping_minor: 0,
        note: None,
        payment_method: None,
        coupon_codes: vec![],
        channel_terms: None,
        idempotency: None,
    }))
}

#[test]
fn a_thousand_one_unit_orders_against_a_hundred_units_sell_exactly_a_hundred() {
    let mut h = Harness::new(&[(0, 0, 100)], None);
    let (mut ok, mut short) = (0, 0);
    for _ in 0..1_000 {
        h.now = h.now.plus_millis(1);
        match h.apply(&place_one(SKUS[0].code, 1)) {
            (Ok(Outcome::Order { replayed: false, .. }), _) => ok += 1,
            (
                Err(CommandError::InsufficientStock {
                    requested: 1,
                    available: 0,
                    ..
                }),
                c,
            ) => {
                assert!(is_empty(&c));
                short += 1;
            }
            (other, _) => panic!("unexpected result {other:?}"),
        }
    }
    assert_eq!((ok, short), (100, 900));
    let level = &h.ws.stock[&stock_key(0, 0)];
    assert_eq!((level.on_hand, level.reserved, level.available()), (100, 100, 0));
    assert_eq!(h.ws.orders.len(), 100);
    assert_eq!(h.ledger.len(), 100);
    h.check_invariants();
}

#[test]
fn the_same_payment_notice_a_thousand_times_captures_once() {
    let mut h = Harness::new(&[(1, 1, 5)], None);
    let (placed, _) = h.apply(&place_one(SKUS[1].code, 2));
    let Ok(Outcome::Order { order, .. }) = placed else {
        panic!("placing failed: {placed:?}");
    };
    h.record_statuses();
    let notice = Command::PaymentNotice(PaymentNotice {
        shop: SHOP,
        gateway: GATEWAY.into(),
        order: order.id,
        transaction_id: "tx-dup".into(),
        succeeded: true,
        amount_minor: order.pricing.total_minor,
        currency: CNY,
    });
    let (mut captured, mut duplicates) = (0, 0);
    for _ in 0..1_000 {
        h.now = h.now.plus_millis(1);
        match h.apply(&notice) {
            (
                Ok(Outcome::Payment {
                    result: PaymentResult::Captured,
                    ..
                }),
                _,
            ) => captured += 1,
            (
                Ok(Outcome::Payment {
                    result: PaymentResult::AlreadyProcessed,
                    ..
                }),
                c,
            ) => {
                assert!(is_empty(&c));
                duplicates += 1;
            }
            (other, _) => panic!("unexpected result {other:?}"),
        }
    }
    assert_eq!((captured, duplicates), (1, 999));
    let o = &h.ws.orders[&order.id];
    assert_eq!(o.status, OrderStatus::Fulfilling);
    assert_eq!(o.paid_minor, order.pricing.total_minor);
    let pays = &h.ws.payments[&order.id];
    assert_eq!(pays.len(), 1);
    assert_eq!(pays[0].status, PaymentStatus::Captured);
    assert_eq!(pays[0].captured_minor, order.pricing.total_minor);
    assert_eq!(h.ws.notices.len(), 1);
    h.check_invariants();
}

/// Counts far outside any real stock level must be typed errors like smaller ones,
/// never an arithmetic overflow, and change nothing.
#[test]
fn extreme_stock_changes_are_rejected_without_change() {
    for change in [
        StockChange::Delta(i64::MAX),
        StockChange::Delta(i64::MIN),
        StockChange::SetOnHand(i64::MAX),
        StockChange::SetOnHand(i64::MIN),
    ] {
        let mut h = Harness::new(&[(0, 0, 5)], None);
        h.record_statuses();
        h.step(&Op::Adjust {
            sku: 0,
            warehouse: 0,
            change,
        });
        assert_eq!(h.ws.stock[&stock_key(0, 0)].on_hand, 5, "{change:?}");
    }
}
