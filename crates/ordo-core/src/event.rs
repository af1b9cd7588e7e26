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
    pub payload: EventPayload,
    pub actor: Actor,
    pub at: Timestamp,
}

/// A new event's payload, already written as JSON. The hot paths (placing and
/// paying an order) write a typed payload straight into it; built as a
/// `serde_json::Value` first, every payload was a map of owned keys made, written
/// and freed again (~10 % of the decider's time on intake and import).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventPayload(Box<serde_json::value::RawValue>);

impl EventPayload {
    /// `value` as JSON. Writing fails only where a `Serialize` impl fails (a map with
    /// non-string keys, a custom error); payloads are plain data, which never does.
    /// Such a payload would be `null`, and fails the tests' debug builds loudly.
    pub fn of<T: Serialize + ?Sized>(value: &T) -> EventPayload {
        let written = serde_json::value::to_raw_value(value);
        debug_assert!(written.is_ok(), "an event payload could not be written: {written:?}");
        EventPayload(written.unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

impl From<serde_json::Value> for EventPayload {
    fn from(value: serde_json::Value) -> EventPayload {
        EventPayload::of(&value)
    }
}

impl PartialEq for EventPayload {
    fn eq(&self, other: &EventPayload) -> bool {
        self.as_str() == other.as_str()
    }
}

/// The payloads of the events that taking in, placing and paying an order append,
/// written from these structs (fields in the order a JSON map of them had: by name).
pub(crate) mod payloads {
    use serde::Serialize;

    use crate::money::Currency;
    use crate::{OrderId, Timestamp};

    /// `order.placed`.
    #[derive(Serialize)]
    pub struct Placed<'a> {
        pub channel: &'a str,
        pub currency: Currency,
        pub external_id: Option<&'a str>,
        pub lines: usize,
        pub payment_due_at: Option<Timestamp>,
        pub total_minor: i64,
    }

    /// `payment.captured`.
    #[derive(Serialize)]
    pub struct Captured<'a> {
        pub amount_minor: i64,
        pub currency: Currency,
        pub gateway: &'a str,
        pub order: OrderId,
        pub transaction_id: &'a str,
    }

    /// `order.paid`.
    #[derive(Serialize)]
    pub struct Paid {
        pub total_minor: i64,
    }

    /// `order.approved` and `order.delivered` when Ordo did it, not a person.
    #[derive(Serialize)]
    pub struct Auto {
        pub auto: bool,
    }

    /// `channel_order.received` and `channel_order.unmapped`.
    #[derive(Serialize)]
    pub struct Received<'a> {
        pub channel: &'a str,
        pub deliveries: i64,
        pub external_id: &'a str,
        pub order: Option<OrderId>,
        pub reason: Option<&'a str>,
        pub reason_code: Option<&'a str>,
    }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::payloads::{Auto, Captured, Paid, Placed, Received};
    use super::*;
    use crate::{Currency, OrderId};

    /// The typed payloads are part of the API: each must write exactly what the
    /// JSON map it replaced wrote, names, values and order.
    #[test]
    fn typed_payloads_write_what_their_json_maps_wrote() {
        let order = OrderId(0x0193_0000_0000_7000_8000_0000_0000_00ff);
        let same = |typed: EventPayload, map: serde_json::Value| {
            assert_eq!(typed.as_str(), EventPayload::from(map).as_str());
        };
        same(
            EventPayload::of(&Placed {
                channel: "shopify",
                currency: Currency::USD,
                external_id: Some("6000000000001"),
                lines: 3,
                payment_due_at: Some(Timestamp(1_700_000_000_000)),
                total_minor: 26_350,
            }),
            json!({ "channel": "shopify", "external_id": "6000000000001", "total_minor": 26_350,
                    "currency": Currency::USD, "lines": 3, "payment_due_at": Timestamp(1_700_000_000_000) }),
        );
        same(
            EventPayload::of(&Placed {
                channel: "api",
                currency: Currency::CNY,
                external_id: None,
                lines: 1,
                payment_due_at: None,
                total_minor: 0,
            }),
            json!({ "channel": "api", "external_id": null, "total_minor": 0, "currency": Currency::CNY,
                    "lines": 1, "payment_due_at": null }),
        );
        same(
            EventPayload::of(&Captured {
                amount_minor: 26_350,
                currency: Currency::USD,
                gateway: "shopify",
                order,
                transaction_id: "shopify:6000000000001",
            }),
            json!({ "order": order, "gateway": "shopify", "transaction_id": "shopify:6000000000001",
                    "amount_minor": 26_350, "currency": Currency::USD }),
        );
        same(EventPayload::of(&Paid { total_minor: 5 }), json!({ "total_minor": 5 }));
        same(EventPayload::of(&Auto { auto: true }), json!({ "auto": true }));
        same(
            EventPayload::of(&Received {
                channel: "woocommerce",
                deliveries: 2,
                external_id: "727",
                order: None,
                reason: Some("no SKU \"X\" — mapped"),
                reason_code: Some("unmapped-sku"),
            }),
            json!({ "channel": "woocommerce", "external_id": "727", "order": null,
                    "reason_code": "unmapped-sku", "reason": "no SKU \"X\" — mapped", "deliveries": 2 }),
        );
    }

    #[test]
    fn a_payload_reads_back_as_the_value_it_was_made_from() {
        let value = json!({ "sku": "CUP-01", "remaining": 3, "note": null });
        let payload = EventPayload::from(value.clone());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(payload.as_str()).unwrap(),
            value
        );
        assert_eq!(payload, EventPayload::of(&value));
        assert_ne!(payload, EventPayload::from(json!({ "sku": "CUP-01" })));
    }
}
