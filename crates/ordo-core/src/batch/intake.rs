//! A channel order arriving: recorded as received whatever happens, then placed
//! if it could be mapped. A re-send of a mapped order returns what it became; a
//! re-send (or a retry) of an unmapped one tries again with what it carries now.

use serde_json::json;

use super::{ChannelIntake, Context, EditOrder, Outcome, WorkingSet};
use crate::channel::{ChannelPayment, RawChannelOrder, RawStatus};
use crate::event::payloads::Received;
use crate::event::{EventPayload, NewEvent, kinds};
use crate::order::{CancelReason, OrderEvent, OrderStatus, transition};
use crate::payment::PaymentNotice;
use crate::{ChannelOrderId, CommandError, OrderId};

/// A later delivery of a mapped order (Shopify's `orders/paid`, WooCommerce's
/// `order.updated`) may say the channel captured the payment since: apply it.
fn paid_since(ws: &mut WorkingSet, c: &ChannelIntake, id: OrderId, ctx: &mut Context<'_>) -> Result<(), CommandError> {
    let Ok(place) = &c.mapped else { return Ok(()) };
    let Some(ChannelPayment::Paid {
        amount_minor,
        reference,
    }) = place.channel_terms.as_ref().map(|t| &t.payment)
    else {
        return Ok(());
    };
    let Some(order) = ws.orders.get(&id).filter(|o| o.status == OrderStatus::PendingPayment) else {
        return Ok(());
    };
    let notice = PaymentNotice {
        shop: order.shop,
        gateway: c.channel.clone(),
        order: id,
        transaction_id: reference.clone(),
        succeeded: true,
        amount_minor: *amount_minor,
        currency: order.pricing.currency,
    };
    super::payments::notice(ws, &notice, ctx).map(|_| ())
}

/// Records, against the raw channel order, something the channel asked for that
/// Ordo could not do and a person must handle; `payload` gains the channel and its id.
fn tell_a_person(
    ws: &mut WorkingSet,
    c: &ChannelIntake,
    raw: &RawChannelOrder,
    kind: &'static str,
    mut payload: serde_json::Value,
    ctx: &Context<'_>,
) {
    payload["channel"] = json!(c.channel);
    payload["external_id"] = json!(c.external_id);
    ws.emit(NewEvent {
        shop: Some(c.shop),
        subject: raw.id.to_string(),
        kind,
        payload: payload.into(),
        actor: c.actor.clone(),
        at: ctx.now,
    });
}

/// A later delivery says the channel cancelled the order (Shopify's
/// `orders/cancelled`, WooCommerce status `cancelled`): cancel it too — stock
/// released, what was captured refunded — unless it has already left the
/// warehouse, which a person must then handle (`channel_order.cancel_refused`).
fn cancelled_since(
    ws: &mut WorkingSet,
    c: &ChannelIntake,
    raw: &RawChannelOrder,
    id: OrderId,
    ctx: &mut Context<'_>,
) -> Result<(), CommandError> {
    let Some(order) = ws.orders.get(&id) else { return Ok(()) };
    if order.status == OrderStatus::Cancelled {
        return Ok(());
    }
    let cancel = OrderEvent::Cancel(CancelReason::Platform);
    if transition(order.status, cancel).is_err() {
        if raw.cancel_refused {
            return Ok(());
        }
        let status = order.status.as_str();
        tell_a_person(
            ws,
            c,
            raw,
            kinds::CHANNEL_ORDER_CANCEL_REFUSED,
            json!({ "order": id, "status": status }),
            ctx,
        );
        ws.put_channel_order(RawChannelOrder {
            cancel_refused: true,
            updated_at: ctx.now,
            ..raw.clone()
        });
        return Ok(());
    }
    let mut order = order.clone();
    let note = format!("cancelled at {}", c.channel);
    super::orders::cancel(ws, &mut order, CancelReason::Platform, Some(&note), &c.actor, ctx)?;
    super::orders::store_order(ws, order);
    Ok(())
}

/// A later delivery may carry a shipping address the channel changed since
/// (Shopify's `orders/updated`, a marketplace's re-export): the order is edited to
/// it (a revision, `order.edited`) while it has not shipped. Once it has, or if the
/// new address does not validate, a person is told (`channel_order.change_refused`).
/// Either way the raw channel order remembers the address, so a re-delivery of the
/// same change does nothing and an edit made in Ordo is not undone by a delivery
/// that repeats the old address.
fn address_since(
    ws: &mut WorkingSet,
    c: &ChannelIntake,
    raw: &RawChannelOrder,
    id: OrderId,
    ctx: &mut Context<'_>,
) -> Result<(), CommandError> {
    let Ok(place) = &c.mapped else { return Ok(()) };
    let Some(sent) = &place.shipping_address else {
        return Ok(());
    };
    let fingerprint = crate::limits::address_fingerprint(sent);
    let Some(order) = ws.orders.get(&id) else { return Ok(()) };
    let unchanged = match raw.channel_address {
        Some(last) => last == fingerprint,
        // Received before addresses were remembered: compare with the order's.
        None => order.shipping_address.as_ref().map(crate::limits::address_fingerprint) == Some(fingerprint),
    };
    if unchanged || order.status == OrderStatus::Cancelled {
        return Ok(());
    }
    let edit = EditOrder {
        by: place.by.clone(),
        order: id,
        expected_version: order.version,
        lines: None,
        shipping_address: Some(sent.clone()),
        reason: Some(format!("address changed at {}", c.channel)),
    };
    if let Err(refused) = super::edits::edit(ws, &edit, ctx) {
        let status = ws.orders.get(&id).map(|o| o.status.as_str());
        let payload = json!({
            "order": id, "status": status, "change": "shipping_address",
            "reason_code": refused.code(), "reason": refused.to_string(),
        });
        tell_a_person(ws, c, raw, kinds::CHANNEL_ORDER_CHANGE_REFUSED, payload, ctx);
    }
    ws.put_channel_order(RawChannelOrder {
        channel_address: Some(fingerprint),
        updated_at: ctx.now,
        ..raw.clone()
    });
    Ok(())
}

pub(super) fn intake(ws: &mut WorkingSet, c: &ChannelIntake, ctx: &mut Context<'_>) -> Result<Outcome, CommandError> {
    if !ws.shops.contains_key(&c.shop) {
        return Err(CommandError::ShopNotFound);
    }
    let key = (c.shop, c.channel.clone(), c.external_id.clone());
    let known = ws.channel_orders.get(&key).cloned();
    if let Some(raw) = &known
        && raw.status == RawStatus::Mapped
    {
        if let Some(id) = raw.order {
            paid_since(ws, c, id, ctx)?;
            if c.cancelled {
                cancelled_since(ws, c, raw, id, ctx)?;
            } else {
                address_since(ws, c, raw, id, ctx)?;
            }
        }
        return Ok(Outcome::ChannelOrder {
            raw: Box::new(raw.clone()),
            order: raw.order,
            replayed: true,
        });
    }
    let now = ctx.now;
    let mut raw = known.unwrap_or_else(|| RawChannelOrder {
        id: ChannelOrderId(ctx.ids.next_id()),
        shop: c.shop,
        channel: c.channel.clone(),
        external_id: c.external_id.clone(),
        status: RawStatus::Unmapped,
        reason_code: None,
        reason: None,
        order: None,
        deliveries: 0,
        cancel_refused: false,
        channel_address: None,
        received_at: now,
        updated_at: now,
        body: Default::default(),
    });
    raw.deliveries += 1;
    raw.updated_at = now;
    raw.body = c.body.clone();

    let placed = match &c.mapped {
        // Nothing to place: the channel cancelled it before Ordo could.
        _ if c.cancelled => Err((
            "cancelled-at-channel".to_string(),
            format!("{} cancelled this order before it was placed in Ordo", c.channel),
        )),
        Ok(place) => super::orders::place_order(ws, place, ctx).map_err(|e| (e.code().to_string(), e.to_string())),
        Err(u) => Err((u.code.clone(), u.reason.clone())),
    };
    let order = match placed {
        Ok((id, _)) => {
            raw.status = RawStatus::Mapped;
            raw.reason_code = None;
            raw.reason = None;
            raw.order = Some(id);
            raw.channel_address = ws
                .orders
                .get(&id)
                .and_then(|o| o.shipping_address.as_ref())
                .map(crate::limits::address_fingerprint);
            Some(id)
        }
        Err((code, reason)) => {
            raw.status = RawStatus::Unmapped;
            raw.reason_code = Some(code);
            raw.reason = Some(reason);
            None
        }
    };
    let kind = match raw.status {
        RawStatus::Mapped => kinds::CHANNEL_ORDER_RECEIVED,
        RawStatus::Unmapped => kinds::CHANNEL_ORDER_UNMAPPED,
    };
    ws.emit(NewEvent {
        shop: Some(c.shop),
        subject: raw.id.to_string(),
        kind,
        payload: EventPayload::of(&Received {
            channel: &raw.channel,
            deliveries: raw.deliveries,
            external_id: &raw.external_id,
            order: raw.order,
            reason: raw.reason.as_deref(),
            reason_code: raw.reason_code.as_deref(),
        }),
        actor: c.actor.clone(),
        at: now,
    });
    ws.put_channel_order(raw.clone());
    Ok(Outcome::ChannelOrder {
        raw: Box::new(raw),
        order,
        replayed: false,
    })
}
