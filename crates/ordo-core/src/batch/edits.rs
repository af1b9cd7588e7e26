//! Editing an order before it ships (A8): a new address, or new lines priced the
//! way the order was (its promotions, as of when it was placed), with the stock
//! reservations following. Each edit is a revision on the order's version; the
//! price difference becomes an amount due (a new pending payment) or a refund.

use std::collections::BTreeMap;

use serde_json::json;

use super::orders::{
    QuoteAt, emit_about, give_back_counts, held_stock_of, move_stock, quote, release_all, store_order,
};
use super::payments::{new_pending_payment, refund_captured};
use super::{Context, EditOrder, Outcome, PlaceOrder, WorkingSet};
use crate::CommandError;
use crate::channel;
use crate::event::kinds;
use crate::inventory::StockKey;
use crate::limits::{Counted, CounterKey, names};
use crate::order::{Order, OrderLine, OrderStatus, Revision};
use crate::payment::{PaymentEvent, PaymentStatus};
use crate::promotion::Promotion;

fn editable(order: &Order) -> Result<(), CommandError> {
    let open = order.status.before_shipment();
    let started = order.parcels.iter().any(|p| p.shipment.is_some())
        || order
            .lines
            .iter()
            .any(|l| !l.codes.is_empty() || l.refunded_quantity > 0);
    if open && !started {
        Ok(())
    } else {
        Err(CommandError::NotEditable {
            status: order.status.as_str(),
        })
    }
}

pub(super) fn edit(ws: &mut WorkingSet, e: &EditOrder, ctx: &mut Context<'_>) -> Result<Outcome, CommandError> {
    let mut order = super::orders::scoped(ws, e.by.shop, e.order)?.clone();
    if order.version != e.expected_version {
        return Err(CommandError::VersionConflict {
            expected: e.expected_version,
            current: order.version,
        });
    }
    editable(&order)?;
    if e.lines.is_none() && e.shipping_address.is_none() {
        return Err(CommandError::Empty {
            field: "lines or shipping_address",
        });
    }
    let now = ctx.now;
    let total_before = order.pricing.total_minor;
    let address = e.shipping_address.clone().or_else(|| order.shipping_address.clone());
    if let Some(a) = &e.shipping_address {
        crate::address::validate(a)?;
    }

    // New lines: priced and allocated as a placement of the same order would be.
    let requote = match &e.lines {
        None => None,
        Some(_) if channel::KNOWN.contains(&order.channel.as_str()) => {
            return Err(CommandError::ChannelTerms {
                reason: "a channel's order is priced by the channel; change its lines there",
            });
        }
        Some(lines) => {
            let held = held_stock_of(&order, |_| true);
            let settings = ws.shops.get(&order.shop).ok_or(CommandError::ShopNotFound)?;
            let terms = promotions_as_placed(&order, &settings.promotions);
            let c = PlaceOrder {
                by: e.by.clone(),
                channel: order.channel.clone(),
                external_id: None,
                buyer: order.buyer.clone(),
                shipping_address: address.clone(),
                lines: lines.clone(),
                shipping_minor: order.pricing.shipping_minor,
                note: order.note.clone(),
                payment_method: order.payment_method.clone(),
                // A coupon whose promotion is gone altogether (an order from before
                // terms were kept) is not the buyer's fault: the edit goes on without it.
                coupon_codes: order
                    .promotions
                    .iter()
                    .filter_map(|p| p.coupon_code.clone())
                    .filter(|code| terms.iter().any(|t| t.coupon_code.as_ref() == Some(code)))
                    .collect(),
                idempotency: None,
                channel_terms: None,
            };
            // A SKU already on the order keeps the price it was sold at; one added
            // is sold at today's.
            let mut placed_prices = BTreeMap::new();
            for l in &order.lines {
                placed_prices.entry(l.sku_id).or_insert(l.unit_price_minor);
            }
            let at = QuoteAt {
                now,
                promotions: order.created_at,
                promotion_terms: Some(&terms),
                held: &held,
                count_limits: false,
                placed_prices: &placed_prices,
            };
            Some(quote(ws, &c, &at)?)
        }
    };
    let recount = match &requote {
        Some(q) => purchases_after_edit(ws, &order, &q.lines, now)?,
        None => Vec::new(),
    };
    // Coupons the new lines no longer qualify for give their uses back.
    let dropped_coupons: Vec<String> = match &requote {
        Some(q) => order
            .promotions
            .iter()
            .filter_map(|p| p.coupon_code.clone())
            .filter(|code| !q.applied.iter().any(|a| a.coupon_code.as_ref() == Some(code)))
            .collect(),
        None => Vec::new(),
    };
    let owed = requote
        .as_ref()
        .map_or(0, |q| q.pricing.total_minor - order.pricing.total_minor);
    let net_paid = order.paid_minor - order.refunded_minor;
    let unpaid = order.status == OrderStatus::PendingPayment;

    // From here on nothing fails: apply.
    order.shipping_address = address;
    if let Some(q) = requote {
        release_all(ws, &order, &e.by.actor, now);
        for a in &q.allocations {
            let key = StockKey {
                sku: a.sku,
                warehouse: a.warehouse,
            };
            let m = ws.stock[&key]
                .reserve(a.quantity)
                .expect("the quote checked availability");
            move_stock(ws, key, m, Some(order.id), &e.by.actor, now);
        }
        for r in recount {
            if let Some(held) = &r.held {
                ws.counter_mut(r.key.clone()).give_back(held);
                order.counted.retain(|c| c.counter != held.counter);
            }
            if r.units > 0 {
                let counted = ws
                    .counter_mut(r.key.clone())
                    .add(r.key.name, r.units, r.window_secs, now);
                order.counted.push(counted);
            }
        }
        for code in &dropped_coupons {
            let uses = [names::coupon(code), names::coupon_buyer(code, &order.buyer.id)];
            give_back_counts(ws, &mut order, |c| uses.contains(&c.counter));
        }
        order.parcels = super::shipping::plan_parcels(&q.lines);
        order.lines = q.lines;
        order.pricing = q.pricing;
        order.promotions = q.applied;
    }
    let total_after = order.pricing.total_minor;
    let mut settled = json!(null);
    if owed != 0 {
        if unpaid || order.payment_method.as_deref() == Some(channel::CASH_ON_DELIVERY) {
            // Nothing captured yet: the pending payment now expects the new total.
            reprice_pending(ws, &order, total_after);
        } else {
            let due = total_after - net_paid;
            if due > 0 && reprice_pending(ws, &order, due) {
                settled = json!({ "due_minor": due });
            } else if due > 0 {
                let payment = new_pending_payment(ws, &order, due, ctx);
                settled = json!({ "due_minor": due, "payment": payment });
            } else {
                // Nothing is owed any more; a further payment asked for earlier lapses.
                expire_pending(ws, &order, &e.by.actor, now);
                if due < 0 {
                    let refunds = refund_captured(ws, &mut order, -due, "order edited", &e.by.actor, ctx)?;
                    settled = json!({ "refunded_minor": -due, "refunds": refunds });
                }
            }
        }
    }
    order.revisions.push(Revision {
        version: order.version,
        at: now,
        actor: e.by.actor.clone(),
        reason: e.reason.clone(),
        lines_changed: e.lines.is_some(),
        address_changed: e.shipping_address.is_some(),
        total_before,
        total_after,
    });
    order.touch(now);
    super::orders::emit_order(
        ws,
        &order,
        kinds::ORDER_EDITED,
        json!({
            "version": order.version, "reason": e.reason, "lines_changed": e.lines.is_some(),
            "address_changed": e.shipping_address.is_some(), "total_before": total_before,
            "total_after": total_after, "settlement": settled, "coupons_released": dropped_coupons,
        }),
        &e.by.actor,
        now,
    );
    store_order(ws, order.clone());
    Ok(Outcome::Order {
        order: Box::new(order),
        replayed: false,
    })
}

/// The promotions an edit prices by: those the order was priced with, on the
/// terms they had then, and the shop's other promotions (an order may qualify for
/// one of those once its lines change; they apply as of the order's placement).
fn promotions_as_placed(order: &Order, current: &[Promotion]) -> Vec<Promotion> {
    let placed = || order.promotions.iter().filter_map(|a| a.terms.as_deref());
    // A coupon the order used stays on its placed terms, even if the shop has
    // since put the same code on a promotion of another name.
    let others = current
        .iter()
        .filter(|p| !placed().any(|t| t.id == p.id || (t.coupon_code.is_some() && t.coupon_code == p.coupon_code)));
    placed().chain(others).cloned().collect()
}

/// A purchase-limit counter an edit changes: the order gives back what it counted
/// and counts its new units instead.
struct Recount {
    key: CounterKey,
    window_secs: Option<i64>,
    held: Option<Counted>,
    units: i64,
}

/// The buyer's purchase limits after an edit: each limited SKU counts the units the
/// order has after the edit instead of those it had. Refused, changing nothing, if
/// that passes a limit.
fn purchases_after_edit(
    ws: &WorkingSet,
    order: &Order,
    lines: &[OrderLine],
    now: crate::Timestamp,
) -> Result<Vec<Recount>, CommandError> {
    let settings = ws.shops.get(&order.shop).ok_or(CommandError::ShopNotFound)?;
    let mut recounts = Vec::new();
    for limit in &settings.purchase_limits {
        let key = CounterKey {
            shop: order.shop,
            name: names::purchases(&limit.sku, &order.buyer.id),
        };
        let held = order.counted.iter().find(|c| c.counter == key.name).cloned();
        let units: i64 = lines.iter().filter(|l| l.sku == limit.sku).map(|l| l.quantity).sum();
        if held.is_none() && units == 0 {
            continue;
        }
        let counter = ws.counters.get(&key).copied().unwrap_or_default();
        let current = counter.current(limit.window_secs, now);
        // What this order still holds in the counter's current window.
        let still_held = held
            .as_ref()
            .filter(|c| current > 0 && c.window_start == counter.window_start)
            .map_or(0, |c| c.amount);
        let others = current - still_held;
        if units > 0 && others + units > limit.max_units {
            return Err(CommandError::PurchaseLimit {
                sku: limit.sku.clone(),
                max: limit.max_units,
                already: others,
            });
        }
        recounts.push(Recount {
            key,
            window_secs: limit.window_secs,
            held,
            units,
        });
    }
    Ok(recounts)
}

/// Sets what the order's pending payment expects; false when there is none.
fn reprice_pending(ws: &mut WorkingSet, order: &Order, expected_minor: i64) -> bool {
    let Some(p) = ws
        .payments
        .get_mut(&order.id)
        .and_then(|ps| ps.iter_mut().find(|p| p.status == PaymentStatus::Pending))
    else {
        return false;
    };
    p.expected_minor = expected_minor;
    let id = p.id;
    ws.touch_payment(order.id, id);
    true
}

fn expire_pending(ws: &mut WorkingSet, order: &Order, actor: &crate::auth::Actor, now: crate::Timestamp) {
    let Some(p) = ws
        .payments
        .get_mut(&order.id)
        .and_then(|ps| ps.iter_mut().find(|p| p.status == PaymentStatus::Pending))
    else {
        return;
    };
    p.resolve(PaymentEvent::Expire, now)
        .expect("pending payments can expire");
    let id = p.id;
    ws.touch_payment(order.id, id);
    let payload = json!({ "order": order.id, "reason": "order edited" });
    emit_about(ws, order, id, kinds::PAYMENT_EXPIRED, payload, actor, now);
}
