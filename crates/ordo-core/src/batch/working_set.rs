use std::collections::{BTreeMap, BTreeSet, VecDeque};

// A batch's working set is hashed thousands of times per batch by keys the process
// made or loaded itself; foldhash is several times cheaper than SipHash here, and its
// per-process random seed still keeps keys from being chosen to collide.
pub use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use serde::{Deserialize, Serialize};

use crate::catalog::{Product, ShopSettings, Warehouse};
use crate::channel::{ChannelPayment, RawChannelOrder};
use crate::event::NewEvent;
use crate::inventory::{LedgerEntry, StockKey, StockLevel};
use crate::limits::{Counter, CounterKey, Intake};
use crate::order::Order;
use crate::payment::{Payment, Refund};
use crate::{CodeId, OrderId, PaymentId, ProductId, ShopId, Timestamp};

use super::{Command, IdempotencyClaim, PlaceOrder, Step};

/// A stored idempotent response: the status code and the resource it created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
    pub status_code: u16,
    /// Id of the created resource, e.g. `ord_…`.
    pub resource: String,
    pub created_at: Timestamp,
}

/// A processed gateway notification; its key makes processing idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRecord {
    pub shop: ShopId,
    pub gateway: String,
    pub transaction_id: String,
    pub order: OrderId,
    pub succeeded: bool,
    pub amount_minor: i64,
    pub currency: crate::Currency,
    pub at: Timestamp,
}

pub type ExternalRef = (ShopId, String, String);
pub type NoticeKey = (ShopId, String, String);
pub type IdempotencyKey = (String, String);

/// What a batch needs loaded. The store resolves it in this order, locking rows
/// in key order: idempotency records and external refs (adding the orders they
/// name), orders with their payments, then products and the stock rows of every
/// SKU named directly or by a loaded order's lines, at every warehouse.
#[derive(Debug, Default, Clone)]
pub struct LoadRequest {
    pub shops: BTreeSet<ShopId>,
    pub skus: BTreeSet<(ShopId, String)>,
    pub orders: BTreeSet<OrderId>,
    pub external_refs: BTreeSet<ExternalRef>,
    pub idempotency: BTreeSet<IdempotencyKey>,
    pub notices: BTreeSet<NoticeKey>,
    /// Raw channel orders by (shop, channel, external id).
    pub channel_orders: BTreeSet<ExternalRef>,
    /// Placements, whose limit counters are chosen once settings are loaded.
    pub intakes: Vec<Intake>,
    /// Orders that may be cancelled, whose counters must be loaded to give back.
    pub releasing: BTreeSet<OrderId>,
    /// Orders that may be paid (or have codes delivered), whose virtual lines need codes.
    pub paying: BTreeSet<OrderId>,
    /// Orders whose lines an edit replaces, with the SKUs of the new lines: their
    /// buyers' purchase-limit counters are recounted.
    pub editing: Vec<(OrderId, Vec<String>)>,
}

impl LoadRequest {
    /// The limit counters the batch needs, given the loaded shops and orders; the
    /// store loads (and locks) them after everything else.
    /// `demand` is [`LoadRequest::code_demand`]: each pool drawn from is locked by its counter.
    pub fn counters(&self, ws: &WorkingSet, demand: &BTreeMap<CounterKey, (ProductId, i64)>) -> BTreeSet<CounterKey> {
        let mut keys = BTreeSet::new();
        for intake in &self.intakes {
            let Some(settings) = ws.shops.get(&intake.shop) else {
                continue;
            };
            for need in intake.needs(settings) {
                keys.insert(CounterKey {
                    shop: intake.shop,
                    name: need.name,
                });
            }
        }
        for (id, skus) in &self.editing {
            let Some(order) = ws.orders.get(id) else { continue };
            let Some(settings) = ws.shops.get(&order.shop) else {
                continue;
            };
            let on_order = |sku: &str| skus.iter().any(|s| s == sku) || order.lines.iter().any(|l| l.sku == sku);
            for limit in settings.purchase_limits.iter().filter(|l| on_order(&l.sku)) {
                keys.insert(CounterKey {
                    shop: order.shop,
                    name: crate::limits::names::purchases(&limit.sku, &order.buyer.id),
                });
            }
        }
        keys.extend(demand.keys().cloned());
        for order in self.releasing.iter().filter_map(|id| ws.orders.get(id)) {
            keys.extend(order.counted.iter().map(|c| CounterKey {
                shop: order.shop,
                name: c.counter.clone(),
            }));
        }
        keys
    }

    /// Codes the batch may assign, per virtual SKU's pool (its counter): what the
    /// orders it may pay are owed. The store loads (and locks) up to that many of
    /// each pool's codes after the pool counters, so one batch at a time draws from a pool.
    pub fn code_demand(&self, ws: &WorkingSet) -> BTreeMap<CounterKey, (ProductId, i64)> {
        let mut demand: BTreeMap<CounterKey, (ProductId, i64)> = BTreeMap::new();
        let mut add = |shop: ShopId, sku: ProductId, n: i64| {
            demand.entry(super::pool_counter(shop, sku)).or_insert((sku, 0)).1 += n;
        };
        for order in self.paying.iter().filter_map(|id| ws.orders.get(id)) {
            for line in order.lines.iter().filter(|l| l.codes_owed() > 0) {
                add(order.shop, line.sku_id, line.codes_owed());
            }
        }
        for intake in self.intakes.iter().filter(|i| i.prepaid) {
            for (sku, quantity) in intake.skus.iter().zip(&intake.quantities) {
                if let Some(p) = ws.products.get(&(intake.shop, sku.clone()))
                    && p.kind == crate::catalog::ProductKind::Virtual
                {
                    add(intake.shop, p.id, *quantity);
                }
            }
        }
        demand
    }

    pub fn for_batch<'a>(commands: impl IntoIterator<Item = &'a Command>) -> Self {
        let mut req = LoadRequest::default();
        for cmd in commands {
            req.add(cmd);
        }
        req
    }

    fn add_place<'a>(&mut self, c: &'a PlaceOrder) -> &'a Option<IdempotencyClaim> {
        self.shops.insert(c.by.shop);
        self.skus.extend(c.lines.iter().map(|l| (c.by.shop, l.sku.clone())));
        if let Some(ext) = &c.external_id {
            self.external_refs.insert((c.by.shop, c.channel.clone(), ext.clone()));
        }
        self.intakes.push(Intake {
            shop: c.by.shop,
            buyer: c.buyer.id.clone(),
            coupons: c.coupon_codes.clone(),
            skus: c.lines.iter().map(|l| l.sku.clone()).collect(),
            quantities: c.lines.iter().map(|l| l.quantity).collect(),
            prepaid: c
                .channel_terms
                .as_ref()
                .is_some_and(|t| t.payment != ChannelPayment::Pending)
                || c.payment_method.as_deref() == Some(crate::channel::CASH_ON_DELIVERY),
            address: c.shipping_address.as_ref().map(crate::limits::address_fingerprint),
        });
        &c.idempotency
    }

    fn add(&mut self, cmd: &Command) {
        let claim = match cmd {
            Command::PlaceOrder(c) | Command::ImportOrder(c) => self.add_place(c),
            Command::IntakeChannelOrder(c) => {
                self.shops.insert(c.shop);
                self.channel_orders
                    .insert((c.shop, c.channel.clone(), c.external_id.clone()));
                match &c.mapped {
                    Ok(place) => self.add_place(place),
                    Err(_) => &None,
                }
            }
            Command::ShipTogether(s) => {
                self.shops.insert(s.by.shop);
                self.orders.extend(s.orders.iter().copied());
                &None
            }
            Command::EditOrder(e) => {
                self.shops.insert(e.by.shop);
                self.orders.insert(e.order);
                if let Some(lines) = &e.lines {
                    self.skus.extend(lines.iter().map(|l| (e.by.shop, l.sku.clone())));
                    self.editing
                        .push((e.order, lines.iter().map(|l| l.sku.clone()).collect()));
                    // What the order counted may be given back.
                    self.releasing.insert(e.order);
                }
                &None
            }
            Command::PaymentNotice(n) => {
                self.shops.insert(n.shop);
                self.orders.insert(n.order);
                self.paying.insert(n.order);
                self.notices
                    .insert((n.shop, n.gateway.clone(), n.transaction_id.clone()));
                &None
            }
            Command::Refund(r) => {
                self.shops.insert(r.by.shop);
                self.orders.insert(r.order);
                &r.idempotency
            }
            Command::Transition {
                by,
                order,
                step: Step::Cancel(_) | Step::Reject { .. },
            } => {
                self.shops.insert(by.shop);
                self.orders.insert(*order);
                self.releasing.insert(*order);
                &None
            }
            Command::ResolvePaymentException { by, order, accept } => {
                self.shops.insert(by.shop);
                self.orders.insert(*order);
                if *accept {
                    self.paying.insert(*order);
                } else {
                    self.releasing.insert(*order);
                }
                &None
            }
            Command::Transition {
                by,
                order,
                step: Step::DeliverCodes,
            } => {
                self.shops.insert(by.shop);
                self.orders.insert(*order);
                self.paying.insert(*order);
                &None
            }
            Command::Transition { by, order, .. } => {
                self.shops.insert(by.shop);
                self.orders.insert(*order);
                &None
            }
            Command::ExpireUnpaid { shop, order } => {
                self.shops.insert(*shop);
                self.orders.insert(*order);
                self.releasing.insert(*order);
                &None
            }
            Command::RemindUnpaid { shop, order } => {
                self.shops.insert(*shop);
                self.orders.insert(*order);
                &None
            }
            Command::ReschedulePresale(r) => {
                self.shops.insert(r.by.shop);
                self.skus.insert((r.by.shop, r.sku.clone()));
                self.orders.extend(r.orders.iter().copied());
                &None
            }
            Command::AdjustStock(a) => {
                self.shops.insert(a.by.shop);
                self.skus.insert((a.by.shop, a.sku.clone()));
                &None
            }
        };
        if let Some(c) = claim {
            self.idempotency.insert((c.scope.clone(), c.key.clone()));
        }
    }
}

/// The rows a batch touches, as loaded (and locked) by the store, plus what the
/// batch's commands changed so far.
#[derive(Debug, Default)]
pub struct WorkingSet {
    pub shops: HashMap<ShopId, ShopSettings>,
    pub products: HashMap<(ShopId, String), Product>,
    pub warehouses: HashMap<ShopId, Vec<Warehouse>>,
    pub stock: HashMap<StockKey, StockLevel>,
    pub orders: HashMap<OrderId, Order>,
    pub external_refs: HashMap<ExternalRef, OrderId>,
    pub payments: HashMap<OrderId, Vec<Payment>>,
    pub idempotency: HashMap<IdempotencyKey, IdempotencyRecord>,
    pub notices: HashSet<NoticeKey>,
    /// Limit counters; one the store did not find is absent (counts as zero).
    pub counters: HashMap<CounterKey, Counter>,
    pub channel_orders: HashMap<ExternalRef, RawChannelOrder>,
    /// Unassigned codes of virtual SKUs, loaded and locked, oldest first.
    pub codes: HashMap<ProductId, VecDeque<CodeId>>,
    pending: Pending,
}

#[derive(Debug, Default)]
struct Pending {
    new_orders: BTreeSet<OrderId>,
    dirty_orders: BTreeSet<OrderId>,
    dirty_stock: BTreeSet<StockKey>,
    dirty_counters: BTreeSet<CounterKey>,
    channel_orders: Vec<RawChannelOrder>,
    assigned_codes: Vec<AssignedCode>,
    new_payments: BTreeSet<PaymentId>,
    dirty_payments: BTreeSet<(OrderId, PaymentId)>,
    ledger: Vec<LedgerEntry>,
    refunds: Vec<Refund>,
    notices: Vec<NoticeRecord>,
    idempotency: Vec<IdempotencyRecord>,
    events: Vec<NewEvent>,
}

impl Pending {
    /// Assembles the changes, fetching each touched row's final value with the
    /// given functions (which either move or copy it out of the working set).
    fn collect(
        self,
        mut order: impl FnMut(&OrderId) -> Option<Order>,
        mut stock: impl FnMut(&StockKey) -> Option<StockLevel>,
        mut payment: impl FnMut(&OrderId, PaymentId) -> Option<Payment>,
        mut counter: impl FnMut(&CounterKey) -> Option<Counter>,
    ) -> Changes {
        let mut c = Changes {
            ledger: self.ledger,
            refunds: self.refunds,
            notices: self.notices,
            idempotency: self.idempotency,
            events: self.events,
            channel_orders: self.channel_orders,
            assigned_codes: self.assigned_codes,
            ..Changes::default()
        };
        for id in &self.dirty_orders {
            let Some(o) = order(id) else { continue };
            if self.new_orders.contains(id) {
                c.new_orders.push(o)
            } else {
                c.updated_orders.push(o)
            }
        }
        c.stock = self.dirty_stock.iter().filter_map(&mut stock).collect();
        c.counters = self
            .dirty_counters
            .into_iter()
            .filter_map(|k| counter(&k).map(|v| (k, v)))
            .collect();
        for (order_id, pay) in &self.dirty_payments {
            let Some(p) = payment(order_id, *pay) else { continue };
            if self.new_payments.contains(pay) {
                c.new_payments.push(p)
            } else {
                c.updated_payments.push(p)
            }
        }
        c
    }
}

/// A code of a virtual SKU's pool given to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssignedCode {
    pub code: CodeId,
    pub order: OrderId,
    pub at: Timestamp,
}

/// Everything a batch changed, ready to persist in one transaction.
#[derive(Debug, Default)]
pub struct Changes {
    pub new_orders: Vec<Order>,
    pub updated_orders: Vec<Order>,
    /// Final values of every stock level touched (insert or update).
    pub stock: Vec<StockLevel>,
    /// Final values of every limit counter touched (insert or update).
    pub counters: Vec<(CounterKey, Counter)>,
    /// Raw channel orders received or changed (insert or update).
    pub channel_orders: Vec<RawChannelOrder>,
    /// Codes assigned to orders.
    pub assigned_codes: Vec<AssignedCode>,
    pub ledger: Vec<LedgerEntry>,
    pub new_payments: Vec<Payment>,
    pub updated_payments: Vec<Payment>,
    pub refunds: Vec<Refund>,
    pub notices: Vec<NoticeRecord>,
    pub idempotency: Vec<IdempotencyRecord>,
    pub events: Vec<NewEvent>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.new_orders.is_empty()
            && self.updated_orders.is_empty()
            && self.stock.is_empty()
            && self.notices.is_empty()
            && self.idempotency.is_empty()
            && self.counters.is_empty()
            && self.channel_orders.is_empty()
            && self.assigned_codes.is_empty()
    }
}

impl WorkingSet {
    /// The changes of a finished batch, moved out rather than copied (the hot path).
    pub fn into_changes(mut self) -> Changes {
        let p = std::mem::take(&mut self.pending);
        p.collect(
            |id| self.orders.remove(id),
            |k| self.stock.remove(k),
            |order, pay| {
                let payments = self.payments.get_mut(order)?;
                let i = payments.iter().position(|x| x.id == pay)?;
                Some(payments.swap_remove(i))
            },
            |k| self.counters.remove(k),
        )
    }

    /// Drains the changes recorded so far, keeping the working set usable.
    pub fn take_changes(&mut self) -> Changes {
        let p = std::mem::take(&mut self.pending);
        p.collect(
            |id| self.orders.get(id).cloned(),
            |k| self.stock.get(k).cloned(),
            |order, pay| self.payments.get(order)?.iter().find(|x| x.id == pay).cloned(),
            |k| self.counters.get(k).copied(),
        )
    }

    pub(crate) fn touch_order(&mut self, id: OrderId) {
        self.pending.dirty_orders.insert(id);
    }
    pub(crate) fn reserve_new_orders(&mut self, n: usize) {
        self.orders.reserve(n);
        self.payments.reserve(n);
        self.external_refs.reserve(n);
    }
    pub(crate) fn insert_order(&mut self, order: Order) {
        let id = order.id;
        if let Some(ext) = &order.external_id {
            self.external_refs
                .insert((order.shop, order.channel.clone(), ext.clone()), id);
        }
        self.orders.insert(id, order);
        self.pending.new_orders.insert(id);
        self.pending.dirty_orders.insert(id);
    }
    /// The counter to change; marks it for persisting.
    pub(crate) fn counter_mut(&mut self, key: CounterKey) -> &mut Counter {
        self.pending.dirty_counters.insert(key.clone());
        self.counters.entry(key).or_default()
    }
    pub(crate) fn record_assignment(&mut self, code: CodeId, order: OrderId, at: Timestamp) {
        self.pending.assigned_codes.push(AssignedCode { code, order, at });
    }
    /// Records a raw channel order's final state for this batch.
    pub(crate) fn put_channel_order(&mut self, raw: RawChannelOrder) {
        let key = (raw.shop, raw.channel.clone(), raw.external_id.clone());
        self.pending.channel_orders.retain(|r| r.id != raw.id);
        self.pending.channel_orders.push(raw.clone());
        self.channel_orders.insert(key, raw);
    }
    pub(crate) fn touch_stock(&mut self, key: StockKey) {
        self.pending.dirty_stock.insert(key);
    }
    pub(crate) fn insert_payment(&mut self, payment: Payment) {
        self.pending.new_payments.insert(payment.id);
        self.pending.dirty_payments.insert((payment.order, payment.id));
        self.payments.entry(payment.order).or_default().push(payment);
    }
    pub(crate) fn touch_payment(&mut self, order: OrderId, payment: PaymentId) {
        self.pending.dirty_payments.insert((order, payment));
    }
    pub(crate) fn record_ledger(&mut self, entry: LedgerEntry) {
        self.pending.ledger.push(entry);
    }
    pub(crate) fn last_ledger_mut(&mut self) -> Option<&mut LedgerEntry> {
        self.pending.ledger.last_mut()
    }
    pub(crate) fn record_refund(&mut self, refund: Refund) {
        self.pending.refunds.push(refund);
    }
    pub(crate) fn record_notice(&mut self, n: NoticeRecord) {
        self.notices
            .insert((n.shop, n.gateway.clone(), n.transaction_id.clone()));
        self.pending.notices.push(n);
    }
    pub(crate) fn record_idempotency(&mut self, r: IdempotencyRecord) {
        self.idempotency.insert((r.scope.clone(), r.key.clone()), r.clone());
        self.pending.idempotency.push(r);
    }
    pub(crate) fn emit(&mut self, event: NewEvent) {
        self.pending.events.push(event);
    }
}
