use serde::{Deserialize, Serialize};

use crate::auth::Actor;
use crate::channel::{ChannelTerms, RawChannelOrder, Unmapped};
use crate::inventory::StockLevel;
use crate::order::{Address, Buyer, CancelReason, Order};
use crate::payment::{AmountCheck, PaymentNotice};
use crate::{OrderId, RefundId, ShopId, WarehouseId};

/// Lines per order and units per line the core accepts.
pub const ORDER_LINES_MAX: usize = 100;
pub const LINE_QUANTITY_MAX: i64 = 10_000;

/// The caller of a command: which shop it acts in and who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct By {
    pub shop: ShopId,
    pub actor: Actor,
}

/// A claim on an Idempotency-Key, checked and recorded in the command's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// Who owns the key space (the API key), so two callers never collide.
    pub scope: String,
    pub key: String,
    /// Hash of the request (method, path, body).
    pub request_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRequest {
    pub sku: String,
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceOrder {
    pub by: By,
    pub channel: String,
    pub external_id: Option<String>,
    pub buyer: Buyer,
    pub shipping_address: Option<Address>,
    pub lines: Vec<LineRequest>,
    pub shipping_minor: i64,
    pub note: Option<String>,
    pub payment_method: Option<String>,
    /// Coupon codes the buyer gave.
    pub coupon_codes: Vec<String>,
    pub idempotency: Option<IdempotencyClaim>,
    /// Set for orders from a sales channel, priced and maybe paid there.
    pub channel_terms: Option<Box<ChannelTerms>>,
}

/// A change to an order before it ships (A8), against the version the editor saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditOrder {
    pub by: By,
    pub order: OrderId,
    pub expected_version: i64,
    /// The order's new lines, repriced; `None` keeps them.
    pub lines: Option<Vec<LineRequest>>,
    pub shipping_address: Option<Address>,
    pub reason: Option<String>,
}

/// Several orders leaving in one parcel (merged shipment, A6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipTogether {
    pub by: By,
    pub orders: Vec<OrderId>,
    pub carrier: String,
    pub tracking_number: String,
}

/// An order a sales channel sent: recorded as received, then placed if it could
/// be mapped (or kept with the reason it could not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelIntake {
    pub shop: ShopId,
    pub channel: String,
    pub external_id: String,
    pub body: std::sync::Arc<str>,
    pub actor: Actor,
    pub mapped: Result<PlaceOrder, Unmapped>,
    /// The channel says the order is cancelled: a placed order is cancelled (before it
    /// ships), one not yet placed is not placed.
    pub cancelled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub by: By,
    pub order: OrderId,
    /// The amount, when no `lines` are given.
    pub amount_minor: i64,
    /// Units of lines to refund, each at its share of the price after discounts.
    pub lines: Vec<LineRefund>,
    pub reason: String,
    pub idempotency: Option<IdempotencyClaim>,
}

/// Units of one order line (by its index) to refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRefund {
    pub line: usize,
    pub quantity: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockChange {
    /// Add (receipt) or remove (correction) units on hand.
    Delta(i64),
    /// Set on hand to a counted number.
    SetOnHand(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjustStock {
    pub by: By,
    pub sku: String,
    pub warehouse: WarehouseId,
    pub change: StockChange,
    pub note: Option<String>,
}

/// Moves the pre-sale lines of `sku` on `orders` to the SKU's date as it now
/// stands in the catalogue (read in the same transaction, so a late command
/// never writes an old date). Orders that shipped those lines, or were never
/// pre-sale for it, are left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReschedulePresale {
    pub by: By,
    pub sku: String,
    pub orders: Vec<OrderId>,
}

/// A person's or integration's move of an order along the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Cancel(CancelReason),
    Hold {
        reason: String,
    },
    /// Release a held (or paid) order to fulfilment; the note says why.
    Approve {
        note: Option<String>,
    },
    /// Turn a held order down: it is cancelled by the seller and refunded.
    Reject {
        reason: String,
    },
    Ship {
        carrier: String,
        tracking_number: String,
        /// Which parcel, for an order that ships in several (see `Order::parcels`).
        parcel: Option<usize>,
    },
    ConfirmDelivery,
    Complete,
    /// Deliver the codes a held order's virtual lines still wait for (after the
    /// pool was refilled); an order of virtual lines only is then delivered.
    DeliverCodes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    PlaceOrder(Box<PlaceOrder>),
    /// An order of a bulk import: placed exactly as `PlaceOrder`, answered with
    /// `Outcome::Placed` (a file's orders are reported by id, not each copied whole).
    ImportOrder(Box<PlaceOrder>),
    IntakeChannelOrder(Box<ChannelIntake>),
    EditOrder(Box<EditOrder>),
    ShipTogether(Box<ShipTogether>),
    PaymentNotice(PaymentNotice),
    Refund(RefundRequest),
    ResolvePaymentException {
        by: By,
        order: OrderId,
        accept: bool,
    },
    Transition {
        by: By,
        order: OrderId,
        step: Step,
    },
    /// Fired by the payment-timeout timer; a no-op when the order moved on.
    ExpireUnpaid {
        shop: ShopId,
        order: OrderId,
    },
    /// Fired by the reminder timer; a no-op when the order was paid or reminded.
    RemindUnpaid {
        shop: ShopId,
        order: OrderId,
    },
    AdjustStock(AdjustStock),
    /// A SKU's pre-sale date changed: the open orders named follow it.
    ReschedulePresale(ReschedulePresale),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentResult {
    /// Captured with the expected amount; the order is paid.
    Captured,
    /// This notification was processed before; nothing changed.
    AlreadyProcessed,
    /// Captured, but the amount or currency is wrong: the order is a payment exception.
    Mismatch(AmountCheck),
    /// The gateway reports a failed attempt; the order still waits for payment.
    Failed,
    /// Money arrived for an order that no longer expects it (cancelled, or paid
    /// twice): recorded and flagged for refund.
    Unexpected,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The order as it stands after the command; `replayed` when an idempotent
    /// retry or a duplicate channel order returned an existing one.
    Order {
        order: Box<Order>,
        replayed: bool,
    },
    Payment {
        order: OrderId,
        result: PaymentResult,
    },
    /// Orders that shipped together, as they stand after.
    Orders(Vec<Order>),
    Refunds {
        order: Box<Order>,
        refunds: Vec<RefundId>,
        replayed: bool,
    },
    Stock(StockLevel),
    /// An imported order as placed: what the import reports, and what it needs to
    /// record a payment made elsewhere.
    Placed {
        id: OrderId,
        status: crate::order::OrderStatus,
        total: crate::money::Money,
        replayed: bool,
    },
    /// A channel order as recorded, and the order it became (if it could be mapped).
    /// The order's id only: a channel is answered with it, and the decider does not
    /// copy every order it takes in.
    ChannelOrder {
        raw: Box<RawChannelOrder>,
        order: Option<OrderId>,
        replayed: bool,
    },
    /// A timer found nothing to do.
    Skipped,
}
