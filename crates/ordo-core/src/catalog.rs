//! Shops (tenants), their settings, products/SKUs and warehouses.

use serde::{Deserialize, Serialize};

use crate::order::Order;
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
    /// Paid orders whose total is above this are held for a person's review (A5).
    #[serde(default)]
    pub review_above_minor: Option<i64>,
    /// The shop's other review rules (A5).
    #[serde(default)]
    pub review: ReviewRules,
    /// Payment methods buyers may choose (e.g. `alipay`, `wechat`, `card`, `cod`); empty = any.
    #[serde(default)]
    pub payment_methods: Vec<String>,
    /// Promotions and coupons (A4).
    #[serde(default)]
    pub promotions: Vec<crate::promotion::Promotion>,
    /// Per-buyer purchase limits (限购, A3).
    #[serde(default)]
    pub purchase_limits: Vec<crate::limits::PurchaseLimit>,
    /// Buyer notifications: locale and channels (K1).
    #[serde(default)]
    pub notifications: crate::notify::NotificationSettings,
    /// One buyer's orders to one address placed within this many seconds ship as one parcel (A6).
    #[serde(default = "merge_window_default")]
    pub merge_window_secs: i64,
    /// A virtual SKU's code pool below this raises `code_pool.low` (G1).
    #[serde(default = "low_pool_default")]
    pub code_pool_low_at: i64,
}

fn merge_window_default() -> i64 {
    crate::consolidation::MERGE_WINDOW_SECS_DEFAULT
}

fn low_pool_default() -> i64 {
    crate::batch::LOW_POOL_DEFAULT
}

/// Rules that hold a paid order for a person (审单). Every rule that matches adds
/// its reason; an order no rule matches goes straight to fulfilment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ReviewRules {
    /// Hold orders whose buyer wrote a note (it may ask for something special).
    #[serde(default)]
    pub hold_when_note: bool,
    /// Buyer ids never served without a look.
    #[serde(default)]
    pub blocked_buyers: Vec<String>,
    /// Phone numbers (buyer's or recipient's) never served without a look.
    #[serde(default)]
    pub blocked_phones: Vec<String>,
    /// Words that flag an address (e.g. a parcel locker abused before), matched case-insensitively.
    #[serde(default)]
    pub flagged_address_words: Vec<String>,
    /// Hold the first order of a buyer new to the shop when its total is above this
    /// (buyers are counted from when the rule is switched on).
    #[serde(default)]
    pub new_buyer_above_minor: Option<i64>,
    /// Hold an order when too many orders went to its address within a window.
    #[serde(default)]
    pub address_orders: Option<AddressOrdersRule>,
}

/// More than `max_orders` orders to one address within `window_secs` is suspicious
/// (brushing, reselling); the orders beyond the limit are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressOrdersRule {
    pub max_orders: i64,
    pub window_secs: i64,
}

impl ShopSettings {
    pub fn new(currency: Currency) -> Self {
        ShopSettings {
            currency,
            payment_timeout_secs: PAYMENT_TIMEOUT_SECS_DEFAULT,
            payment_reminder_secs: PAYMENT_REMINDER_SECS_DEFAULT,
            review_above_minor: None,
            review: ReviewRules::default(),
            payment_methods: Vec::new(),
            promotions: Vec::new(),
            purchase_limits: Vec::new(),
            notifications: crate::notify::NotificationSettings::default(),
            code_pool_low_at: crate::batch::LOW_POOL_DEFAULT,
            merge_window_secs: crate::consolidation::MERGE_WINDOW_SECS_DEFAULT,
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
    /// Pre-sale (预售): the SKU ships from this date, so it never shares a parcel
    /// with goods in stock (A3, A6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presale_ships_at: Option<Timestamp>,
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

/// Automatic review of a paid order (审单): the reasons to hold it for a person,
/// empty when it may go straight to fulfilment.
pub fn review(settings: &ShopSettings, order: &Order) -> Vec<String> {
    let rules = &settings.review;
    let mut reasons = Vec::new();
    let total = order.pricing.total_minor;
    if let Some(limit) = settings.review_above_minor.filter(|limit| total > *limit) {
        reasons.push(format!("order total {total} is above the review limit {limit}"));
    }
    if rules.hold_when_note && order.note.as_deref().is_some_and(|n| !n.trim().is_empty()) {
        reasons.push("the buyer left a note".to_string());
    }
    if rules.blocked_buyers.contains(&order.buyer.id) {
        reasons.push(format!("buyer {} is on the shop's block list", order.buyer.id));
    }
    let phones = order
        .buyer
        .phone
        .iter()
        .chain(order.shipping_address.iter().map(|a| &a.phone));
    if let Some(phone) = phones.into_iter().find(|p| rules.blocked_phones.contains(p)) {
        reasons.push(format!(
            "phone {} is on the shop's block list",
            crate::auth::mask_tail(phone, 4)
        ));
    }
    if let Some(a) = &order.shipping_address {
        let text = [
            a.province.as_str(),
            &a.city,
            a.district.as_deref().unwrap_or(""),
            &a.line1,
            a.line2.as_deref().unwrap_or(""),
        ]
        .join(" ")
        .to_lowercase();
        if let Some(word) = rules
            .flagged_address_words
            .iter()
            .find(|w| !w.is_empty() && text.contains(&w.to_lowercase()))
        {
            reasons.push(format!("the address contains the flagged word `{word}`"));
        }
    }
    let history = &order.history;
    if let (Some(limit), Some(0)) = (rules.new_buyer_above_minor, history.buyer_orders_before)
        && total > limit
    {
        reasons.push(format!(
            "first order of a new buyer, total {total} is above the limit {limit}"
        ));
    }
    if let (Some(rule), Some(n)) = (rules.address_orders, history.address_orders_in_window)
        && n > rule.max_orders
    {
        reasons.push(format!(
            "{n} orders to this address within {} s, more than {}",
            rule.window_secs, rule.max_orders
        ));
    }
    reasons
}

/// Checks the shop's limits and history rules; the error says which number is wrong.
pub fn check_limits(settings: &ShopSettings) -> Result<(), String> {
    if !(0..=30 * 86_400).contains(&settings.merge_window_secs) {
        return Err("merge_window_secs must be between 0 and 2592000 (30 days)".into());
    }
    if !(0..=1_000_000).contains(&settings.code_pool_low_at) {
        return Err("code_pool_low_at must be between 0 and 1000000".into());
    }
    if settings.purchase_limits.len() > 1000 {
        return Err("a shop has at most 1000 purchase limits".into());
    }
    for (i, l) in settings.purchase_limits.iter().enumerate() {
        if l.sku.trim().is_empty() || l.max_units < 1 || l.window_secs.is_some_and(|w| w < 1) {
            return Err(format!(
                "purchase limit for `{}` needs a SKU, max_units of at least 1 and a positive window_secs",
                l.sku
            ));
        }
        // One counter per SKU and buyer: a second limit on the SKU would share it.
        if settings.purchase_limits[..i].iter().any(|earlier| earlier.sku == l.sku) {
            return Err(format!("`{}` has more than one purchase limit; give it one", l.sku));
        }
    }
    let rules = &settings.review;
    if rules
        .new_buyer_above_minor
        .is_some_and(|v| !(0..=crate::money::AMOUNT_MINOR_MAX).contains(&v))
    {
        return Err("review.new_buyer_above_minor must be between 0 and 10^13".into());
    }
    if rules
        .address_orders
        .is_some_and(|r| r.max_orders < 1 || r.window_secs < 60)
    {
        return Err("review.address_orders needs max_orders of at least 1 and window_secs of at least 60".into());
    }
    Ok(())
}

/// When to remind the buyer of an order placed at `now`: the reminder lead before
/// the deadline, if the shop wants one and it falls after placement.
pub fn payment_reminder_at(settings: &ShopSettings, now: Timestamp) -> Option<Timestamp> {
    let lead = settings.payment_reminder_secs;
    (lead > 0 && lead < settings.payment_timeout_secs).then(|| now.plus_secs(settings.payment_timeout_secs - lead))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{Address, Buyer, OrderStatus, Pricing};
    use crate::{OrderId, ShopId};

    fn order(total: i64, note: Option<&str>, buyer: &str, phone: &str, line1: &str) -> Order {
        Order {
            id: OrderId(1),
            shop: ShopId(1),
            channel: "api".into(),
            external_id: None,
            status: OrderStatus::Paid,
            cancel_reason: None,
            hold_reason: None,
            payment_exception: None,
            buyer: Buyer {
                id: buyer.into(),
                name: None,
                phone: Some(phone.into()),
                email: None,
            },
            shipping_address: Some(Address {
                recipient: "张三".into(),
                phone: phone.into(),
                country: "CN".into(),
                province: "广东省".into(),
                city: "深圳市".into(),
                district: None,
                line1: line1.into(),
                line2: None,
                postal_code: None,
            }),
            lines: vec![],
            pricing: Pricing {
                currency: Currency::CNY,
                items_minor: total,
                shipping_minor: 0,
                tax_minor: 0,
                discount_minor: 0,
                total_minor: total,
            },
            note: note.map(String::from),
            payment_method: None,
            promotions: vec![],
            shipment: None,
            parcels: Vec::new(),
            revisions: Vec::new(),
            paid_minor: total,
            refunded_minor: 0,
            payment_due_at: None,
            payment_reminder_at: None,
            counted: vec![],
            history: Default::default(),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            version: 1,
        }
    }

    #[test]
    fn a_sku_has_at_most_one_purchase_limit() {
        let limit = |window_secs| crate::limits::PurchaseLimit {
            sku: "TEA".into(),
            max_units: 2,
            window_secs,
        };
        let mut settings = ShopSettings::new(crate::Currency::CNY);
        settings.purchase_limits = vec![limit(Some(86_400))];
        assert!(check_limits(&settings).is_ok());
        settings.purchase_limits.push(limit(None));
        let refused = check_limits(&settings).unwrap_err();
        assert!(refused.contains("`TEA` has more than one purchase limit"), "{refused}");
    }

    #[test]
    fn every_matching_rule_adds_its_reason() {
        let mut s = ShopSettings::new(Currency::CNY);
        s.review_above_minor = Some(10_000);
        s.review = ReviewRules {
            hold_when_note: true,
            blocked_buyers: vec!["bad-buyer".into()],
            blocked_phones: vec!["13900000000".into()],
            flagged_address_words: vec!["Locker 9".into()],
            ..ReviewRules::default()
        };
        let cases: &[(Order, &[&str])] = &[
            (order(5_000, None, "b", "13812345678", "文三路 1 号"), &[]),
            (order(5_000, Some("  "), "b", "13812345678", "文三路 1 号"), &[]),
            (
                order(20_000, None, "b", "13812345678", "文三路 1 号"),
                &["above the review limit"],
            ),
            (order(5_000, Some("请周末送"), "b", "13812345678", "x"), &["note"]),
            (
                order(5_000, None, "bad-buyer", "13812345678", "x"),
                &["buyer bad-buyer"],
            ),
            (order(5_000, None, "b", "13900000000", "x"), &["*******0000"]),
            (
                order(5_000, None, "b", "13812345678", "near locker 9, gate 2"),
                &["flagged word"],
            ),
            (
                order(20_000, Some("hi"), "bad-buyer", "13900000000", "LOCKER 9"),
                &["limit", "note", "buyer", "phone", "flagged"],
            ),
        ];
        for (o, expected) in cases {
            let reasons = review(&s, o);
            assert_eq!(reasons.len(), expected.len(), "{reasons:?}");
            for (reason, want) in reasons.iter().zip(expected.iter()) {
                assert!(reason.contains(want), "{reason} should mention {want}");
            }
        }
        assert!(
            review(&ShopSettings::new(Currency::CNY), &cases[7].0).is_empty(),
            "no rules, no holds"
        );
    }

    #[test]
    fn history_rules_read_the_facts_taken_at_placement() {
        let mut s = ShopSettings::new(Currency::CNY);
        s.review.new_buyer_above_minor = Some(10_000);
        s.review.address_orders = Some(AddressOrdersRule {
            max_orders: 3,
            window_secs: 3600,
        });
        let with = |total, before, at_address| {
            let mut o = order(total, None, "b", "13812345678", "x");
            o.history = crate::limits::HistoryFacts {
                buyer_orders_before: before,
                address_orders_in_window: at_address,
            };
            o
        };
        assert!(
            review(&s, &with(20_000, Some(1), Some(3))).is_empty(),
            "known buyer, 3 orders"
        );
        assert!(
            review(&s, &with(9_000, Some(0), Some(1))).is_empty(),
            "new buyer, small order"
        );
        assert!(review(&s, &with(20_000, None, None)).is_empty(), "no facts, no hold");
        let reasons = review(&s, &with(20_000, Some(0), Some(4)));
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("new buyer") && reasons[1].contains("4 orders to this address"));
    }
}
