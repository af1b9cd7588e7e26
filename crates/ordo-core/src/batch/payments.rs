use serde_json::json;

use super::codes::Delivery;
use super::orders::{cancel, emit_about, emit_order, remember, scoped, store_order};
use super::{By, Context, NoticeRecord, Outcome, PaymentResult, RefundRequest, WorkingSet};
use crate::auth::Actor;
use crate::catalog::review;
use crate::event::payloads::{Auto, Captured, Paid};
use crate::event::{EventPayload, kinds};
use crate::order::{CancelReason, Order, OrderEvent, OrderStatus};
use crate::payment::{AmountCheck, Payment, PaymentEvent, PaymentNotice, PaymentStatus, Refund, check_amount};
use crate::{CommandError, OrderId, PaymentId, RefundId};

pub(super) fn notice(ws: &mut WorkingSet, n: &PaymentNotice, ctx: &mut Context<'_>) -> Result<Outcome, CommandError> {
    let now = ctx.now;
    let mut order = scoped(ws, n.shop, n.order)?.clone();
    if ws
        .notices
        .contains(&(n.shop, n.gateway.clone(), n.transaction_id.clone()))
    {
        return Ok(Outcome::Payment {
            order: n.order,
            result: PaymentResult::AlreadyProcessed,
        });
    }
    if n.amount_minor < 0 || n.transaction_id.is_empty() {
        return Err(CommandError::Empty {
            field: "transaction_id",
        });
    }
    ws.record_notice(NoticeRecord {
        shop: n.shop,
        gateway: n.gateway.clone(),
        transaction_id: n.transaction_id.clone(),
        order: n.order,
        succeeded: n.succeeded,
        amount_minor: n.amount_minor,
        currency: n.currency,
        at: now,
    });
    let actor = Actor::gateway(&n.gateway);
    let pending = ws
        .payments
        .get(&n.order)
        .and_then(|ps| ps.iter().position(|p| p.status == PaymentStatus::Pending))
        .filter(|_| order.status == OrderStatus::PendingPayment);

    if !n.succeeded {
        if let Some(i) = pending {
            // The attempt failed; the buyer may pay again until the timeout.
            let payments = ws.payments.get_mut(&n.order).expect("pending payment exists");
            let p = &mut payments[i];
            p.resolve(PaymentEvent::Fail, now)?;
            p.gateway = Some(n.gateway.clone());
            p.transaction_id = Some(n.transaction_id.clone());
            let (pid, expected, currency) = (p.id, p.expected_minor, p.currency);
            ws.touch_payment(n.order, pid);
            emit_about(
                ws,
                &order,
                pid,
                kinds::PAYMENT_FAILED,
                json!({ "order": order.id, "transaction_id": n.transaction_id }),
                &actor,
                now,
            );
            ws.insert_payment(new_payment(
                PaymentId(ctx.ids.next_id()),
                &order,
                expected,
                currency,
                now,
            ));
        }
        return Ok(Outcome::Payment {
            order: n.order,
            result: PaymentResult::Failed,
        });
    }

    let same_currency = n.currency == order.pricing.currency;
    // A further payment an edit asked for, on an order that moved on from payment.
    let supplement = ws
        .payments
        .get(&n.order)
        .and_then(|ps| ps.iter().position(|p| p.status == PaymentStatus::Pending))
        .filter(|_| !matches!(order.status, OrderStatus::PendingPayment | OrderStatus::Cancelled));
    if let Some(i) = supplement {
        let check = capture_pending(ws, &mut order, i, n, &actor, now)?;
        order.touch(now);
        let result = if check == AmountCheck::Exact {
            PaymentResult::Captured
        } else {
            let why = mismatch_text(check, &order, n);
            order.payment_exception = Some(why.clone());
            let payload = json!({ "check": check, "detail": why });
            emit_order(ws, &order, kinds::ORDER_PAYMENT_EXCEPTION, payload, &actor, now);
            PaymentResult::Mismatch(check)
        };
        store_order(ws, order);
        return Ok(Outcome::Payment { order: n.order, result });
    }
    let result = match pending {
        Some(i) => {
            let check = capture_pending(ws, &mut order, i, n, &actor, now)?;
            if check == AmountCheck::Exact {
                order.apply(OrderEvent::PaymentCaptured, now)?;
                emit_order(
                    ws,
                    &order,
                    kinds::ORDER_PAID,
                    EventPayload::of(&Paid {
                        total_minor: order.pricing.total_minor,
                    }),
                    &actor,
                    now,
                );
                after_payment(ws, &mut order, &actor, now)?;
                PaymentResult::Captured
            } else {
                order.apply(OrderEvent::PaymentMismatched, now)?;
                let why = mismatch_text(check, &order, n);
                order.payment_exception = Some(why.clone());
                emit_order(
                    ws,
                    &order,
                    kinds::ORDER_PAYMENT_EXCEPTION,
                    json!({ "check": check, "detail": why }),
                    &actor,
                    now,
                );
                PaymentResult::Mismatch(check)
            }
        }
        None => {
            // No payment is expected any more (cancelled, already paid): keep the money
            // on record, flag the order, and let a person refund it.
            let mut p = new_payment(PaymentId(ctx.ids.next_id()), &order, 0, order.pricing.currency, now);
            p.resolve(PaymentEvent::Capture, now)?;
            capture_into(&mut p, n);
            let pid = p.id;
            ws.insert_payment(p);
            if same_currency {
                order.paid_minor += n.amount_minor;
            }
            let why = format!(
                "unexpected payment {} {} while the order is {}",
                n.amount_minor,
                n.currency,
                order.status.as_str()
            );
            order.payment_exception = Some(why.clone());
            order.updated_at = now;
            order.version += 1;
            emit_capture(ws, &order, pid, n, &actor, now);
            emit_order(
                ws,
                &order,
                kinds::ORDER_PAYMENT_EXCEPTION,
                json!({ "check": "unexpected", "detail": why }),
                &actor,
                now,
            );
            PaymentResult::Unexpected
        }
    };
    store_order(ws, order);
    Ok(Outcome::Payment { order: n.order, result })
}

/// Captures the order's pending payment at index `i` with the notice's money and
/// says how the amount compares with what it expected.
fn capture_pending(
    ws: &mut WorkingSet,
    order: &mut Order,
    i: usize,
    n: &PaymentNotice,
    actor: &Actor,
    now: crate::Timestamp,
) -> Result<AmountCheck, CommandError> {
    let payments = ws.payments.get_mut(&n.order).expect("pending payment exists");
    let p = &mut payments[i];
    p.resolve(PaymentEvent::Capture, now)?;
    capture_into(p, n);
    let check = check_amount(p.expected_minor, p.currency, n.amount_minor, n.currency);
    let pid = p.id;
    ws.touch_payment(n.order, pid);
    if n.currency == order.pricing.currency {
        order.paid_minor += n.amount_minor;
    }
    emit_capture(ws, order, pid, n, actor, now);
    Ok(check)
}

fn capture_into(p: &mut Payment, n: &PaymentNotice) {
    p.gateway = Some(n.gateway.clone());
    p.transaction_id = Some(n.transaction_id.clone());
    p.captured_minor = n.amount_minor;
    p.captured_currency = Some(n.currency);
}

/// A further payment the buyer owes (an edit raised the total); returns its id.
pub(super) fn new_pending_payment(
    ws: &mut WorkingSet,
    order: &Order,
    amount_minor: i64,
    ctx: &mut Context<'_>,
) -> PaymentId {
    let p = new_payment(
        PaymentId(ctx.ids.next_id()),
        order,
        amount_minor,
        order.pricing.currency,
        ctx.now,
    );
    let id = p.id;
    ws.insert_payment(p);
    id
}

fn new_payment(
    id: PaymentId,
    order: &Order,
    expected_minor: i64,
    currency: crate::Currency,
    now: crate::Timestamp,
) -> Payment {
    Payment {
        id,
        shop: order.shop,
        order: order.id,
        gateway: None,
        transaction_id: None,
        status: PaymentStatus::Pending,
        expected_minor,
        currency,
        captured_minor: 0,
        captured_currency: None,
        refunded_minor: 0,
        created_at: now,
        resolved_at: None,
    }
}

fn mismatch_text(check: AmountCheck, order: &Order, n: &PaymentNotice) -> String {
    let want = format!("{} {}", order.pricing.total_minor, order.pricing.currency);
    let got = format!("{} {}", n.amount_minor, n.currency);
    match check {
        AmountCheck::Under => format!("under-paid: expected {want}, captured {got}"),
        AmountCheck::Over => format!("over-paid: expected {want}, captured {got}"),
        AmountCheck::WrongCurrency => format!("wrong currency: expected {want}, captured {got}"),
        AmountCheck::Exact => String::new(),
    }
}

fn emit_capture(
    ws: &mut WorkingSet,
    order: &Order,
    pid: PaymentId,
    n: &PaymentNotice,
    actor: &Actor,
    now: crate::Timestamp,
) {
    let payload = EventPayload::of(&Captured {
        amount_minor: n.amount_minor,
        currency: n.currency,
        gateway: &n.gateway,
        order: order.id,
        transaction_id: &n.transaction_id,
    });
    emit_about(ws, order, pid, kinds::PAYMENT_CAPTURED, payload, actor, now);
}

/// Cash on delivery: the order proceeds to review and fulfilment unpaid; its
/// payment stays pending for the carrier to collect, and no timeout cancels it.
pub(super) fn accept_cash_on_delivery(
    ws: &mut WorkingSet,
    id: crate::OrderId,
    actor: &Actor,
    now: crate::Timestamp,
) -> Result<(), CommandError> {
    let mut order = ws.orders.get(&id).cloned().ok_or(CommandError::OrderNotFound)?;
    order.apply(OrderEvent::CashOnDeliveryAccepted, now)?;
    order.payment_due_at = None;
    order.payment_reminder_at = None;
    emit_order(
        ws,
        &order,
        kinds::ORDER_COD_ACCEPTED,
        json!({ "amount_due_minor": order.pricing.total_minor, "currency": order.pricing.currency }),
        actor,
        now,
    );
    after_payment(ws, &mut order, actor, now)?;
    store_order(ws, order);
    Ok(())
}

/// What follows payment: virtual lines take their codes (an order of virtual
/// lines only is then delivered, a short pool holds it for a person); what is
/// left to ship goes to review.
pub(super) fn after_payment(
    ws: &mut WorkingSet,
    order: &mut Order,
    actor: &Actor,
    now: crate::Timestamp,
) -> Result<(), CommandError> {
    match super::codes::deliver(ws, order, actor, now) {
        Delivery::Short { sku, needed, available } => {
            order.apply(OrderEvent::Hold, now)?;
            let reason = format!("code pool of SKU {sku} has {available} code(s), {needed} needed");
            order.hold_reason = Some(reason.clone());
            let payload = json!({ "reasons": [reason], "code": "code-pool-short", "auto": true });
            emit_order(ws, order, kinds::ORDER_HELD, payload, actor, now);
            Ok(())
        }
        Delivery::Delivered if order.lines.iter().all(|l| l.digital) => {
            order.apply(OrderEvent::CodesDelivered, now)?;
            emit_order(
                ws,
                order,
                kinds::ORDER_DELIVERED,
                EventPayload::of(&Auto { auto: true }),
                actor,
                now,
            );
            Ok(())
        }
        Delivery::Delivered | Delivery::NothingOwed => auto_review(ws, order, actor, now),
    }
}

/// A paid order goes straight to fulfilment unless the shop's review holds it.
fn auto_review(
    ws: &mut WorkingSet,
    order: &mut Order,
    actor: &Actor,
    now: crate::Timestamp,
) -> Result<(), CommandError> {
    let settings = ws.shops.get(&order.shop).ok_or(CommandError::ShopNotFound)?;
    let reasons = review(settings, order);
    if reasons.is_empty() {
        order.apply(OrderEvent::Approve, now)?;
        emit_order(
            ws,
            order,
            kinds::ORDER_APPROVED,
            EventPayload::of(&Auto { auto: true }),
            actor,
            now,
        );
    } else {
        order.apply(OrderEvent::Hold, now)?;
        order.hold_reason = Some(reasons.join("; "));
        emit_order(
            ws,
            order,
            kinds::ORDER_HELD,
            json!({ "reasons": reasons, "auto": true }),
            actor,
            now,
        );
    }
    Ok(())
}

pub(super) fn resolve_exception(
    ws: &mut WorkingSet,
    by: &By,
    id: OrderId,
    accept: bool,
    ctx: &mut Context<'_>,
) -> Result<Outcome, CommandError> {
    let mut order = scoped(ws, by.shop, id)?.clone();
    // A mismatch on a further or cash-on-delivery payment flags an order that has
    // already moved on, without the payment_exception status.
    let flag_only = order.status != OrderStatus::PaymentException;
    if flag_only && order.payment_exception.is_none() {
        return Err(CommandError::NoPaymentException);
    }
    let now = ctx.now;
    if accept && flag_only {
        let detail = order.payment_exception.take();
        order.touch(now);
        emit_order(
            ws,
            &order,
            kinds::ORDER_PAYMENT_EXCEPTION_RESOLVED,
            json!({ "detail": detail }),
            &by.actor,
            now,
        );
    } else if accept {
        order.apply(OrderEvent::PaymentAccepted, now)?;
        order.payment_exception = None;
        emit_order(
            ws,
            &order,
            kinds::ORDER_PAID,
            json!({ "accepted_by_person": true }),
            &by.actor,
            now,
        );
        after_payment(ws, &mut order, &by.actor, now)?;
    } else {
        cancel(
            ws,
            &mut order,
            CancelReason::Seller,
            Some("payment exception: refunded and cancelled"),
            &by.actor,
            ctx,
        )?;
        order.payment_exception = None;
    }
    store_order(ws, order.clone());
    Ok(Outcome::Order {
        order: Box::new(order),
        replayed: false,
    })
}

pub(super) fn refund(ws: &mut WorkingSet, r: &RefundRequest, ctx: &mut Context<'_>) -> Result<Outcome, CommandError> {
    if let Some(claim) = &r.idempotency
        && let Some(rec) = ws.idempotency.get(&(claim.scope.clone(), claim.key.clone()))
    {
        if rec.request_hash != claim.request_hash {
            return Err(CommandError::IdempotencyKeyReused);
        }
        let order = scoped(ws, r.by.shop, r.order)?.clone();
        let refunds = rec.resource.split(',').filter_map(|s| s.parse().ok()).collect();
        return Ok(Outcome::Refunds {
            order: Box::new(order),
            refunds,
            replayed: true,
        });
    }
    let mut order = scoped(ws, r.by.shop, r.order)?.clone();
    if r.reason.trim().is_empty() {
        return Err(CommandError::Empty { field: "reason" });
    }
    let amount = if r.lines.is_empty() {
        r.amount_minor
    } else {
        refund_lines(&mut order, &r.lines)?
    };
    let refunds = refund_captured(ws, &mut order, amount, &r.reason, &r.by.actor, ctx)?;
    order.updated_at = ctx.now;
    order.version += 1;
    store_order(ws, order.clone());
    if let Some(claim) = &r.idempotency {
        let ids: Vec<String> = refunds.iter().map(ToString::to_string).collect();
        remember(ws, claim, 201, ids.join(","), ctx.now);
    }
    Ok(Outcome::Refunds {
        order: Box::new(order),
        refunds,
        replayed: false,
    })
}

/// Marks units of lines refunded and returns what they come to; fails (changing
/// nothing the caller keeps) on an unknown line or more units than are left.
fn refund_lines(order: &mut Order, lines: &[super::LineRefund]) -> Result<i64, CommandError> {
    let mut total = 0i64;
    for r in lines {
        let line = order
            .lines
            .get_mut(r.line)
            .ok_or(CommandError::NoSuchLine { line: r.line })?;
        let amount = line.refund_for(r.quantity).ok_or(CommandError::LineRefundQuantity {
            line: r.line,
            left: line.quantity - line.refunded_quantity,
        })?;
        line.refunded_quantity += r.quantity;
        line.refunded_minor += amount;
        total += amount;
    }
    Ok(total)
}

/// Refunds `amount` from the order's captured payments, oldest first. Fails without
/// change when more is asked than is refundable.
pub(super) fn refund_captured(
    ws: &mut WorkingSet,
    order: &mut Order,
    amount: i64,
    reason: &str,
    actor: &Actor,
    ctx: &mut Context<'_>,
) -> Result<Vec<RefundId>, CommandError> {
    let currency = order.pricing.currency;
    let payments = ws.payments.get(&order.id).map(Vec::as_slice).unwrap_or_default();
    let refundable: i64 = payments
        .iter()
        .filter(|p| p.captured_currency == Some(currency))
        .map(Payment::refundable_minor)
        .sum();
    if amount <= 0 || amount > refundable {
        return Err(CommandError::RefundExceedsCaptured {
            requested: amount,
            refundable,
        });
    }
    let mut left = amount;
    let mut made = Vec::new();
    for p in ws.payments.get_mut(&order.id).into_iter().flatten() {
        let part = p.refundable_minor().min(left);
        if p.captured_currency == Some(currency) && part > 0 {
            left -= part;
            made.push(take_refund(p, part, currency, order, reason, actor, ctx));
        }
    }
    order.refunded_minor += amount;
    Ok(record_refunds(ws, order, made, reason, actor, ctx.now))
}

/// Refunds in full every payment captured in another currency than the order's
/// (a wrong-currency or stray payment): that money never counts toward the order,
/// so when the order is cancelled it goes back as it came.
pub(super) fn refund_foreign_currency(
    ws: &mut WorkingSet,
    order: &Order,
    reason: &str,
    actor: &Actor,
    ctx: &mut Context<'_>,
) {
    let mut made = Vec::new();
    for p in ws.payments.get_mut(&order.id).into_iter().flatten() {
        let part = p.refundable_minor();
        if let Some(currency) = p.captured_currency.filter(|c| *c != order.pricing.currency)
            && part > 0
        {
            made.push(take_refund(p, part, currency, order, reason, actor, ctx));
        }
    }
    record_refunds(ws, order, made, reason, actor, ctx.now);
}

/// Takes `part` out of a captured payment as a refund record.
fn take_refund(
    p: &mut Payment,
    part: i64,
    currency: crate::Currency,
    order: &Order,
    reason: &str,
    actor: &Actor,
    ctx: &mut Context<'_>,
) -> Refund {
    p.refunded_minor += part;
    Refund {
        id: RefundId(ctx.ids.next_id()),
        shop: order.shop,
        order: order.id,
        payment: p.id,
        amount_minor: part,
        currency,
        reason: reason.to_string(),
        actor: actor.clone(),
        created_at: ctx.now,
    }
}

/// Marks the refunded payments changed, emits `refund.created` for each refund and
/// records it.
fn record_refunds(
    ws: &mut WorkingSet,
    order: &Order,
    made: Vec<Refund>,
    reason: &str,
    actor: &Actor,
    now: crate::Timestamp,
) -> Vec<RefundId> {
    let ids = made.iter().map(|r| r.id).collect();
    for refund in made {
        ws.touch_payment(order.id, refund.payment);
        let payload = json!({
            "order": order.id, "payment": refund.payment, "amount_minor": refund.amount_minor,
            "currency": refund.currency, "reason": reason,
        });
        emit_about(ws, order, refund.id, kinds::REFUND_CREATED, payload, actor, now);
        ws.record_refund(refund);
    }
    ids
}
