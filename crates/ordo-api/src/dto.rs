//! The JSON shapes of the API. They live here only: the core's types never leak
//! onto the wire, so the core can change without breaking integrators.

use ordo_core::Timestamp;
use ordo_core::auth::{Principal, mask_tail};
use ordo_core::catalog::{Product, ProductKind, Shop, Warehouse};
use ordo_core::event::Event;
use ordo_core::inventory::{LedgerEntry, StockLevel};
use ordo_core::order::{Address, Buyer, Order};
use ordo_core::payment::{Payment, Refund};
use ordo_store::ApiKeyRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// RFC 3339 UTC, e.g. `2026-11-22T08:00:00.123Z`.
pub fn time(t: Timestamp) -> String {
    jiff::Timestamp::from_millisecond(t.0)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse::<jiff::Timestamp>().ok().map(|t| Timestamp(t.as_millisecond()))
}

// ---- shops and keys ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateShop {
    pub name: String,
    /// ISO 4217 code; all prices of the shop are in it. Default `CNY`.
    #[serde(default)]
    pub currency: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ShopView {
    pub id: String,
    pub name: String,
    pub currency: String,
    pub payment_timeout_secs: i64,
    /// The buyer is reminded this long before the payment deadline; 0 = no reminder.
    pub payment_reminder_secs: i64,
    pub review_above_minor: Option<i64>,
    pub review: ReviewRulesDto,
    /// Payment methods buyers may choose; empty means any.
    pub payment_methods: Vec<String>,
    /// The shop's promotions and coupons (shape in the README).
    #[schema(value_type = Vec<Object>)]
    pub promotions: serde_json::Value,
    pub purchase_limits: Vec<PurchaseLimitDto>,
    /// A virtual SKU's code pool below this raises `code_pool.low`.
    pub code_pool_low_at: i64,
    pub merge_window_secs: i64,
    pub created_at: String,
    /// Buyer notifications: language and channels.
    pub notifications: crate::routes::notifications::NotificationSettingsDto,
}

/// Rules that hold a paid order for a person; every match adds its reason.
#[derive(Deserialize, Serialize, ToSchema, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct ReviewRulesDto {
    /// Hold orders whose buyer wrote a note.
    #[serde(default)]
    pub hold_when_note: bool,
    #[serde(default)]
    pub blocked_buyers: Vec<String>,
    /// Matched against the buyer's and the recipient's phone.
    #[serde(default)]
    pub blocked_phones: Vec<String>,
    /// Case-insensitive words that flag an address.
    #[serde(default)]
    pub flagged_address_words: Vec<String>,
    /// Hold a new buyer's first order above this total (buyers count from when the rule is on).
    #[serde(default)]
    pub new_buyer_above_minor: Option<i64>,
    /// Hold orders beyond `max_orders` to one address within `window_secs`.
    #[serde(default)]
    pub address_orders: Option<AddressOrdersDto>,
}

#[derive(Deserialize, Serialize, ToSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct AddressOrdersDto {
    pub max_orders: i64,
    pub window_secs: i64,
}

/// 限购: at most `max_units` of `sku` per buyer within `window_secs` (absent = for ever).
#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct PurchaseLimitDto {
    pub sku: String,
    pub max_units: i64,
    #[serde(default)]
    pub window_secs: Option<i64>,
}

impl From<&ordo_core::limits::PurchaseLimit> for PurchaseLimitDto {
    fn from(l: &ordo_core::limits::PurchaseLimit) -> Self {
        PurchaseLimitDto {
            sku: l.sku.clone(),
            max_units: l.max_units,
            window_secs: l.window_secs,
        }
    }
}

impl From<PurchaseLimitDto> for ordo_core::limits::PurchaseLimit {
    fn from(l: PurchaseLimitDto) -> Self {
        ordo_core::limits::PurchaseLimit {
            sku: l.sku,
            max_units: l.max_units,
            window_secs: l.window_secs,
        }
    }
}

impl From<&ordo_core::catalog::ReviewRules> for ReviewRulesDto {
    fn from(r: &ordo_core::catalog::ReviewRules) -> Self {
        ReviewRulesDto {
            hold_when_note: r.hold_when_note,
            blocked_buyers: r.blocked_buyers.clone(),
            blocked_phones: r.blocked_phones.clone(),
            flagged_address_words: r.flagged_address_words.clone(),
            new_buyer_above_minor: r.new_buyer_above_minor,
            address_orders: r.address_orders.map(|a| AddressOrdersDto {
                max_orders: a.max_orders,
                window_secs: a.window_secs,
            }),
        }
    }
}

impl From<ReviewRulesDto> for ordo_core::catalog::ReviewRules {
    fn from(r: ReviewRulesDto) -> Self {
        ordo_core::catalog::ReviewRules {
            hold_when_note: r.hold_when_note,
            blocked_buyers: r.blocked_buyers,
            blocked_phones: r.blocked_phones,
            flagged_address_words: r.flagged_address_words,
            new_buyer_above_minor: r.new_buyer_above_minor,
            address_orders: r.address_orders.map(|a| ordo_core::catalog::AddressOrdersRule {
                max_orders: a.max_orders,
                window_secs: a.window_secs,
            }),
        }
    }
}

impl From<&Shop> for ShopView {
    fn from(s: &Shop) -> Self {
        ShopView {
            id: s.id.to_string(),
            name: s.name.clone(),
            currency: s.settings.currency.to_string(),
            payment_timeout_secs: s.settings.payment_timeout_secs,
            payment_reminder_secs: s.settings.payment_reminder_secs,
            review_above_minor: s.settings.review_above_minor,
            review: ReviewRulesDto::from(&s.settings.review),
            payment_methods: s.settings.payment_methods.clone(),
            promotions: serde_json::to_value(&s.settings.promotions).unwrap_or_default(),
            purchase_limits: s.settings.purchase_limits.iter().map(PurchaseLimitDto::from).collect(),
            code_pool_low_at: s.settings.code_pool_low_at,
            merge_window_secs: s.settings.merge_window_secs,
            created_at: time(s.created_at),
            notifications: (&s.settings.notifications).into(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    pub payment_timeout_secs: Option<i64>,
    pub payment_reminder_secs: Option<i64>,
    /// Hold paid orders above this total for review; `null` turns the rule off.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub review_above_minor: Option<Option<i64>>,
    /// Replaces the shop's review rules as a whole.
    pub review: Option<ReviewRulesDto>,
    /// Replaces the list of payment methods offered; `[]` offers any.
    pub payment_methods: Option<Vec<String>>,
    /// Replaces the shop's promotions (shape in the README).
    #[schema(value_type = Option<Vec<Object>>)]
    pub promotions: Option<serde_json::Value>,
    /// Replaces the shop's purchase limits.
    pub purchase_limits: Option<Vec<PurchaseLimitDto>>,
    /// Alert when a code pool falls below this many codes (default 10).
    pub code_pool_low_at: Option<i64>,
    /// One buyer's orders to one address placed within this many seconds merge into one shipment.
    pub merge_window_secs: Option<i64>,
    /// Replaces the buyer-notification settings as a whole.
    pub notifications: Option<crate::routes::notifications::NotificationSettingsDto>,
}

/// Distinguishes an absent field from an explicit `null`.
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `owner`, `operator`, `warehouse`, `viewer` or `integration`.
    pub role: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub shop_id: String,
    pub role: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// The secret, shown once at creation and never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl KeyView {
    pub fn new(k: &ApiKeyRecord, secret: Option<String>) -> Self {
        KeyView {
            id: k.id.to_string(),
            shop_id: k.shop.to_string(),
            role: k.role.as_str().to_string(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            created_at: time(k.created_at),
            revoked_at: k.revoked_at.map(time),
            secret,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewaySecret {
    pub secret: String,
}

// ---- catalogue ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    pub sku: String,
    pub name: String,
    /// `physical` (default) or `virtual`.
    #[serde(default)]
    pub kind: Option<String>,
    pub price_minor: i64,
    #[serde(default)]
    pub weight_g: i64,
    #[serde(default = "yes")]
    pub on_sale: bool,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Pre-sale (预售): RFC 3339 date the SKU ships from; it never shares a parcel with goods in stock.
    #[serde(default)]
    pub presale_ships_at: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchProduct {
    pub name: Option<String>,
    pub price_minor: Option<i64>,
    pub weight_g: Option<i64>,
    pub on_sale: Option<bool>,
    /// RFC 3339 pre-sale ship date; `null` ends the pre-sale.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub presale_ships_at: Option<Option<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct ProductView {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub kind: String,
    pub price_minor: i64,
    pub currency: String,
    pub weight_g: i64,
    pub on_sale: bool,
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub presale_ships_at: Option<String>,
    pub created_at: String,
}

impl From<&Product> for ProductView {
    fn from(p: &Product) -> Self {
        ProductView {
            id: p.id.to_string(),
            sku: p.sku.clone(),
            name: p.name.clone(),
            kind: p.kind.as_str().to_string(),
            price_minor: p.price_minor,
            currency: p.currency.to_string(),
            weight_g: p.weight_g,
            on_sale: p.on_sale,
            attributes: p.attributes.clone(),
            presale_ships_at: p.presale_ships_at.map(time),
            created_at: time(p.created_at),
        }
    }
}

pub fn product_kind(kind: Option<&str>) -> Option<ProductKind> {
    kind.map_or(Some(ProductKind::Physical), ProductKind::parse)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWarehouse {
    pub code: String,
    pub name: String,
    /// Region shipped from, e.g. `CN-GD`.
    pub region: String,
}

#[derive(Serialize, ToSchema)]
pub struct WarehouseView {
    pub id: String,
    pub code: String,
    pub name: String,
    pub region: String,
    pub active: bool,
    pub created_at: String,
}

impl From<&Warehouse> for WarehouseView {
    fn from(w: &Warehouse) -> Self {
        WarehouseView {
            id: w.id.to_string(),
            code: w.code.clone(),
            name: w.name.clone(),
            region: w.region.clone(),
            active: w.active,
            created_at: time(w.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockAdjustment {
    pub warehouse_id: String,
    /// Units to add (receipt) or remove (correction). Give this or `set_on_hand`.
    pub delta: Option<i64>,
    /// The counted number on hand (stocktake).
    pub set_on_hand: Option<i64>,
    pub note: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StockView {
    pub sku_id: String,
    pub warehouse_id: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    pub updated_at: String,
}

impl From<&StockLevel> for StockView {
    fn from(s: &StockLevel) -> Self {
        StockView {
            sku_id: s.sku.to_string(),
            warehouse_id: s.warehouse.to_string(),
            on_hand: s.on_hand,
            reserved: s.reserved,
            available: s.available(),
            updated_at: time(s.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SkuStockView {
    pub sku: String,
    pub sku_id: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    pub warehouses: Vec<StockView>,
}

#[derive(Serialize, ToSchema)]
pub struct LedgerView {
    pub seq: i64,
    pub warehouse_id: String,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    /// `receive`, `adjust`, `reserve`, `release` or `ship`.
    pub reason: String,
    pub order_id: Option<String>,
    pub actor: String,
    pub note: Option<String>,
    pub at: String,
}

impl LedgerView {
    pub fn new(seq: i64, e: &LedgerEntry) -> Self {
        LedgerView {
            seq,
            warehouse_id: e.warehouse.to_string(),
            on_hand_delta: e.on_hand_delta,
            reserved_delta: e.reserved_delta,
            reason: e.reason.as_str().to_string(),
            order_id: e.order.map(|o| o.to_string()),
            actor: e.actor.0.clone(),
            note: e.note.clone(),
            at: time(e.at),
        }
    }
}

// ---- orders ----

#[derive(Deserialize, Serialize, ToSchema, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct BuyerDto {
    pub id: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct AddressDto {
    pub recipient: String,
    pub phone: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub province: String,
    pub city: String,
    pub district: Option<String>,
    pub line1: String,
    pub line2: Option<String>,
    pub postal_code: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineDto {
    pub sku: String,
    pub quantity: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// Where the order came from; default `api`.
    #[serde(default)]
    pub channel: Option<String>,
    /// The channel's own order id; (channel, external_id) never makes two orders.
    pub external_id: Option<String>,
    pub buyer: BuyerDto,
    pub shipping_address: Option<AddressDto>,
    pub lines: Vec<LineDto>,
    #[serde(default)]
    pub shipping_minor: i64,
    pub note: Option<String>,
    /// How the buyer will pay (`alipay`, `wechat`, `card`, `cod` …); must be one the shop offers.
    pub payment_method: Option<String>,
    /// Coupon codes the buyer entered.
    #[serde(default)]
    pub coupon_codes: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OrderLineView {
    pub sku: String,
    pub sku_id: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub total_minor: i64,
    /// This line's share of the items discount.
    pub discount_minor: i64,
    pub warehouse_id: Option<String>,
    /// A virtual good, delivered as codes (see `/orders/{id}/codes`).
    pub digital: bool,
    /// Codes delivered for this line so far.
    pub codes_delivered: usize,
    /// Pre-sale: the line ships from this date.
    pub ships_at: Option<String>,
    /// Units of the line refunded so far, and what they came to.
    pub refunded_quantity: i64,
    pub refunded_minor: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PricingView {
    pub currency: String,
    pub items_minor: i64,
    pub shipping_minor: i64,
    /// Tax on top of the prices (channel orders priced net of tax); 0 otherwise.
    pub tax_minor: i64,
    /// Items and shipping discounts together.
    pub discount_minor: i64,
    /// total = items + shipping + tax − discount.
    pub total_minor: i64,
    /// Every promotion applied, with what it took off.
    pub promotions: Vec<AppliedPromotionView>,
}

#[derive(Serialize, ToSchema)]
pub struct AppliedPromotionView {
    pub id: String,
    pub coupon_code: Option<String>,
    pub items_discount_minor: i64,
    pub shipping_discount_minor: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ShipmentView {
    pub carrier: String,
    pub tracking_number: String,
    pub shipped_at: String,
}

impl From<&ordo_core::order::Shipment> for ShipmentView {
    fn from(s: &ordo_core::order::Shipment) -> Self {
        ShipmentView {
            carrier: s.carrier.clone(),
            tracking_number: s.tracking_number.clone(),
            shipped_at: time(s.shipped_at),
        }
    }
}

/// One edit of an order: on which version, by whom, why, and the totals.
#[derive(Serialize, ToSchema)]
pub struct RevisionView {
    pub version: i64,
    pub at: String,
    pub actor: String,
    pub reason: Option<String>,
    pub lines_changed: bool,
    pub address_changed: bool,
    pub total_before: i64,
    pub total_after: i64,
}

/// One parcel of an order that ships in several (pre-sale apart from goods in stock).
#[derive(Serialize, ToSchema)]
pub struct ParcelView {
    /// Indexes into `lines`.
    pub lines: Vec<u32>,
    /// Pre-sale: not before this.
    pub ships_at: Option<String>,
    pub shipment: Option<ShipmentView>,
}

#[derive(Serialize, ToSchema)]
pub struct OrderView {
    pub id: String,
    pub shop_id: String,
    pub channel: String,
    pub external_id: Option<String>,
    pub status: String,
    pub cancel_reason: Option<String>,
    pub hold_reason: Option<String>,
    pub payment_exception: Option<String>,
    pub buyer: BuyerDto,
    pub shipping_address: Option<AddressDto>,
    pub lines: Vec<OrderLineView>,
    pub pricing: PricingView,
    pub note: Option<String>,
    pub payment_method: Option<String>,
    pub shipment: Option<ShipmentView>,
    /// Set when the order ships in several parcels; ship each with `parcel` = its index.
    pub parcels: Vec<ParcelView>,
    /// Every edit since placement (A8), oldest first.
    pub revisions: Vec<RevisionView>,
    pub paid_minor: i64,
    pub refunded_minor: i64,
    pub payment_due_at: Option<String>,
    /// When the buyer will be reminded to pay (absent once reminded or paid).
    pub payment_reminder_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub version: i64,
}

fn masked(v: &Option<String>, keep: usize) -> Option<String> {
    v.as_deref().map(|s| mask_tail(s, keep))
}

impl OrderView {
    /// Renders an order for `who`, masking personal data its role does not need.
    pub fn new(o: &Order, who: &Principal) -> Self {
        let contact = who.sees_buyer_contact();
        let buyer = if contact {
            buyer_dto(&o.buyer)
        } else {
            BuyerDto {
                id: o.buyer.id.clone(),
                name: masked(&o.buyer.name, 1),
                phone: masked(&o.buyer.phone, 4),
                email: masked(&o.buyer.email, 4),
            }
        };
        let shipping_address = o
            .shipping_address
            .as_ref()
            .map(|a| address_dto(a, who.sees_address(), contact));
        OrderView {
            id: o.id.to_string(),
            shop_id: o.shop.to_string(),
            channel: o.channel.clone(),
            external_id: o.external_id.clone(),
            status: o.status.as_str().to_string(),
            cancel_reason: o.cancel_reason.map(|r| {
                serde_json::to_value(r)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            }),
            hold_reason: o.hold_reason.clone(),
            payment_exception: o.payment_exception.clone(),
            buyer,
            shipping_address,
            lines: o
                .lines
                .iter()
                .map(|l| OrderLineView {
                    sku: l.sku.clone(),
                    sku_id: l.sku_id.to_string(),
                    name: l.name.clone(),
                    quantity: l.quantity,
                    unit_price_minor: l.unit_price_minor,
                    total_minor: l.total_minor,
                    discount_minor: l.discount_minor,
                    warehouse_id: l.warehouse.map(|w| w.to_string()),
                    digital: l.digital,
                    codes_delivered: l.codes.len(),
                    ships_at: l.ships_at.map(time),
                    refunded_quantity: l.refunded_quantity,
                    refunded_minor: l.refunded_minor,
                })
                .collect(),
            pricing: PricingView {
                currency: o.pricing.currency.to_string(),
                items_minor: o.pricing.items_minor,
                tax_minor: o.pricing.tax_minor,
                shipping_minor: o.pricing.shipping_minor,
                discount_minor: o.pricing.discount_minor,
                total_minor: o.pricing.total_minor,
                promotions: o
                    .promotions
                    .iter()
                    .map(|p| AppliedPromotionView {
                        id: p.id.clone(),
                        coupon_code: p.coupon_code.clone(),
                        items_discount_minor: p.items_discount_minor,
                        shipping_discount_minor: p.shipping_discount_minor,
                    })
                    .collect(),
            },
            note: o.note.clone(),
            payment_method: o.payment_method.clone(),
            shipment: o.shipment.as_ref().map(ShipmentView::from),
            revisions: o
                .revisions
                .iter()
                .map(|r| RevisionView {
                    version: r.version,
                    at: time(r.at),
                    actor: r.actor.0.clone(),
                    reason: r.reason.clone(),
                    lines_changed: r.lines_changed,
                    address_changed: r.address_changed,
                    total_before: r.total_before,
                    total_after: r.total_after,
                })
                .collect(),
            parcels: o
                .parcels
                .iter()
                .map(|p| ParcelView {
                    lines: p.lines.clone(),
                    ships_at: p.ships_at.map(time),
                    shipment: p.shipment.as_ref().map(ShipmentView::from),
                })
                .collect(),
            paid_minor: o.paid_minor,
            refunded_minor: o.refunded_minor,
            payment_due_at: o.payment_due_at.map(time),
            payment_reminder_at: o.payment_reminder_at.map(time),
            created_at: time(o.created_at),
            updated_at: time(o.updated_at),
            version: o.version,
        }
    }
}

fn buyer_dto(b: &Buyer) -> BuyerDto {
    BuyerDto {
        id: b.id.clone(),
        name: b.name.clone(),
        phone: b.phone.clone(),
        email: b.email.clone(),
    }
}

fn address_dto(a: &Address, full: bool, contact: bool) -> AddressDto {
    let hide = |s: &str| if full { s.to_string() } else { mask_tail(s, 0) };
    AddressDto {
        recipient: if contact || full {
            a.recipient.clone()
        } else {
            mask_tail(&a.recipient, 1)
        },
        phone: if contact {
            a.phone.clone()
        } else {
            mask_tail(&a.phone, 4)
        },
        country: a.country.clone(),
        province: a.province.clone(),
        city: a.city.clone(),
        district: a.district.clone(),
        line1: hide(&a.line1),
        line2: a.line2.as_deref().map(hide),
        postal_code: a.postal_code.clone(),
    }
}

pub fn buyer_from(b: BuyerDto) -> Buyer {
    Buyer {
        id: b.id,
        name: b.name,
        phone: b.phone,
        email: b.email,
    }
}

pub fn address_from(a: AddressDto) -> Address {
    Address {
        recipient: a.recipient,
        phone: a.phone,
        country: a.country,
        province: a.province,
        city: a.city,
        district: a.district,
        line1: a.line1,
        line2: a.line2,
        postal_code: a.postal_code,
    }
}

#[derive(Serialize, ToSchema)]
pub struct OrderPageView {
    pub items: Vec<OrderView>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelOrder {
    /// `buyer`, `seller` or `platform` (default `seller`).
    pub reason: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ApproveOrder {
    /// Why the order may go ahead (kept in the audit trail).
    pub note: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectOrder {
    /// Why the order is turned down; it is cancelled by the seller and refunded.
    pub reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkApprove {
    pub order_ids: Vec<String>,
    pub note: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkReject {
    pub order_ids: Vec<String>,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct BulkItem {
    pub order_id: String,
    /// The order after the step, when it succeeded.
    pub order: Option<OrderView>,
    /// Why this order failed; the others are unaffected.
    pub error: Option<crate::problem::Problem>,
}

#[derive(Serialize, ToSchema)]
pub struct BulkResult {
    pub succeeded: usize,
    pub failed: usize,
    pub results: Vec<BulkItem>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldOrder {
    pub reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipOrder {
    pub carrier: String,
    pub tracking_number: String,
    /// For an order that ships in several parcels (pre-sale and in stock): which one,
    /// by its index in `parcels`.
    #[serde(default)]
    pub parcel: Option<usize>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolvePayment {
    /// `accept` (treat as paid) or `refund_and_cancel`.
    pub action: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// The amount to refund; or give `lines` instead.
    pub amount_minor: Option<i64>,
    /// Units of order lines to refund, each at its share of the line's price after
    /// discounts (the last unit of a line takes the remainder).
    pub lines: Option<Vec<LineRefundDto>>,
    pub reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRefundDto {
    /// Index into the order's `lines`.
    pub line: usize,
    pub quantity: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PaymentView {
    pub id: String,
    pub order_id: String,
    pub status: String,
    pub gateway: Option<String>,
    pub transaction_id: Option<String>,
    pub expected_minor: i64,
    pub currency: String,
    pub captured_minor: i64,
    pub captured_currency: Option<String>,
    pub refunded_minor: i64,
    pub created_at: String,
    pub resolved_at: Option<String>,
}

impl From<&Payment> for PaymentView {
    fn from(p: &Payment) -> Self {
        PaymentView {
            id: p.id.to_string(),
            order_id: p.order.to_string(),
            status: p.status.as_str().to_string(),
            gateway: p.gateway.clone(),
            transaction_id: p.transaction_id.clone(),
            expected_minor: p.expected_minor,
            currency: p.currency.to_string(),
            captured_minor: p.captured_minor,
            captured_currency: p.captured_currency.map(|c| c.to_string()),
            refunded_minor: p.refunded_minor,
            created_at: time(p.created_at),
            resolved_at: p.resolved_at.map(time),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RefundView {
    pub id: String,
    pub order_id: String,
    pub payment_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub reason: String,
    pub actor: String,
    pub created_at: String,
}

impl From<&Refund> for RefundView {
    fn from(r: &Refund) -> Self {
        RefundView {
            id: r.id.to_string(),
            order_id: r.order.to_string(),
            payment_id: r.payment.to_string(),
            amount_minor: r.amount_minor,
            currency: r.currency.to_string(),
            reason: r.reason.clone(),
            actor: r.actor.0.clone(),
            created_at: time(r.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RefundResult {
    pub order: OrderView,
    pub refunds: Vec<RefundView>,
}

#[derive(Serialize, ToSchema)]
pub struct NotifyResult {
    /// `captured`, `already_processed`, `mismatch`, `failed` or `unexpected`.
    pub result: String,
}

#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    pub shop_id: Option<String>,
    pub subject: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub actor: String,
    pub at: String,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        EventView {
            id: e.seq,
            shop_id: e.shop.map(|s| s.to_string()),
            subject: e.subject.clone(),
            kind: e.kind.clone(),
            payload: e.payload.clone(),
            actor: e.actor.0.clone(),
            at: time(e.at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventView>,
    /// Pass as `after` to continue.
    pub next_after: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ImportRowView {
    /// Line in the file (the header is line 1).
    pub line: usize,
    pub external_id: Option<String>,
    /// `created`, `duplicate` (imported before) or `rejected`.
    pub status: String,
    pub order_id: Option<String>,
    pub error_code: Option<String>,
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ImportReportView {
    pub rows: usize,
    pub orders_created: usize,
    pub orders_duplicate: usize,
    pub rows_rejected: usize,
    pub results: Vec<ImportRowView>,
}

impl From<ordo_engine::import::ImportReport> for ImportReportView {
    fn from(r: ordo_engine::import::ImportReport) -> Self {
        use ordo_engine::import::RowStatus;
        ImportReportView {
            rows: r.rows,
            orders_created: r.orders_created,
            orders_duplicate: r.orders_duplicate,
            rows_rejected: r.rows_rejected,
            results: r
                .results
                .into_iter()
                .map(|x| ImportRowView {
                    line: x.line,
                    external_id: x.external_id,
                    status: match x.status {
                        RowStatus::Created => "created",
                        RowStatus::Duplicate => "duplicate",
                        RowStatus::Rejected => "rejected",
                    }
                    .to_string(),
                    order_id: x.order_id,
                    error_code: x.error_code,
                    error: x.error,
                })
                .collect(),
        }
    }
}
