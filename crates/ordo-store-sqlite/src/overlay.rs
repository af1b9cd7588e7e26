//! The changes of a batch that is still being written, seen by the load of the
//! batch decided after it.
//!
//! The decider thread loads batch k+1 from a read snapshot while the writer thread
//! writes batch k, so the snapshot may not hold k yet. Every row a batch changes that
//! `load` reads is in its [`Changes`] as its final value (orders, payments, stock levels, counters,
//! raw channel orders: whole rows; idempotency records, payment notices, assigned
//! codes: inserts), so "snapshot, then k's rows where k has one" is the state after
//! k whether or not k's commit is in the snapshot yet (ledger, refunds and events,
//! which `load` never reads, are left out). If k does not commit, the writer
//! refuses k+1 (see `pipeline`).

use ordo_core::batch::{Changes, ExternalRef, HashMap, HashMapExt, HashSet, IdempotencyRecord, NoticeKey};
use ordo_core::channel::RawChannelOrder;
use ordo_core::inventory::StockLevel;
use ordo_core::limits::{Counter, CounterKey};
use ordo_core::order::Order;
use ordo_core::payment::Payment;
use ordo_core::{CodeId, OrderId, ProductId, ShopId};

pub struct Overlay<'c> {
    orders: HashMap<OrderId, &'c Order>,
    /// Of `orders`, those this batch creates.
    created: HashSet<OrderId>,
    external_refs: HashMap<RefKey<'c>, OrderId>,
    payments: HashMap<OrderId, Vec<&'c Payment>>,
    idempotency: HashMap<(&'c str, &'c str), &'c IdempotencyRecord>,
    stock: HashMap<ProductId, Vec<&'c StockLevel>>,
    notices: HashSet<RefKey<'c>>,
    channel_orders: HashMap<RefKey<'c>, &'c RawChannelOrder>,
    counters: HashMap<&'c CounterKey, &'c Counter>,
    assigned_codes: HashSet<CodeId>,
}

/// (shop, channel or gateway, external id or transaction id), borrowed from the changes.
type RefKey<'c> = (&'c ShopId, &'c str, &'c str);

impl<'c> Overlay<'c> {
    pub fn of(c: &'c Changes) -> Overlay<'c> {
        let mut orders = HashMap::with_capacity(c.new_orders.len() + c.updated_orders.len());
        let mut external_refs = HashMap::with_capacity(c.new_orders.len());
        for o in c.new_orders.iter().chain(&c.updated_orders) {
            orders.insert(o.id, o);
            if let Some(external) = &o.external_id {
                external_refs.insert((&o.shop, o.channel.as_str(), external.as_str()), o.id);
            }
        }
        let mut payments: HashMap<OrderId, Vec<&Payment>> = HashMap::new();
        for p in c.new_payments.iter().chain(&c.updated_payments) {
            payments.entry(p.order).or_default().push(p);
        }
        let mut stock: HashMap<ProductId, Vec<&StockLevel>> = HashMap::new();
        for s in &c.stock {
            stock.entry(s.sku).or_default().push(s);
        }
        Overlay {
            orders,
            created: c.new_orders.iter().map(|o| o.id).collect(),
            external_refs,
            payments,
            idempotency: c
                .idempotency
                .iter()
                .map(|r| ((r.scope.as_str(), r.key.as_str()), r))
                .collect(),
            stock,
            notices: c
                .notices
                .iter()
                .map(|n| (&n.shop, n.gateway.as_str(), n.transaction_id.as_str()))
                .collect(),
            // Later entries of one raw order are its later states.
            channel_orders: c
                .channel_orders
                .iter()
                .map(|r| ((&r.shop, r.channel.as_str(), r.external_id.as_str()), r))
                .collect(),
            counters: c.counters.iter().map(|(k, v)| (k, v)).collect(),
            assigned_codes: c.assigned_codes.iter().map(|a| a.code).collect(),
        }
    }

    pub fn idempotency(&self, scope: &str, key: &str) -> Option<&'c IdempotencyRecord> {
        self.idempotency.get(&(scope, key)).copied()
    }

    pub fn external_ref(&self, (shop, channel, external): &ExternalRef) -> Option<OrderId> {
        self.external_refs
            .get(&(shop, channel.as_str(), external.as_str()))
            .copied()
    }

    pub fn order(&self, id: &OrderId) -> Option<&'c Order> {
        self.orders.get(id).copied()
    }

    /// Whether this batch creates order `id` (rather than changing a stored one).
    pub fn creates(&self, id: &OrderId) -> bool {
        self.created.contains(id)
    }

    /// `stored` (the snapshot's payments of `order`, by id) with this batch's
    /// versions in place of theirs and its new ones added, still by id.
    pub fn payments(&self, order: &OrderId, stored: &mut Vec<Payment>) {
        let Some(changed) = self.payments.get(order) else {
            return;
        };
        for p in changed {
            match stored.iter_mut().find(|s| s.id == p.id) {
                Some(s) => *s = (*p).clone(),
                None => stored.push((*p).clone()),
            }
        }
        stored.sort_by_key(|p| p.id);
    }

    pub fn stock_of(&self, sku: &ProductId) -> &[&'c StockLevel] {
        self.stock.get(sku).map_or(&[], Vec::as_slice)
    }

    pub fn notice_seen(&self, (shop, gateway, txn): &NoticeKey) -> bool {
        self.notices.contains(&(shop, gateway.as_str(), txn.as_str()))
    }

    pub fn channel_order(&self, (shop, channel, external): &ExternalRef) -> Option<&'c RawChannelOrder> {
        self.channel_orders
            .get(&(shop, channel.as_str(), external.as_str()))
            .copied()
    }

    pub fn counter(&self, key: &CounterKey) -> Option<&'c Counter> {
        self.counters.get(key).copied()
    }

    /// Codes this batch assigned: still unassigned in the snapshot.
    pub fn assigned_codes(&self) -> &HashSet<CodeId> {
        &self.assigned_codes
    }
}
