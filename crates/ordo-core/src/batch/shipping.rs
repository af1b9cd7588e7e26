//! Shipping (A6): an order ships whole, or parcel by parcel when pre-sale lines
//! cannot travel with goods in stock. Stock leaves the ledger with its parcel.

use std::collections::BTreeMap;

use serde_json::json;

use super::orders::{emit_order, ensure_level, held_stock_of, move_stock};
use super::{By, Context, Outcome, ShipTogether, WorkingSet};
use crate::consolidation::check_merge;
use crate::event::kinds;
use crate::order::{Order, OrderEvent, OrderLine, OrderStatus, Parcel, Shipment, TransitionError};
use crate::{CommandError, Timestamp};

/// Parcels for lines that cannot all travel together: goods in stock in one, each
/// pre-sale date in its own. `None` when the order ships as one parcel.
pub(super) fn plan_parcels(lines: &[OrderLine]) -> Vec<Parcel> {
    let physical = (0..lines.len() as u32).filter(|&i| !lines[i as usize].digital);
    let parcels = parcels_by_date(lines, physical);
    if parcels.len() < 2 { Vec::new() } else { parcels }
}

/// One waiting parcel per shipping date (goods in stock first) of the lines at `indexes`.
fn parcels_by_date(lines: &[OrderLine], indexes: impl Iterator<Item = u32>) -> Vec<Parcel> {
    let mut groups: BTreeMap<Option<Timestamp>, Vec<u32>> = BTreeMap::new();
    for i in indexes {
        groups.entry(lines[i as usize].ships_at).or_default().push(i);
    }
    groups
        .into_iter()
        .map(|(ships_at, mut lines)| {
            lines.sort_unstable();
            Parcel {
                lines,
                ships_at,
                shipment: None,
            }
        })
        .collect()
}

/// Ships several orders in one parcel: all or none, under one tracking number.
pub(super) fn ship_together(
    ws: &mut WorkingSet,
    s: &ShipTogether,
    ctx: &mut Context<'_>,
) -> Result<Outcome, CommandError> {
    let mut ids = s.orders.clone();
    ids.sort_unstable();
    ids.dedup();
    let orders = ids
        .iter()
        .map(|id| super::orders::scoped(ws, s.by.shop, *id))
        .collect::<Result<Vec<&Order>, _>>()?;
    let window = ws
        .shops
        .get(&s.by.shop)
        .ok_or(CommandError::ShopNotFound)?
        .merge_window_secs;
    check_merge(&orders, window)?;
    // Check the stock all of them take together, so no order ships unless all can.
    let mut orders: Vec<Order> = orders.into_iter().cloned().collect();
    let mut leaving: BTreeMap<crate::inventory::StockKey, (i64, String)> = BTreeMap::new();
    for order in &orders {
        for (key, qty) in held_stock_of(order, |_| true) {
            let entry = leaving.entry(key).or_insert_with(|| (0, order.sku_code(key.sku)));
            entry.0 += qty;
        }
    }
    for (key, (qty, sku)) in leaving {
        ensure_level(ws, s.by.shop, key, ctx.now);
        ws.stock[&key]
            .ship(qty)
            .map_err(|source| CommandError::Stock { sku, source })?;
    }
    for order in &mut orders {
        ship(ws, &s.by, order, &s.carrier, &s.tracking_number, None, ctx)?;
        super::orders::store_order(ws, order.clone());
    }
    Ok(Outcome::Orders(orders))
}

pub(super) fn ship(
    ws: &mut WorkingSet,
    by: &By,
    order: &mut Order,
    carrier: &str,
    tracking_number: &str,
    parcel: Option<usize>,
    ctx: &Context<'_>,
) -> Result<(), CommandError> {
    let now = ctx.now;
    if carrier.trim().is_empty() {
        return Err(CommandError::Empty { field: "carrier" });
    }
    if tracking_number.trim().is_empty() {
        return Err(CommandError::Empty {
            field: "tracking_number",
        });
    }
    let shipment = Shipment {
        carrier: carrier.to_string(),
        tracking_number: tracking_number.to_string(),
        shipped_at: now,
    };
    // Which lines leave now: the whole order, or one parcel of it.
    let waiting: Vec<usize> = (0..order.parcels.len())
        .filter(|&i| order.parcels[i].shipment.is_none())
        .collect();
    let chosen = match (order.parcels.is_empty(), parcel) {
        (true, None) => None,
        (true, Some(_)) => return Err(CommandError::NoSuchParcel),
        (false, Some(p)) if waiting.contains(&p) => Some(p),
        (false, Some(_)) => return Err(CommandError::NoSuchParcel),
        (false, None) if waiting.len() == 1 => Some(waiting[0]),
        (false, None) => return Err(CommandError::ParcelRequired { parcels: waiting.len() }),
    };
    let last = chosen.is_none() || waiting.len() == 1;
    if order.status != OrderStatus::Fulfilling {
        return Err(TransitionError {
            from: order.status,
            event: OrderEvent::Ship,
        }
        .into());
    }
    // Pre-sale goods wait for their date, whether in a parcel of their own or
    // making up the whole order.
    let ships_at = match chosen {
        Some(p) => order.parcels[p].ships_at,
        None => order.lines.iter().filter_map(|l| l.ships_at).max(),
    };
    if let Some(ships_at) = ships_at.filter(|t| *t > now) {
        return Err(CommandError::PresaleNotReady { ships_at });
    }
    // Money an edit asked for must arrive before the goods leave (cash on delivery
    // is collected by the carrier).
    if order.payment_method.as_deref() != Some(crate::channel::CASH_ON_DELIVERY)
        && let Some(due) = ws
            .payments
            .get(&order.id)
            .and_then(|ps| ps.iter().find(|p| p.status == crate::payment::PaymentStatus::Pending))
    {
        return Err(CommandError::PaymentDue {
            due_minor: due.expected_minor,
        });
    }
    let lines: Option<&[u32]> = chosen.map(|p| order.parcels[p].lines.as_slice());
    let leaving = held_stock_of(order, |i| lines.is_none_or(|ls| ls.contains(&(i as u32))));
    for (key, qty) in &leaving {
        ensure_level(ws, order.shop, *key, now);
        ws.stock[key].ship(*qty).map_err(|source| CommandError::Stock {
            sku: order.sku_code(key.sku),
            source,
        })?;
    }
    // From here on nothing fails.
    if last {
        order.apply(OrderEvent::Ship, now)?;
        order.shipment = Some(shipment.clone());
    } else {
        order.touch(now);
    }
    for (key, qty) in leaving {
        let m = ws.stock[&key].ship(qty).expect("checked above");
        move_stock(ws, key, m, Some(order.id), &by.actor, now);
    }
    if let Some(p) = chosen {
        order.parcels[p].shipment = Some(shipment);
    }
    let kind = if last {
        kinds::ORDER_SHIPPED
    } else {
        kinds::ORDER_PARCEL_SHIPPED
    };
    emit_order(
        ws,
        order,
        kind,
        json!({ "carrier": carrier, "tracking_number": tracking_number, "parcel": chosen }),
        &by.actor,
        now,
    );
    Ok(())
}

/// A SKU's pre-sale date moved (or the pre-sale ended): each named order's
/// unshipped pre-sale lines of it now ship from the catalogue's date, and its
/// waiting parcels are planned again. Returns the orders that changed.
pub(super) fn reschedule_presale(
    ws: &mut WorkingSet,
    r: &super::ReschedulePresale,
    ctx: &mut Context<'_>,
) -> Result<Outcome, CommandError> {
    let now = ctx.now;
    let product = ws
        .products
        .get(&(r.by.shop, r.sku.clone()))
        .ok_or_else(|| CommandError::UnknownSku { sku: r.sku.clone() })?;
    let (sku, ships_at) = (product.id, product.presale_ships_at.filter(|t| *t > now));
    let mut changed = Vec::new();
    for &id in &r.orders {
        let Ok(order) = super::orders::scoped(ws, r.by.shop, id) else {
            continue;
        };
        if !order.status.before_shipment() {
            continue;
        }
        let mut order = order.clone();
        let mut before = None;
        for i in 0..order.lines.len() {
            let shipped = order.line_shipped(i);
            let line = &mut order.lines[i];
            if line.sku_id == sku && line.ships_at.is_some() && !shipped && line.ships_at != ships_at {
                before = before.or(line.ships_at);
                line.ships_at = ships_at;
            }
        }
        let Some(before) = before else { continue };
        order.parcels = replan_waiting(&order);
        order.touch(now);
        emit_order(
            ws,
            &order,
            kinds::ORDER_PRESALE_RESCHEDULED,
            json!({ "sku": r.sku, "ships_at": ships_at, "before": before }),
            &r.by.actor,
            now,
        );
        super::orders::store_order(ws, order.clone());
        changed.push(order);
    }
    Ok(Outcome::Orders(changed))
}

/// Parcels after a line's date changed: shipped parcels stay as they are (their
/// numbers too); the lines still waiting are grouped by date again.
fn replan_waiting(order: &Order) -> Vec<Parcel> {
    if order.parcels.iter().all(|p| p.shipment.is_none()) {
        return plan_parcels(&order.lines);
    }
    let (shipped, waiting): (Vec<&Parcel>, Vec<&Parcel>) = order.parcels.iter().partition(|p| p.shipment.is_some());
    let waiting_lines = waiting.iter().flat_map(|p| p.lines.iter().copied());
    shipped
        .into_iter()
        .cloned()
        .chain(parcels_by_date(&order.lines, waiting_lines))
        .collect()
}
