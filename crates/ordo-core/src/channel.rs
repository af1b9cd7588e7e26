//! Orders from sales channels (A1, A2, A7): every inbound order is kept as
//! received (the raw channel order) beside what it became, so nothing a channel
//! sends is ever dropped. One that cannot be mapped to an Ordo order stays
//! visible with a machine-readable reason until a re-send or a retry completes it.

use serde::{Deserialize, Serialize};

use crate::{ChannelOrderId, Currency, OrderId, ShopId, Timestamp};

/// Channels with a webhook format of their own.
pub const SHOPIFY: &str = "shopify";
pub const WOOCOMMERCE: &str = "woocommerce";
pub const MARKETPLACE: &str = "marketplace";
pub const KNOWN: [&str; 3] = [SHOPIFY, WOOCOMMERCE, MARKETPLACE];

/// The payment method that means the carrier collects on delivery.
pub const CASH_ON_DELIVERY: &str = "cod";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawStatus {
    /// Became an Ordo order.
    Mapped,
    /// Could not become one yet; `reason_code` says why.
    Unmapped,
}

impl RawStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RawStatus::Mapped => "mapped",
            RawStatus::Unmapped => "unmapped",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mapped" => Some(RawStatus::Mapped),
            "unmapped" => Some(RawStatus::Unmapped),
            _ => None,
        }
    }
}

/// A channel order as received, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawChannelOrder {
    pub id: ChannelOrderId,
    pub shop: ShopId,
    pub channel: String,
    /// The channel's order id (or, for a body that could not be read, a digest of it).
    pub external_id: String,
    pub status: RawStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderId>,
    /// How many times the channel (or a person's retry) delivered it.
    pub deliveries: i64,
    /// The channel cancelled an order that had already left the warehouse and a
    /// person was told once (`channel_order.cancel_refused`); re-deliveries of that
    /// cancellation tell no one again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel_refused: bool,
    /// Fingerprint (`limits::address_fingerprint`) of the shipping address the
    /// channel last sent, so a later delivery that changes it is told apart from
    /// one that repeats it (and from an edit made in Ordo since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_address: Option<u64>,
    pub received_at: Timestamp,
    pub updated_at: Timestamp,
    /// The body exactly as received (stored apart from the rest); shared, not copied,
    /// between the command, the working set and the outcome.
    #[serde(skip)]
    pub body: std::sync::Arc<str>,
}

/// Why a channel order could not become an Ordo order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// Stable code, e.g. `unmapped-sku`, `unknown-sku`, `malformed-json`, `invalid-address`.
    pub code: String,
    pub reason: String,
}

/// How the buyer pays for a channel order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelPayment {
    /// Captured by the channel; `reference` identifies the capture (dedupe key).
    Paid {
        amount_minor: i64,
        reference: String,
    },
    Pending,
    CashOnDelivery,
}

/// The channel's own prices: the order is priced as the buyer bought it, not
/// from the catalogue, and the shop's promotions do not apply again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelTerms {
    pub currency: Currency,
    /// Per line, in line order: unit price and the discount on the line.
    pub lines: Vec<(i64, i64)>,
    pub tax_minor: i64,
    /// Every discount, lines' and shipping's included.
    pub discount_minor: i64,
    pub total_minor: i64,
    pub payment: ChannelPayment,
}

/// A channel's id for a product, variant or seller SKU, mapped to an Ordo SKU.
/// Keys are `variant:<id>`, `product:<id>` or `sku:<seller sku>`; the most
/// specific one that is mapped wins, and a seller SKU equal to an Ordo SKU needs
/// no mapping at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuMapping {
    pub channel_key: String,
    pub sku: String,
}
