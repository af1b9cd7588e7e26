//! Shops (tenants), their settings, products/SKUs and warehouses.

use serde::{Deserialize, Serialize};

use crate::{Currency, ProductId, ShopId, Timestamp, WarehouseId};

/// Default time a buyer has to pay before the order is cancelled (B2).
pub const PAYMENT_TIMEOUT_SECS_DEFAULT: i64 = 30 * 60;
/// Default lead of the payment reminder before that deadline (B2).
pub const PAYMENT_REMINDER_SECS_DEFAULT: i64 = 5 * 60;

fn payment_reminder_default() -> i64 {
    PAYMENT_REMINDER_SECS_DEFAULT
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shop {
    pub id: ShopId,
    pub name: String,
    pub settings: ShopSettings,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopSettings {
    /// Currency every product and order of the shop is priced in.
    pub currency: Currency,
    pub payment_timeout_secs: i64,
    /// How long before the payment deadline the buyer is reminded; 0 = never.
    #[serde(default = "payment_reminder_default")]
    pub payment_reminder_secs: i64,
    /// Paid orders whose total is above this are held for a person's review (A5 seam).
    #[serde(default)]
    pub review_above_minor: Option<i64>,
}

impl ShopSettings {
    pub fn new(currency: Currency) -> Self {
        ShopSettings {
            currency,
            payment_timeout_secs: PAYMENT_TIMEOUT_SECS_DEFAULT,
            payment_reminder_secs: PAYMENT_REMINDER_SECS_DEFAULT,
            review_above_minor: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    /// Shipped from a warehouse; stock is reserved and deducted.
    Physical,
    /// Delivered electronically (codes, links); holds no warehouse stock.
    Virtual,
}

impl ProductKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductKind::Physical => "physical",
            ProductKind::Virtual => "virtual",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "physical" => Some(ProductKind::Physical),
            "virtual" => Some(ProductKind::Virtual),
            _ => None,
        }
    }
}

/// A sellable SKU. `sku` is the seller's own code, unique within the shop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: ProductId,
    pub shop: ShopId,
    pub sku: String,
    pub name: String,
    pub kind: ProductKind,
    pub price_minor: i64,
    pub currency: Currency,
    pub weight_g: i64,
    pub on_sale: bool,
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warehouse {
    pub id: WarehouseId,
    pub shop: ShopId,
    pub code: String,
    pub name: String,
    /// Region the warehouse ships from, e.g. `CN-GD` (ISO 3166-2 style).
    pub region: String,
    pub active: bool,
    pub created_at: Timestamp,
}

/// Automatic review of a paid order (审单): `Some(reason)` holds it for a person.
/// Later rule sets (A5) extend this function; today it knows one rule.
pub fn review(settings: &ShopSettings, total_minor: i64) -> Option<String> {
    match settings.review_above_minor {
        Some(limit) if total_minor > limit => {
            Some(format!("order total {total_minor} is above the review limit {limit}"))
        }
        _ => None,
    }
}

/// When to remind the buyer of an order placed at `now`: the reminder lead before
/// the deadline, if the shop wants one and it falls after placement.
pub fn payment_reminder_at(settings: &ShopSettings, now: Timestamp) -> Option<Timestamp> {
    let lead = settings.payment_reminder_secs;
    (lead > 0 && lead < settings.payment_timeout_secs).then(|| now.plus_secs(settings.payment_timeout_secs - lead))
}
