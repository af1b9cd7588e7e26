//! Virtual goods (G1): on payment, each virtual line takes its codes from the
//! SKU's pool in the payment's own transaction, all or none, so a code is never
//! assigned twice and an order is never half delivered. The core sees code ids
//! only; the codes themselves stay encrypted in the store.

use std::collections::BTreeMap;

use serde_json::json;

use super::WorkingSet;
use super::orders::{emit_about, emit_order};
use crate::auth::Actor;
use crate::event::kinds;
use crate::limits::{CounterKey, names};
use crate::order::Order;
use crate::{ProductId, Timestamp};

/// Below this many codes left, a pool raises an alert (unless the shop says otherwise).
pub const LOW_POOL_DEFAULT: i64 = 10;

/// What delivering an order's codes came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Delivery {
    /// The order has no virtual lines, or they have their codes.
    NothingOwed,
    Delivered,
    /// The pool of `sku` has `available` codes, `needed` were needed; nothing was assigned.
    Short {
        sku: String,
        needed: i64,
        available: i64,
    },
}

/// The pool counter of a SKU: how many codes are left to assign.
pub fn pool_counter(shop: crate::ShopId, sku: ProductId) -> CounterKey {
    CounterKey {
        shop,
        name: names::code_pool(sku),
    }
}

/// Assigns every code the order's virtual lines are owed, or none if a pool is short.
pub(super) fn deliver(ws: &mut WorkingSet, order: &mut Order, actor: &Actor, now: Timestamp) -> Delivery {
    let mut owed: BTreeMap<ProductId, (String, i64)> = BTreeMap::new();
    for line in order.lines.iter().filter(|l| l.codes_owed() > 0) {
        owed.entry(line.sku_id).or_insert_with(|| (line.sku.clone(), 0)).1 += line.codes_owed();
    }
    if owed.is_empty() {
        return Delivery::NothingOwed;
    }
    for (sku_id, (sku, needed)) in &owed {
        let available = ws.codes.get(sku_id).map_or(0, |pool| pool.len() as i64);
        if available < *needed {
            raise_low(ws, order, *sku_id, sku, available, actor, now);
            return Delivery::Short {
                sku: sku.clone(),
                needed: *needed,
                available,
            };
        }
    }
    let mut assigned = Vec::new();
    for line in order.lines.iter_mut().filter(|l| l.codes_owed() > 0) {
        let pool = ws.codes.get_mut(&line.sku_id).expect("checked above");
        for _ in 0..line.codes_owed() {
            let code = pool.pop_front().expect("checked above");
            line.codes.push(code);
            assigned.push(code);
        }
    }
    let delivered = assigned.len();
    for code in assigned {
        ws.record_assignment(code, order.id, now);
    }
    let low_at = ws
        .shops
        .get(&order.shop)
        .map_or(LOW_POOL_DEFAULT, |s| s.code_pool_low_at);
    for (sku_id, (sku, needed)) in owed {
        let key = pool_counter(order.shop, sku_id);
        if ws.counters.contains_key(&key) {
            let counter = ws.counter_mut(key);
            let before = counter.value;
            counter.value = (counter.value - needed).max(0);
            let left = counter.value;
            if before >= low_at && left < low_at {
                raise_low(ws, order, sku_id, &sku, left, actor, now);
            }
        }
    }
    emit_order(
        ws,
        order,
        kinds::ORDER_CODES_DELIVERED,
        json!({ "codes": delivered }),
        actor,
        now,
    );
    Delivery::Delivered
}

fn raise_low(
    ws: &mut WorkingSet,
    order: &Order,
    sku_id: ProductId,
    sku: &str,
    remaining: i64,
    actor: &Actor,
    now: Timestamp,
) {
    let payload = json!({ "sku": sku, "remaining": remaining });
    emit_about(ws, order, sku_id, kinds::CODE_POOL_LOW, payload, actor, now);
}
