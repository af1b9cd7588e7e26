//! Events: every state change appends one, in the same transaction as the change.
//! The event log is the audit trail and the source of the SSE stream and webhooks.

use serde::{Deserialize, Serialize};

use crate::auth::Actor;
use crate::{EventSeq, ShopId, Timestamp};

/// An event about to be appended; the store assigns its sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// `None` for platform-level events (a shop created).
    pub shop: Option<ShopId>,
    /// What the event is about, e.g. `ord_…`.
    pub subject: String,
    /// Dotted type, e.g. `order.paid`; stable, part of the API.
    pub kind: &'static str,
    pub payload: serde_json::Value,
    pub actor: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: EventSeq,
    pub shop: Option<ShopId>,
    pub subject: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub actor: Actor,
    pub at: Timestamp,
}

/// Every event type Ordo emits.
pub mod kinds {
    pub const SHOP_CREATED: &str = "shop.created";
    pub const SHOP_UPDATED: &str = "shop.updated";
    pub const API_KEY_CREATED: &str = "api_key.created";
    pub const API_KEY_REVOKED: &str = "api_key.revoked";
    pub const PRODUCT_CREATED: &str = "product.created";
    pub const PRODUCT_UPDATED: &str = "product.updated";
    pub const WAREHOUSE_CREATED: &str = "warehouse.created";
    pub const GATEWAY_CONFIGURED: &str = "payment_gateway.configured";
    pub const STOCK_CHANGED: &str = "stock.changed";
    pub const ORDER_PLACED: &str = "order.placed";
    pub const ORDER_PAID: &str = "order.paid";
    pub const ORDER_HELD: &str = "order.held";
    pub const ORDER_APPROVED: &str = "order.approved";
    pub const ORDER_SHIPPED: &str = "order.shipped";
    pub const ORDER_EDITED: &str = "order.edited";
    /// The SKU's pre-sale date moved (or the pre-sale ended): payload `{"sku", "ships_at", "before"}`.
    pub const ORDER_PRESALE_RESCHEDULED: &str = "order.presale_rescheduled";
    /// One parcel of an order that ships in several; `order.shipped` follows the last.
    pub const ORDER_PARCEL_SHIPPED: &str = "order.parcel_shipped";
    pub const ORDER_DELIVERED: &str = "order.delivered";
    pub const ORDER_COMPLETED: &str = "order.completed";
    pub const ORDER_CANCELLED: &str = "order.cancelled";
    pub const ORDER_PAYMENT_EXCEPTION: &str = "order.payment_exception";
    /// A person accepted a payment exception on an order that had already moved on
    /// (a further or cash-on-delivery payment that did not match); payload `{"detail"}`.
    pub const ORDER_PAYMENT_EXCEPTION_RESOLVED: &str = "order.payment_exception_resolved";
    pub const ORDER_PAYMENT_REMINDER: &str = "order.payment_reminder";
    pub const ORDER_COD_ACCEPTED: &str = "order.cash_on_delivery";
    pub const CODE_POOL_LOW: &str = "code_pool.low";
    pub const CODES_IMPORTED: &str = "code_pool.imported";
    pub const CHANNEL_ORDER_RECEIVED: &str = "channel_order.received";
    pub const CHANNEL_ORDER_UNMAPPED: &str = "channel_order.unmapped";
    /// The channel cancelled an order that has already shipped: a person handles it.
    pub const CHANNEL_ORDER_CANCEL_REFUSED: &str = "channel_order.cancel_refused";
    pub const CHANNEL_ORDER_CHANGE_REFUSED: &str = "channel_order.change_refused";
    pub const CHANNEL_CONFIGURED: &str = "channel.configured";
    pub const SKU_MAPPING_CHANGED: &str = "sku_mapping.changed";
    pub const PAYMENT_CAPTURED: &str = "payment.captured";
    pub const PAYMENT_FAILED: &str = "payment.failed";
    pub const PAYMENT_EXPIRED: &str = "payment.expired";
    pub const REFUND_CREATED: &str = "refund.created";
    /// Virtual goods: codes were delivered; payload `{"codes": <count>}` (never the codes).
    pub const ORDER_CODES_DELIVERED: &str = "order.codes_delivered";
}
