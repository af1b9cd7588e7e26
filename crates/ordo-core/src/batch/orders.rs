use std::collections::BTreeMap;

use serde_json::json;

use super::codes::Delivery;
use super::{
    By, Context, IdempotencyClaim, IdempotencyRecord, LINE_QUANTITY_MAX, ORDER_LINES_MAX, Outcome, PlaceOrder, Step,
    WorkingSet,
};
use crate::allocation::{Demand, allocate};
use crate::auth::Actor;
use crate::catalog::{ProductKind, ShopSettings};
use crate::channel::{CASH_ON_DELIVERY, ChannelPayment, ChannelTerms};
use crate::event::EventPayload;
use crate::event::payloads::Placed;
use crate::event::{NewEvent, kinds};
use crate::inventory::{LedgerEntry, Movement, StockKey, StockLevel};
use crate::limits::{self, Counted, CounterKey, HistoryFacts, Need, Rule};
use crate::money::{AMOUNT_MINOR_MAX, Money, MoneyError};
use crate::order::{CancelReason, Order, OrderEvent, OrderLine, OrderStatus, Pricing};
use crate::payment::PaymentNotice;
use crate::payment::{Payment, PaymentEvent, PaymentStatus};
use crate::promotion::{self, PricedLine};
use crate::{CommandError, OrderId, PaymentId, ShopId, Timestamp};

pub(super) fn place(ws: &mut WorkingSet, c: &PlaceOrder, ctx: &mut Context<'_>) -> Result<Outcome, CommandError> {
    let (id, replayed) = place_order(ws, c, ctx)?;
    let order = ws.orders.get(&id).cloned().ok_or(CommandError::OrderNotFound)?;
    Ok(Outcome::Order {
        order: Box::new(order),
        replayed,
    })
}

/// Places an imported order; answers with its id, status and total only.
pub(super) fn place_imported(
    ws: &mut WorkingSet,
    c: &PlaceOrder,
    ctx: &mut Context<'_>,
) -> Result<Outcome, CommandError> {
    let (id, replayed) = place_order(ws, c, ctx)?;
    let order = ws.orders.get(&id).ok_or(CommandError::OrderNotFound)?;
    Ok(Outcome::Placed {
        id,
        status: order.status,
        total: crate::money::Money {
            amount_minor: order.pricing.total_minor,
            currency: order.pricing.currency,
        },
        replayed,
    })
}

/// Places an order (or finds the one an idempotent retry or a channel re-send
/// names) and settles what is known at intake: a payment the channel captured,
/// or cash on delivery. Returns the order's id (the order is in `ws`) and whether
/// it existed already.
pub(super) fn place_order(
    ws: &mut WorkingSet,
    c: &PlaceOrder,
    ctx: &mut Context<'_>,
) -> Result<(OrderId, bool), CommandError> {
    if let Some(claim) = &c.idempotency
        && let Some(id) = replayed_order(ws, claim)?
    {
        return Ok((id, true));
    }
    if let Some(ext) = &c.external_id
        && let Some(id) = ws.external_refs.get(&(c.by.shop, c.channel.clone(), ext.clone()))
    {
        return if ws.orders.contains_key(id) {
            Ok((*id, true))
        } else {
            Err(CommandError::OrderNotFound)
        };
    }
    let id = place_new(ws, c, ctx)?;
    let order = &ws.orders[&id];
    let payment = c.channel_terms.as_ref().map(|t| &t.payment);
    let cod = matches!(payment, Some(ChannelPayment::CashOnDelivery))
        || c.payment_method.as_deref() == Some(CASH_ON_DELIVERY);
    match payment {
        Some(ChannelPayment::Paid {
            amount_minor,
            reference,
        }) => {
            let notice = PaymentNotice {
                shop: order.shop,
                gateway: c.channel.clone(),
                order: order.id,
                transaction_id: reference.clone(),
                succeeded: true,
                amount_minor: *amount_minor,
                currency: order.pricing.currency,
            };
            super::payments::notice(ws, &notice, ctx)?;
        }
        _ if cod => super::payments::accept_cash_on_delivery(ws, id, &c.by.actor, ctx.now)?,
        _ => {}
    }
    Ok((id, false))
}

/// When and how a placement (or an edit's re-placement) is priced and checked.
pub(super) struct QuoteAt<'a> {
    pub now: Timestamp,
    /// Promotions apply as of this time (an edit keeps the order's own).
    pub promotions: Timestamp,
    /// The promotions to price with; `None` = the shop's current list (a
    /// placement). An edit passes the terms the order was priced with.
    pub promotion_terms: Option<&'a [promotion::Promotion]>,
    /// Stock the order holds already and may take again (an edit's old lines).
    pub held: &'a BTreeMap<StockKey, i64>,
    /// Whether limits are checked and counted (placement) or not (an edit).
    pub count_limits: bool,
    /// Unit prices the order was placed at, per SKU (an edit's old lines): those
    /// SKUs keep them, and may stay on the order even if no longer on sale.
    pub placed_prices: &'a BTreeMap<crate::ProductId, i64>,
}

/// A placement decided but not applied: lines priced and allocated, limits checked.
pub(super) struct Quote {
    pub lines: Vec<OrderLine>,
    pub allocations: Vec<crate::allocation::Allocation>,
    pub pricing: Pricing,
    pub applied: Vec<promotion::AppliedPromotion>,
    pub counts: Vec<(Need, i64)>,
    pub history: HistoryFacts,
}

/// Validates, prices and allocates a placement without changing anything.
pub(super) fn quote(ws: &WorkingSet, c: &PlaceOrder, at: &QuoteAt<'_>) -> Result<Quote, CommandError> {
    let shop = c.by.shop;
    let terms = c.channel_terms.as_deref();
    let settings = ws.shops.get(&shop).ok_or(CommandError::ShopNotFound)?;
    if c.lines.is_empty() || c.lines.len() > ORDER_LINES_MAX {
        return Err(CommandError::LineCount { max: ORDER_LINES_MAX });
    }
    if c.channel.is_empty() {
        return Err(CommandError::Empty { field: "channel" });
    }
    // A channel's order was paid (or promised) the channel's way already.
    if let Some(method) = &c.payment_method
        && c.channel_terms.is_none()
        && !settings.payment_methods.is_empty()
        && !settings.payment_methods.contains(method)
    {
        return Err(CommandError::PaymentMethodNotAllowed { method: method.clone() });
    }
    if !(0..=AMOUNT_MINOR_MAX).contains(&c.shipping_minor) {
        return Err(MoneyError::Overflow.into());
    }

    // Price every line (from the catalogue, or as the channel sold it) and sum
    // demand per physical SKU.
    let currency = settings.currency;
    if let Some(t) = terms {
        if t.currency != currency {
            return Err(MoneyError::CurrencyMismatch {
                left: currency,
                right: t.currency,
            }
            .into());
        }
        if t.lines.len() != c.lines.len() {
            return Err(CommandError::ChannelTerms {
                reason: "one price per line",
            });
        }
    }
    let mut items = Money::zero(currency);
    let mut lines = Vec::with_capacity(c.lines.len());
    let mut demand: BTreeMap<_, i64> = BTreeMap::new();
    for (i, req) in c.lines.iter().enumerate() {
        if !(1..=LINE_QUANTITY_MAX).contains(&req.quantity) {
            return Err(CommandError::Quantity { max: LINE_QUANTITY_MAX });
        }
        let p = ws
            .products
            .get(&(shop, req.sku.clone()))
            .ok_or_else(|| CommandError::UnknownSku { sku: req.sku.clone() })?;
        let placed_price = at.placed_prices.get(&p.id).copied();
        // A channel order was sold already; the SKU's own sale flag is for Ordo's channels.
        if !p.on_sale && terms.is_none() && placed_price.is_none() {
            return Err(CommandError::SkuNotOnSale { sku: req.sku.clone() });
        }
        let unit_price_minor = terms.map_or(placed_price.unwrap_or(p.price_minor), |t| t.lines[i].0);
        let total = Money::new(unit_price_minor, currency)?.checked_mul(req.quantity)?;
        items = items.checked_add(total)?;
        if p.kind == ProductKind::Physical {
            *demand.entry(p.id).or_default() += req.quantity;
        }
        lines.push(OrderLine {
            sku_id: p.id,
            sku: p.sku.clone(),
            name: p.name.clone(),
            quantity: req.quantity,
            unit_price_minor,
            total_minor: total.amount_minor,
            warehouse: None,
            discount_minor: terms.map_or(0, |t| t.lines[i].1),
            digital: p.kind == ProductKind::Virtual,
            codes: Vec::new(),
            ships_at: p.presale_ships_at.filter(|t| *t > at.now),
            refunded_quantity: 0,
            refunded_minor: 0,
        });
    }
    match &c.shipping_address {
        Some(address) => crate::address::validate(address)?,
        None if !demand.is_empty() => return Err(CommandError::AddressRequired),
        None => {}
    }
    let (priced, tax_minor) = match terms {
        Some(t) => (channel_priced(t, &lines, items, c.shipping_minor)?, t.tax_minor),
        None => {
            let promotions = at.promotion_terms.unwrap_or(&settings.promotions);
            (catalogue_priced(c, promotions, &mut lines, at.promotions)?, 0)
        }
    };
    let discount = Money::new(priced.items_discount_minor + priced.shipping_discount_minor, currency)?;
    let total = items
        .checked_add(Money::new(c.shipping_minor, currency)?)?
        .checked_add(Money::new(tax_minor, currency)?)?
        .checked_sub(discount)?;

    let (counts, history) = if at.count_limits {
        check_limits(ws, c, settings, &lines, &priced.applied, at.now)?
    } else {
        (Vec::new(), HistoryFacts::default())
    };

    // Decide where the stock comes from; nothing has changed yet.
    let demands: Vec<Demand> = demand
        .iter()
        .map(|(&sku, &quantity)| Demand { sku, quantity })
        .collect();
    let no_warehouses = Vec::new();
    let warehouses = ws.warehouses.get(&shop).unwrap_or(&no_warehouses);
    let allocations = allocate(&demands, warehouses, |k| {
        ws.stock.get(&k).map_or(0, StockLevel::available) + at.held.get(&k).copied().unwrap_or(0)
    })
    .map_err(|s| {
        let sku = lines
            .iter()
            .find(|l| l.sku_id == s.sku)
            .map(|l| l.sku.clone())
            .unwrap_or_default();
        CommandError::InsufficientStock {
            sku,
            requested: s.requested,
            available: s.available,
        }
    })?;

    for line in &mut lines {
        line.warehouse = allocations.iter().find(|a| a.sku == line.sku_id).map(|a| a.warehouse);
    }
    Ok(Quote {
        lines,
        allocations,
        pricing: Pricing {
            currency,
            items_minor: items.amount_minor,
            shipping_minor: c.shipping_minor,
            tax_minor,
            discount_minor: discount.amount_minor,
            total_minor: total.amount_minor,
        },
        applied: priced.applied,
        counts,
        history,
    })
}

fn place_new(ws: &mut WorkingSet, c: &PlaceOrder, ctx: &mut Context<'_>) -> Result<OrderId, CommandError> {
    let (no_stock_held, no_prices) = (BTreeMap::new(), BTreeMap::new());
    let at = QuoteAt {
        now: ctx.now,
        promotions: ctx.now,
        promotion_terms: None,
        held: &no_stock_held,
        count_limits: true,
        placed_prices: &no_prices,
    };
    let Quote {
        lines,
        allocations,
        pricing,
        applied,
        counts,
        history,
    } = quote(ws, c, &at)?;
    let shop = c.by.shop;
    let now = ctx.now;
    let settings = ws.shops.get(&shop).ok_or(CommandError::ShopNotFound)?;
    let payment_due_at = Some(now.plus_secs(settings.payment_timeout_secs));
    let payment_reminder_at = crate::catalog::payment_reminder_at(settings, now);
    // From here on nothing fails: apply.
    let id = OrderId(ctx.ids.next_id());
    for a in &allocations {
        let key = StockKey {
            sku: a.sku,
            warehouse: a.warehouse,
        };
        let level = ws.stock.get(&key).expect("allocated stock is loaded");
        let m = level.reserve(a.quantity).expect("allocation checked availability");
        move_stock(ws, key, m, Some(id), &c.by.actor, now);
    }
    let counted = counts
        .into_iter()
        .map(|(need, amount)| {
            let key = CounterKey {
                shop,
                name: need.name.clone(),
            };
            ws.counter_mut(key).add(need.name, amount, need.rule.window_secs(), now)
        })
        .collect();
    let parcels = super::shipping::plan_parcels(&lines);
    let order = Order {
        id,
        shop,
        parcels,
        revisions: Vec::new(),
        channel: c.channel.clone(),
        external_id: c.external_id.clone(),
        status: OrderStatus::PendingPayment,
        cancel_reason: None,
        hold_reason: None,
        payment_exception: None,
        buyer: c.buyer.clone(),
        shipping_address: c.shipping_address.clone(),
        lines,
        pricing,
        note: c.note.clone(),
        payment_method: c.payment_method.clone(),
        promotions: applied,
        shipment: None,
        paid_minor: 0,
        refunded_minor: 0,
        payment_due_at,
        payment_reminder_at,
        counted,
        history,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    ws.insert_payment(Payment {
        id: PaymentId(ctx.ids.next_id()),
        shop,
        order: id,
        gateway: None,
        transaction_id: None,
        status: PaymentStatus::Pending,
        expected_minor: pricing.total_minor,
        currency: pricing.currency,
        captured_minor: 0,
        captured_currency: None,
        refunded_minor: 0,
        created_at: now,
        resolved_at: None,
    });
    ws.emit(NewEvent {
        shop: Some(shop),
        subject: id.to_string(),
        kind: kinds::ORDER_PLACED,
        payload: EventPayload::of(&Placed {
            channel: &order.channel,
            currency: pricing.currency,
            external_id: order.external_id.as_deref(),
            lines: order.lines.len(),
            payment_due_at: order.payment_due_at,
            total_minor: pricing.total_minor,
        }),
        actor: c.by.actor.clone(),
        at: now,
    });
    if let Some(claim) = &c.idempotency {
        remember(ws, claim, 201, id.to_string(), now);
    }
    ws.insert_order(order);
    Ok(id)
}

/// Prices the lines under the shop's promotions and the buyer's coupons, writing
/// each line's share of the discount.
fn catalogue_priced(
    c: &PlaceOrder,
    promotions: &[promotion::Promotion],
    lines: &mut [OrderLine],
    now: Timestamp,
) -> Result<promotion::Priced, CommandError> {
    let priced_lines: Vec<PricedLine> = lines
        .iter()
        .map(|l| PricedLine {
            sku: l.sku.clone(),
            quantity: l.quantity,
            unit_price_minor: l.unit_price_minor,
        })
        .collect();
    let priced = promotion::apply(&priced_lines, c.shipping_minor, promotions, &c.coupon_codes, now)?;
    for (line, discount) in lines.iter_mut().zip(&priced.line_discounts_minor) {
        line.discount_minor = *discount;
    }
    Ok(priced)
}

/// The channel's discounts as they were; its total must add up.
fn channel_priced(
    t: &ChannelTerms,
    lines: &[OrderLine],
    items: Money,
    shipping_minor: i64,
) -> Result<promotion::Priced, CommandError> {
    let amounts = [t.tax_minor, t.discount_minor, t.total_minor];
    if amounts.iter().any(|a| !(0..=AMOUNT_MINOR_MAX).contains(a))
        || lines
            .iter()
            .any(|l| l.discount_minor < 0 || l.discount_minor > l.total_minor)
    {
        return Err(MoneyError::Overflow.into());
    }
    let computed = items.amount_minor + shipping_minor + t.tax_minor - t.discount_minor;
    if computed != t.total_minor {
        return Err(CommandError::ChannelTotalsMismatch {
            computed,
            total: t.total_minor,
        });
    }
    Ok(promotion::Priced {
        items_discount_minor: t.discount_minor.min(items.amount_minor),
        shipping_discount_minor: (t.discount_minor - items.amount_minor).max(0),
        applied: Vec::new(),
        line_discounts_minor: Vec::new(),
    })
}

/// Checks the placement against the shop's coupon and purchase limits and reads the
/// history the review rules need. Returns the counters to add to and the facts.
fn check_limits(
    ws: &WorkingSet,
    c: &PlaceOrder,
    settings: &ShopSettings,
    lines: &[OrderLine],
    applied: &[promotion::AppliedPromotion],
    now: Timestamp,
) -> Result<(Vec<(Need, i64)>, HistoryFacts), CommandError> {
    let mut counts = Vec::new();
    let mut history = HistoryFacts::default();
    // Only a shop that limits orders per address needs the fingerprint.
    let address = c
        .shipping_address
        .as_ref()
        .filter(|_| settings.review.address_orders.is_some())
        .map(limits::address_fingerprint);
    let needs = limits::needs(
        settings,
        &c.buyer.id,
        &c.coupon_codes,
        |sku| lines.iter().any(|l| l.sku == sku),
        address,
    );
    for need in needs {
        let current = ws
            .counters
            .get(&CounterKey {
                shop: c.by.shop,
                name: need.name.clone(),
            })
            .map_or(0, |k| k.current(need.rule.window_secs(), now));
        let used = |code: &str| applied.iter().any(|a| a.coupon_code.as_deref() == Some(code));
        let amount = match &need.rule {
            Rule::CouponTotal { code, max } if used(code) => {
                if current >= *max {
                    return Err(CommandError::CouponUsedUp { code: code.clone() });
                }
                1
            }
            Rule::CouponPerBuyer { code, max } if used(code) => {
                if current >= *max {
                    return Err(CommandError::CouponPerBuyerLimit {
                        code: code.clone(),
                        max: *max,
                    });
                }
                1
            }
            Rule::CouponTotal { .. } | Rule::CouponPerBuyer { .. } => continue,
            Rule::Purchases { sku, max, .. } => {
                let units: i64 = lines.iter().filter(|l| &l.sku == sku).map(|l| l.quantity).sum();
                // A channel's order was sold there already: it counts, but is not refused.
                if current + units > *max && c.channel_terms.is_none() {
                    return Err(CommandError::PurchaseLimit {
                        sku: sku.clone(),
                        max: *max,
                        already: current,
                    });
                }
                units
            }
            Rule::BuyerOrders => {
                history.buyer_orders_before = Some(current);
                1
            }
            Rule::AddressOrders { .. } => {
                history.address_orders_in_window = Some(current + 1);
                1
            }
        };
        counts.push((need, amount));
    }
    Ok((counts, history))
}

/// Gives back what an order counted towards limits: all of it when it is
/// cancelled, or the counts `which` picks (an edit that loses a coupon).
pub(super) fn give_back_counts(ws: &mut WorkingSet, order: &mut Order, which: impl Fn(&Counted) -> bool) {
    let (back, kept): (Vec<Counted>, Vec<Counted>) = std::mem::take(&mut order.counted).into_iter().partition(which);
    order.counted = kept;
    for counted in back {
        let key = CounterKey {
            shop: order.shop,
            name: counted.counter.clone(),
        };
        // Only a loaded counter can be changed; the load request names every
        // counter of an order that may be cancelled or edited.
        if ws.counters.contains_key(&key) {
            ws.counter_mut(key).give_back(&counted);
        }
    }
}

/// The order an earlier use of this idempotency key made, if it was used before.
fn replayed_order(ws: &WorkingSet, claim: &IdempotencyClaim) -> Result<Option<OrderId>, CommandError> {
    let Some(rec) = ws.idempotency.get(&(claim.scope.clone(), claim.key.clone())) else {
        return Ok(None);
    };
    if rec.request_hash != claim.request_hash {
        return Err(CommandError::IdempotencyKeyReused);
    }
    let order_id: OrderId = rec.resource.parse().map_err(|_| CommandError::IdempotencyKeyReused)?;
    if !ws.orders.contains_key(&order_id) {
        return Err(CommandError::OrderNotFound);
    }
    Ok(Some(order_id))
}

pub(super) fn remember(
    ws: &mut WorkingSet,
    claim: &IdempotencyClaim,
    status_code: u16,
    resource: String,
    now: Timestamp,
) {
    ws.record_idempotency(IdempotencyRecord {
        scope: claim.scope.clone(),
        key: claim.key.clone(),
        request_hash: claim.request_hash.clone(),
        status_code,
        resource,
        created_at: now,
    });
}

/// The order, if it exists in the caller's shop. Another shop's order is "not found".
pub(super) fn scoped(ws: &WorkingSet, shop: ShopId, id: OrderId) -> Result<&Order, CommandError> {
    ws.orders
        .get(&id)
        .filter(|o| o.shop == shop)
        .ok_or(CommandError::OrderNotFound)
}

pub(super) fn move_stock(
    ws: &mut WorkingSet,
    key: StockKey,
    m: Movement,
    order: Option<OrderId>,
    actor: &Actor,
    now: Timestamp,
) {
    let level = ws.stock.get_mut(&key).expect("stock level is loaded");
    level.apply(m, now);
    let shop = level.shop;
    ws.touch_stock(key);
    ws.record_ledger(LedgerEntry {
        shop,
        sku: key.sku,
        warehouse: key.warehouse,
        on_hand_delta: m.on_hand_delta,
        reserved_delta: m.reserved_delta,
        reason: m.reason,
        order,
        actor: actor.clone(),
        note: None,
        at: now,
    });
}

/// Stock keys and quantities an order holds, summed per key.
fn held_stock(order: &Order) -> BTreeMap<StockKey, i64> {
    held_stock_of(order, |_| true)
}

/// What the lines `pick` chooses hold (lines already shipped hold nothing).
pub(super) fn held_stock_of(order: &Order, pick: impl Fn(usize) -> bool) -> BTreeMap<StockKey, i64> {
    let mut held = BTreeMap::new();
    for (i, l) in order.lines.iter().enumerate() {
        if !pick(i) || order.line_shipped(i) {
            continue;
        }
        if let Some(warehouse) = l.warehouse {
            *held
                .entry(StockKey {
                    sku: l.sku_id,
                    warehouse,
                })
                .or_default() += l.quantity;
        }
    }
    held
}

pub(super) fn ensure_level(ws: &mut WorkingSet, shop: ShopId, key: StockKey, now: Timestamp) {
    ws.stock.entry(key).or_insert_with(|| StockLevel::empty(shop, key, now));
}

/// Releases every reservation the order holds, e.g. on cancel.
pub(super) fn release_all(ws: &mut WorkingSet, order: &Order, actor: &Actor, now: Timestamp) {
    for (key, qty) in held_stock(order) {
        ensure_level(ws, order.shop, key, now);
        let m = ws.stock[&key].release(qty).expect("held quantities are positive");
        if m.reserved_delta != 0 {
            move_stock(ws, key, m, Some(order.id), actor, now);
        }
    }
}

pub(super) fn emit_order(
    ws: &mut WorkingSet,
    order: &Order,
    kind: &'static str,
    payload: impl Into<EventPayload>,
    actor: &Actor,
    now: Timestamp,
) {
    emit_about(ws, order, order.id, kind, payload, actor, now);
}

/// An event of `order`'s shop about `subject` (the order itself, or one of its
/// payments or refunds).
pub(super) fn emit_about(
    ws: &mut WorkingSet,
    order: &Order,
    subject: impl ToString,
    kind: &'static str,
    payload: impl Into<EventPayload>,
    actor: &Actor,
    now: Timestamp,
) {
    ws.emit(NewEvent {
        shop: Some(order.shop),
        subject: subject.to_string(),
        kind,
        payload: payload.into(),
        actor: actor.clone(),
        at: now,
    });
}

/// Moves an order through the state machine on a person's or integration's request.
pub(super) fn step(
    ws: &mut WorkingSet,
    by: &By,
    id: OrderId,
    step: &Step,
    ctx: &mut Context<'_>,
) -> Result<Outcome, CommandError> {
    let mut order = scoped(ws, by.shop, id)?.clone();
    let now = ctx.now;
    match step {
        Step::Cancel(reason) => cancel(ws, &mut order, *reason, None, &by.actor, ctx)?,
        Step::Reject { reason } => {
            if reason.trim().is_empty() {
                return Err(CommandError::Empty { field: "reason" });
            }
            cancel(ws, &mut order, CancelReason::Seller, Some(reason), &by.actor, ctx)?;
        }
        Step::Hold { reason } => {
            if reason.trim().is_empty() {
                return Err(CommandError::Empty { field: "reason" });
            }
            order.apply(OrderEvent::Hold, now)?;
            order.hold_reason = Some(reason.clone());
            emit_order(
                ws,
                &order,
                kinds::ORDER_HELD,
                json!({ "reason": reason }),
                &by.actor,
                now,
            );
        }
        Step::Approve { note } => {
            order.apply(OrderEvent::Approve, now)?;
            let released = order.hold_reason.take();
            emit_order(
                ws,
                &order,
                kinds::ORDER_APPROVED,
                json!({ "note": note, "was_held_for": released }),
                &by.actor,
                now,
            );
        }
        Step::Ship {
            carrier,
            tracking_number,
            parcel,
        } => super::shipping::ship(ws, by, &mut order, carrier, tracking_number, *parcel, ctx)?,
        Step::ConfirmDelivery => {
            order.apply(OrderEvent::ConfirmDelivery, now)?;
            emit_order(ws, &order, kinds::ORDER_DELIVERED, json!({}), &by.actor, now);
        }
        Step::Complete => {
            order.apply(OrderEvent::Complete, now)?;
            emit_order(ws, &order, kinds::ORDER_COMPLETED, json!({}), &by.actor, now);
        }
        Step::DeliverCodes => {
            if !matches!(
                order.status,
                OrderStatus::Paid | OrderStatus::OnHold | OrderStatus::Fulfilling
            ) {
                return Err(crate::order::TransitionError {
                    from: order.status,
                    event: OrderEvent::CodesDelivered,
                }
                .into());
            }
            match super::codes::deliver(ws, &mut order, &by.actor, now) {
                Delivery::Short { sku, needed, available } => {
                    return Err(CommandError::CodePoolShort { sku, needed, available });
                }
                Delivery::NothingOwed => return Err(CommandError::NoCodesOwed),
                Delivery::Delivered if order.lines.iter().all(|l| l.digital) => {
                    order.apply(OrderEvent::CodesDelivered, now)?;
                    order.hold_reason = None;
                    emit_order(ws, &order, kinds::ORDER_DELIVERED, json!({}), &by.actor, now);
                }
                // Physical lines remain: a held order still waits for a person's approval.
                Delivery::Delivered => order.touch(now),
            }
        }
    }
    store_order(ws, order.clone());
    Ok(Outcome::Order {
        order: Box::new(order),
        replayed: false,
    })
}

pub(super) fn store_order(ws: &mut WorkingSet, order: Order) {
    let id = order.id;
    ws.orders.insert(id, order);
    ws.touch_order(id);
}

/// Cancels: releases stock, closes a pending payment and refunds what was captured.
pub(super) fn cancel(
    ws: &mut WorkingSet,
    order: &mut Order,
    reason: CancelReason,
    note: Option<&str>,
    actor: &Actor,
    ctx: &mut Context<'_>,
) -> Result<(), CommandError> {
    let now = ctx.now;
    order.apply(OrderEvent::Cancel(reason), now)?;
    release_all(ws, order, actor, now);
    give_back_counts(ws, order, |_| true);
    if let Some(payments) = ws.payments.get_mut(&order.id) {
        let mut expired = Vec::new();
        for p in payments.iter_mut().filter(|p| p.status == PaymentStatus::Pending) {
            p.resolve(PaymentEvent::Expire, now)
                .expect("pending payments can expire");
            expired.push(p.id);
        }
        for pid in expired {
            ws.touch_payment(order.id, pid);
            emit_about(
                ws,
                order,
                pid,
                kinds::PAYMENT_EXPIRED,
                json!({ "order": order.id }),
                actor,
                now,
            );
        }
    }
    emit_order(
        ws,
        order,
        kinds::ORDER_CANCELLED,
        json!({ "reason": reason, "note": note }),
        actor,
        now,
    );
    let refundable = order.paid_minor - order.refunded_minor;
    if refundable > 0 {
        super::payments::refund_captured(ws, order, refundable, "order cancelled", actor, ctx)?;
    }
    super::payments::refund_foreign_currency(ws, order, "order cancelled", actor, ctx);
    Ok(())
}

/// The unpaid order a timer fired for, if `timer` (its deadline or reminder time)
/// has passed; `None` when the order moved on meanwhile.
fn due_unpaid(
    ws: &WorkingSet,
    shop: ShopId,
    id: OrderId,
    now: Timestamp,
    timer: fn(&Order) -> Option<Timestamp>,
) -> Option<Order> {
    let order = scoped(ws, shop, id).ok()?;
    let due = order.status == OrderStatus::PendingPayment && timer(order).is_some_and(|t| t <= now);
    due.then(|| order.clone())
}

/// The payment-timeout timer's command: cancels the order if it is still unpaid
/// and past its deadline; otherwise does nothing.
pub(super) fn expire_unpaid(
    ws: &mut WorkingSet,
    shop: ShopId,
    id: OrderId,
    ctx: &mut Context<'_>,
) -> Result<Outcome, CommandError> {
    let Some(mut order) = due_unpaid(ws, shop, id, ctx.now, |o| o.payment_due_at) else {
        return Ok(Outcome::Skipped);
    };
    cancel(
        ws,
        &mut order,
        CancelReason::PaymentTimeout,
        None,
        &Actor::system("payment-timeout"),
        ctx,
    )?;
    store_order(ws, order.clone());
    Ok(Outcome::Order {
        order: Box::new(order),
        replayed: false,
    })
}

/// The reminder timer's command: tells the buyer (through the event feed and the
/// notifications built on it) that payment is still due, once.
pub(super) fn remind_unpaid(
    ws: &mut WorkingSet,
    shop: ShopId,
    id: OrderId,
    ctx: &mut Context<'_>,
) -> Result<Outcome, CommandError> {
    let Some(mut order) = due_unpaid(ws, shop, id, ctx.now, |o| o.payment_reminder_at) else {
        return Ok(Outcome::Skipped);
    };
    order.payment_reminder_at = None;
    order.updated_at = ctx.now;
    order.version += 1;
    let payload = json!({
        "payment_due_at": order.payment_due_at, "total_minor": order.pricing.total_minor,
        "currency": order.pricing.currency,
    });
    emit_order(
        ws,
        &order,
        kinds::ORDER_PAYMENT_REMINDER,
        payload,
        &Actor::system("payment-reminder"),
        ctx.now,
    );
    store_order(ws, order.clone());
    Ok(Outcome::Order {
        order: Box::new(order),
        replayed: false,
    })
}
