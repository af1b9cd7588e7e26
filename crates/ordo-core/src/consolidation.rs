//! Merging shipments (A6, 合并发货): paid, unshipped orders of one buyer to one
//! address, placed within the shop's window, travel as one parcel. Orders paid
//! cash on delivery never merge (each carries its own amount to collect), and an
//! order split into parcels (pre-sale) ships by its parcels.

use std::collections::BTreeMap;

use crate::channel::CASH_ON_DELIVERY;
use crate::limits::address_fingerprint;
use crate::order::{Order, OrderStatus};
use crate::{OrderId, Timestamp};

/// Default window within which one buyer's orders to one address merge.
pub const MERGE_WINDOW_SECS_DEFAULT: i64 = 24 * 3600;

/// Why orders cannot ship as one parcel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MergeRefused {
    #[error("an order is not waiting to ship")]
    NotFulfilling,
    #[error("the orders are not for one buyer at one address")]
    DifferentBuyerOrAddress,
    #[error("cash-on-delivery orders ship on their own")]
    CashOnDelivery,
    #[error("an order holds pre-sale goods, which ship on their own date")]
    SplitOrder,
    #[error("the orders were placed further apart than the shop's merge window")]
    OutsideWindow,
    #[error("give at least two distinct orders")]
    TooFew,
}

fn mergeable(o: &Order) -> Result<(), MergeRefused> {
    if o.status != OrderStatus::Fulfilling {
        return Err(MergeRefused::NotFulfilling);
    }
    if o.payment_method.as_deref() == Some(CASH_ON_DELIVERY) {
        return Err(MergeRefused::CashOnDelivery);
    }
    if !o.parcels.is_empty() || o.lines.iter().any(|l| l.ships_at.is_some()) {
        return Err(MergeRefused::SplitOrder);
    }
    Ok(())
}

/// Where an order goes: its buyer and address.
fn destination(o: &Order) -> Option<(&str, u64)> {
    o.shipping_address
        .as_ref()
        .map(|a| (o.buyer.id.as_str(), address_fingerprint(a)))
}

/// Checks that `orders` may ship as one parcel.
pub fn check_merge(orders: &[&Order], window_secs: i64) -> Result<(), MergeRefused> {
    if orders.len() < 2 {
        return Err(MergeRefused::TooFew);
    }
    for o in orders {
        mergeable(o)?;
    }
    let first = destination(orders[0]).ok_or(MergeRefused::DifferentBuyerOrAddress)?;
    if orders.iter().any(|o| destination(o) != Some(first)) {
        return Err(MergeRefused::DifferentBuyerOrAddress);
    }
    let placed = orders.iter().map(|o| o.created_at);
    let (earliest, latest) = (placed.clone().min(), placed.max());
    if let (Some(a), Some(b)) = (earliest, latest)
        && a.plus_secs(window_secs) < b
    {
        return Err(MergeRefused::OutsideWindow);
    }
    Ok(())
}

/// The groups of orders that should ship together, each oldest first: every
/// mergeable order joins the open group of its buyer and address if placed within
/// the window of that group's first order, else opens a new one.
pub fn merge_groups(orders: &[Order], window_secs: i64) -> Vec<Vec<OrderId>> {
    let mut candidates: Vec<&Order> = orders.iter().filter(|o| mergeable(o).is_ok()).collect();
    candidates.sort_by_key(|o| (o.created_at, o.id));
    let mut open: BTreeMap<(&str, u64), (Timestamp, Vec<OrderId>)> = BTreeMap::new();
    let mut done = Vec::new();
    for o in candidates {
        let Some(key) = destination(o) else { continue };
        match open.get_mut(&key) {
            Some((started, group)) if started.plus_secs(window_secs) >= o.created_at => group.push(o.id),
            _ => {
                if let Some((_, group)) = open.insert(key, (o.created_at, vec![o.id])) {
                    done.push(group);
                }
            }
        }
    }
    done.extend(open.into_values().map(|(_, group)| group));
    done.retain(|g| g.len() > 1);
    done.sort();
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: u128, buyer: &str, line1: &str, at_secs: i64, cod: bool) -> Order {
        let mut order = crate::fixtures::order(id, buyer, Timestamp(at_secs * 1000));
        if let Some(a) = order.shipping_address.as_mut() {
            a.line1 = line1.into();
        }
        order.payment_method = cod.then(|| CASH_ON_DELIVERY.to_string());
        order
    }

    #[test]
    fn one_buyers_orders_to_one_address_within_the_window_merge() {
        let day = 86_400;
        let orders = vec![
            order(1, "b", "Room 5", 0, false),
            order(2, "b", "room 5", 3600, false),
            order(3, "b", "Room 6", 3600, false),
            order(4, "c", "Room 5", 3600, false),
            order(5, "b", "Room 5", 7200, true),
            order(6, "b", "Room 5", day + 10, false),
            order(7, "b", "Room 5", day + 20, false),
        ];
        assert_eq!(
            merge_groups(&orders, day),
            vec![vec![OrderId(1), OrderId(2)], vec![OrderId(6), OrderId(7)]]
        );
        let refs: Vec<&Order> = orders.iter().collect();
        assert_eq!(check_merge(&[refs[0], refs[1]], day), Ok(()));
        assert_eq!(
            check_merge(&[refs[0], refs[2]], day),
            Err(MergeRefused::DifferentBuyerOrAddress)
        );
        assert_eq!(check_merge(&[refs[0], refs[4]], day), Err(MergeRefused::CashOnDelivery));
        assert_eq!(check_merge(&[refs[0], refs[5]], day), Err(MergeRefused::OutsideWindow));
        assert_eq!(check_merge(&[refs[0]], day), Err(MergeRefused::TooFew));
        let mut shipped = orders[1].clone();
        shipped.status = OrderStatus::Shipped;
        assert_eq!(check_merge(&[refs[0], &shipped], day), Err(MergeRefused::NotFulfilling));
    }
}
