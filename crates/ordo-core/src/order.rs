//! Orders and the order state machine.
//!
//! ```text
//! pending_payment ──capture──▶ paid ──approve──▶ fulfilling ──ship──▶ shipped ──deliver──▶ delivered ──complete──▶ completed
//!       │  ├─cash on delivery─▶ paid (the carrier collects)
//!       │  │   paid / on_hold / fulfilling ──codes delivered (all lines virtual)──▶ delivered
//!       │  └─mismatch─▶ payment_exception ─accept─▶ paid │ ▲hold/approve▼                                 
//!       │                                          on_hold
//!       └──── cancel (buyer, seller, platform; timeout only while unpaid) ────▶ cancelled
//! ```

use serde::{Deserialize, Serialize};

use crate::{Currency, OrderId, ProductId, ShopId, Timestamp, WarehouseId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    /// Money arrived but did not match the order (B3); a person decides.
    PaymentException,
    Paid,
    /// Held for review before fulfilment.
    OnHold,
    Fulfilling,
    Shipped,
    Delivered,
    Completed,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 9] = [
        OrderStatus::PendingPayment,
        OrderStatus::PaymentException,
        OrderStatus::Paid,
        OrderStatus::OnHold,
        OrderStatus::Fulfilling,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Completed,
        OrderStatus::Cancelled,
    ];

    /// Open and not yet shipped: an edit or a pre-sale date change may still change the order.
    pub const BEFORE_SHIPMENT: [OrderStatus; 5] = [
        OrderStatus::PendingPayment,
        OrderStatus::PaymentException,
        OrderStatus::Paid,
        OrderStatus::OnHold,
        OrderStatus::Fulfilling,
    ];

    pub fn before_shipment(self) -> bool {
        Self::BEFORE_SHIPMENT.contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::PaymentException => "payment_exception",
            OrderStatus::Paid => "paid",
            OrderStatus::OnHold => "on_hold",
            OrderStatus::Fulfilling => "fulfilling",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Completed => "completed",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the order still holds stock reservations.
    pub fn holds_reservation(self) -> bool {
        matches!(
            self,
            OrderStatus::PendingPayment
                | OrderStatus::PaymentException
                | OrderStatus::Paid
                | OrderStatus::OnHold
                | OrderStatus::Fulfilling
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    Buyer,
    Seller,
    Platform,
    PaymentTimeout,
}

impl CancelReason {
    pub const ALL: [CancelReason; 4] = [
        CancelReason::Buyer,
        CancelReason::Seller,
        CancelReason::Platform,
        CancelReason::PaymentTimeout,
    ];
}

/// What can happen to an order; input of [`transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderEvent {
    PaymentCaptured,
    PaymentMismatched,
    PaymentAccepted,
    /// Cash on delivery: the carrier collects, so the order proceeds unpaid.
    CashOnDeliveryAccepted,
    /// Every line was virtual and its codes were delivered on payment.
    CodesDelivered,
    Hold,
    Approve,
    Ship,
    ConfirmDelivery,
    Complete,
    Cancel(CancelReason),
}

impl OrderEvent {
    pub fn all() -> Vec<OrderEvent> {
        let mut v = vec![
            OrderEvent::PaymentCaptured,
            OrderEvent::PaymentMismatched,
            OrderEvent::PaymentAccepted,
            OrderEvent::CashOnDeliveryAccepted,
            OrderEvent::CodesDelivered,
            OrderEvent::Hold,
            OrderEvent::Approve,
            OrderEvent::Ship,
            OrderEvent::ConfirmDelivery,
            OrderEvent::Complete,
        ];
        v.extend(CancelReason::ALL.map(OrderEvent::Cancel));
        v
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {} cannot take `{event:?}`", from.as_str())]
pub struct TransitionError {
    pub from: OrderStatus,
    pub event: OrderEvent,
}

/// The order state machine: the one place that says which moves are legal.
pub fn transition(from: OrderStatus, event: OrderEvent) -> Result<OrderStatus, TransitionError> {
    use OrderEvent as E;
    use OrderStatus as S;
    let to = match (from, event) {
        (S::PendingPayment, E::PaymentCaptured) => S::Paid,
        (S::PendingPayment, E::PaymentMismatched) => S::PaymentException,
        (S::PendingPayment, E::Cancel(_)) => S::Cancelled,
        (S::PaymentException, E::PaymentAccepted) => S::Paid,
        (S::PendingPayment, E::CashOnDeliveryAccepted) => S::Paid,
        (S::Paid | S::OnHold | S::Fulfilling, E::CodesDelivered) => S::Delivered,
        (S::Paid, E::Hold) | (S::Fulfilling, E::Hold) => S::OnHold,
        (S::Paid, E::Approve) | (S::OnHold, E::Approve) => S::Fulfilling,
        (S::Fulfilling, E::Ship) => S::Shipped,
        (S::Shipped, E::ConfirmDelivery) => S::Delivered,
        (S::Delivered, E::Complete) => S::Completed,
        // Once money has arrived a timeout no longer applies; a person or the buyer cancels.
        (S::PaymentException | S::Paid | S::OnHold | S::Fulfilling, E::Cancel(r))
            if r != CancelReason::PaymentTimeout =>
        {
            S::Cancelled
        }
        _ => return Err(TransitionError { from, event }),
    };
    Ok(to)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Buyer {
    /// The shop's or channel's own id for the buyer.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub recipient: String,
    pub phone: String,
    /// ISO 3166-1 alpha-2, e.g. `CN`.
    pub country: String,
    pub province: String,
    pub city: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku_id: ProductId,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub total_minor: i64,
    /// Where the line's stock is reserved; `None` for virtual goods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<WarehouseId>,
    /// This line's share of the items discount (parts sum to the order's).
    #[serde(default)]
    pub discount_minor: i64,
    /// Virtual goods: delivered as codes or links from the SKU's pool (G1).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub digital: bool,
    /// The codes delivered for this line (ids only; the codes are stored encrypted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<crate::CodeId>,
    /// Pre-sale: the line ships from this date, in a parcel of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ships_at: Option<Timestamp>,
    /// Units refunded by line, and what they came to (B4).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refunded_quantity: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refunded_minor: i64,
}

impl Order {
    /// The seller's SKU code of the order's line for `sku` (for messages).
    pub fn sku_code(&self, sku: ProductId) -> String {
        self.lines
            .iter()
            .find(|l| l.sku_id == sku)
            .map(|l| l.sku.clone())
            .unwrap_or_default()
    }

    /// Whether the line at `index` left the warehouse in a parcel of its own.
    pub fn line_shipped(&self, index: usize) -> bool {
        self.parcels
            .iter()
            .any(|p| p.shipment.is_some() && p.lines.contains(&(index as u32)))
    }
}

impl OrderLine {
    /// What refunding `quantity` more units of the line comes to: its price after
    /// discount, shared by units; the last unit takes the remainder, so a fully
    /// refunded line refunds exactly what it cost.
    pub fn refund_for(&self, quantity: i64) -> Option<i64> {
        let left = self.quantity - self.refunded_quantity;
        if quantity < 1 || quantity > left {
            return None;
        }
        let net = self.total_minor - self.discount_minor;
        if quantity == left {
            return Some(net - self.refunded_minor);
        }
        let share = i128::from(net) * i128::from(quantity) / i128::from(self.quantity);
        i64::try_from(share).ok()
    }

    /// Codes this line still waits for.
    pub fn codes_owed(&self) -> i64 {
        if self.digital {
            self.quantity - self.codes.len() as i64
        } else {
            0
        }
    }
}

/// The price breakdown stored with the order (A4): total = items + shipping − discount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    pub currency: Currency,
    pub items_minor: i64,
    pub shipping_minor: i64,
    /// Tax charged on top of the prices (channels that price net of tax); 0 otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tax_minor: i64,
    pub discount_minor: i64,
    /// items + shipping + tax − discount.
    pub total_minor: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// One edit of an order (A8): who changed what, when, and what it did to the total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// The version the edit was made on.
    pub version: i64,
    pub at: Timestamp,
    pub actor: crate::auth::Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub lines_changed: bool,
    pub address_changed: bool,
    pub total_before: i64,
    pub total_after: i64,
}

/// One parcel of an order whose lines cannot travel together: goods in stock ship
/// at once, each pre-sale date in a parcel of its own (A3, A6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parcel {
    /// Indexes into the order's lines.
    pub lines: Vec<u32>,
    /// Not before this (pre-sale); `None` for goods in stock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ships_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment: Option<Shipment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub carrier: String,
    pub tracking_number: String,
    pub shipped_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub shop: ShopId,
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub status: OrderStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<CancelReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_exception: Option<String>,
    pub buyer: Buyer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<Address>,
    pub lines: Vec<OrderLine>,
    pub pricing: Pricing,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// How the buyer will pay, e.g. `alipay`, `cod` (cash on delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
    /// Every promotion that priced this order, with what it took off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promotions: Vec<crate::promotion::AppliedPromotion>,
    /// The whole order's shipment, once everything left the warehouse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment: Option<Shipment>,
    /// Set when the order ships in several parcels; empty = one parcel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parcels: Vec<Parcel>,
    /// Every edit since placement, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<Revision>,
    /// Money captured for this order and refunded from it, in `pricing.currency`
    /// unless a mismatched payment brought another currency (then see payments).
    pub paid_minor: i64,
    pub refunded_minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_due_at: Option<Timestamp>,
    /// When the buyer is reminded to pay; cleared once reminded or no longer unpaid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_reminder_at: Option<Timestamp>,
    /// What this order added to limit counters (coupons, purchase limits, history),
    /// given back if it is cancelled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counted: Vec<crate::limits::Counted>,
    /// The buyer's and the address's history when the order was placed, for review.
    #[serde(default, skip_serializing_if = "crate::limits::HistoryFacts::is_empty")]
    pub history: crate::limits::HistoryFacts,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Bumped on every change; optimistic concurrency for later edits (A8).
    pub version: i64,
}

impl Order {
    /// Applies `event` through the state machine.
    pub fn apply(&mut self, event: OrderEvent, now: Timestamp) -> Result<OrderStatus, TransitionError> {
        let to = transition(self.status, event)?;
        self.status = to;
        if let OrderEvent::Cancel(r) = event {
            self.cancel_reason = Some(r);
        }
        if to != OrderStatus::PendingPayment {
            self.payment_due_at = None;
            self.payment_reminder_at = None;
        }
        self.touch(now);
        Ok(to)
    }

    /// Records a change that is not a transition (e.g. codes delivered to a held order).
    pub fn touch(&mut self, now: Timestamp) {
        self.updated_at = now;
        self.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderEvent as E;
    use OrderStatus as S;

    /// Every (state, event) pair: the legal ones and where they lead; all others fail.
    #[test]
    fn transition_table_covers_every_pair() {
        let legal: &[(S, E, S)] = &[
            (S::PendingPayment, E::PaymentCaptured, S::Paid),
            (S::PendingPayment, E::PaymentMismatched, S::PaymentException),
            (S::PendingPayment, E::Cancel(CancelReason::Buyer), S::Cancelled),
            (S::PendingPayment, E::Cancel(CancelReason::Seller), S::Cancelled),
            (S::PendingPayment, E::Cancel(CancelReason::Platform), S::Cancelled),
            (S::PendingPayment, E::Cancel(CancelReason::PaymentTimeout), S::Cancelled),
            (S::PaymentException, E::PaymentAccepted, S::Paid),
            (S::PendingPayment, E::CashOnDeliveryAccepted, S::Paid),
            (S::Paid, E::CodesDelivered, S::Delivered),
            (S::OnHold, E::CodesDelivered, S::Delivered),
            (S::Fulfilling, E::CodesDelivered, S::Delivered),
            (S::PaymentException, E::Cancel(CancelReason::Buyer), S::Cancelled),
            (S::PaymentException, E::Cancel(CancelReason::Seller), S::Cancelled),
            (S::PaymentException, E::Cancel(CancelReason::Platform), S::Cancelled),
            (S::Paid, E::Hold, S::OnHold),
            (S::Paid, E::Approve, S::Fulfilling),
            (S::Paid, E::Cancel(CancelReason::Buyer), S::Cancelled),
            (S::Paid, E::Cancel(CancelReason::Seller), S::Cancelled),
            (S::Paid, E::Cancel(CancelReason::Platform), S::Cancelled),
            (S::OnHold, E::Approve, S::Fulfilling),
            (S::OnHold, E::Cancel(CancelReason::Buyer), S::Cancelled),
            (S::OnHold, E::Cancel(CancelReason::Seller), S::Cancelled),
            (S::OnHold, E::Cancel(CancelReason::Platform), S::Cancelled),
            (S::Fulfilling, E::Hold, S::OnHold),
            (S::Fulfilling, E::Ship, S::Shipped),
            (S::Fulfilling, E::Cancel(CancelReason::Buyer), S::Cancelled),
            (S::Fulfilling, E::Cancel(CancelReason::Seller), S::Cancelled),
            (S::Fulfilling, E::Cancel(CancelReason::Platform), S::Cancelled),
            (S::Shipped, E::ConfirmDelivery, S::Delivered),
            (S::Delivered, E::Complete, S::Completed),
        ];
        let mut checked = 0;
        for from in S::ALL {
            for event in E::all() {
                let expected = legal
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == event)
                    .map(|(_, _, to)| *to);
                match (transition(from, event), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want, "{from:?} + {event:?}"),
                    (Err(err), None) => assert_eq!(err, TransitionError { from, event }),
                    (got, want) => panic!("{from:?} + {event:?}: got {got:?}, want {want:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, S::ALL.len() * E::all().len());
    }

    #[test]
    fn status_names_round_trip() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
        assert_eq!(S::parse("lost"), None);
    }
}
