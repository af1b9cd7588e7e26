//! Buyer notifications (K1), the pure part: which events tell the buyer what, on
//! which channel, the texts in zh-CN and English, and the retry schedule.
//!
//! The shell (`ordo-notify`) reads the event log, asks [`plan`] what to send,
//! records it in the delivery log, renders it with [`render`] when it is due and
//! hands it to a provider. Nothing here sends, reads a clock or touches storage.

use serde::{Deserialize, Serialize};

use crate::event::{Event, kinds};
use crate::order::Order;
use crate::{Currency, OrderId, Timestamp};

/// The language of a shop's buyer messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Locale {
    #[default]
    #[serde(rename = "zh-CN")]
    ZhCn,
    #[serde(rename = "en")]
    En,
}

impl Locale {
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::ZhCn => "zh-CN",
            Locale::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Locale> {
        [Locale::ZhCn, Locale::En].into_iter().find(|l| l.as_str() == s)
    }
}

fn yes() -> bool {
    true
}

/// A shop's notification settings (part of `ShopSettings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationSettings {
    #[serde(default)]
    pub locale: Locale,
    /// Send e-mails to buyers who gave an address.
    #[serde(default = "yes")]
    pub email: bool,
    /// Send text messages to the buyer's (or else the recipient's) phone.
    #[serde(default = "yes")]
    pub sms: bool,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            locale: Locale::ZhCn,
            email: true,
            sms: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        [Channel::Email, Channel::Sms].into_iter().find(|c| c.as_str() == s)
    }
}

/// Where a notification stands in the delivery log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or a retry.
    Pending,
    Sent,
    /// Every attempt failed (or it could not be sent at all); no more retries.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        [DeliveryStatus::Pending, DeliveryStatus::Sent, DeliveryStatus::Failed]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// The messages Ordo sends; each is named after the event kind that triggers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    OrderPlaced,
    PaymentReminder,
    Paid,
    Shipped,
    Delivered,
    Refund,
    CodesDelivered,
    /// A pre-sale line's ship date moved, or the pre-sale ended and it ships now.
    PresaleRescheduled,
}

impl Template {
    pub const ALL: [Template; 8] = [
        Template::OrderPlaced,
        Template::PaymentReminder,
        Template::Paid,
        Template::Shipped,
        Template::Delivered,
        Template::Refund,
        Template::CodesDelivered,
        Template::PresaleRescheduled,
    ];

    /// The event kind that triggers this template; also its stored name.
    pub fn kind(self) -> &'static str {
        match self {
            Template::OrderPlaced => kinds::ORDER_PLACED,
            Template::PaymentReminder => kinds::ORDER_PAYMENT_REMINDER,
            Template::Paid => kinds::ORDER_PAID,
            Template::Shipped => kinds::ORDER_SHIPPED,
            Template::Delivered => kinds::ORDER_DELIVERED,
            Template::Refund => kinds::REFUND_CREATED,
            Template::CodesDelivered => kinds::ORDER_CODES_DELIVERED,
            Template::PresaleRescheduled => kinds::ORDER_PRESALE_RESCHEDULED,
        }
    }

    /// The template an event kind notifies with; each parcel of a split order is
    /// announced like a shipment (its event carries its own carrier and tracking).
    pub fn from_kind(kind: &str) -> Option<Template> {
        if kind == kinds::ORDER_PARCEL_SHIPPED {
            return Some(Template::Shipped);
        }
        Template::ALL.into_iter().find(|t| t.kind() == kind)
    }

    /// Whether this message also goes out by SMS. Text messages cost money and
    /// interrupt, so only what the buyer must act on or wait for goes there: the
    /// payment reminder, payment confirmation, dispatch, refunds, codes and a moved
    /// ship date. The order confirmation and delivery notice are e-mail only.
    pub fn by_sms(self) -> bool {
        !matches!(self, Template::OrderPlaced | Template::Delivered)
    }
}

/// One notification to record for an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub channel: Channel,
    pub to: String,
    pub template: Template,
    pub locale: Locale,
    /// The facts of the event the message needs (its payload: carrier, refund amount…).
    pub data: serde_json::Value,
}

/// The order an event is about: the subject of order events, `payload.order` of
/// refund events.
pub fn order_of(event: &Event) -> Option<OrderId> {
    if let Ok(id) = event.subject.parse() {
        return Some(id);
    }
    event.payload.get("order")?.as_str()?.parse().ok()
}

/// What to send for `event` about `order` under the shop's `settings`: an e-mail to
/// the buyer's address if there is one, a text to the buyer's phone (or else the
/// shipping address's) for the templates that go by SMS. Events that notify nobody
/// plan nothing.
pub fn plan(event: &Event, order: &Order, settings: &NotificationSettings) -> Vec<Planned> {
    let Some(template) = Template::from_kind(&event.kind) else {
        return Vec::new();
    };
    let planned = |channel, to: &str| Planned {
        channel,
        to: to.to_string(),
        template,
        locale: settings.locale,
        data: event.payload.clone(),
    };
    let mut out = Vec::new();
    let present = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(String::from);
    if settings.email
        && let Some(email) = present(&order.buyer.email)
    {
        out.push(planned(Channel::Email, &email));
    }
    let phone = present(&order.buyer.phone).or_else(|| {
        order
            .shipping_address
            .as_ref()
            .map(|a| a.phone.trim().to_string())
            .filter(|p| !p.is_empty())
    });
    if settings.sms
        && template.by_sms()
        && let Some(phone) = phone
    {
        out.push(planned(Channel::Sms, &phone));
    }
    out
}

/// A rendered message. SMS providers send only the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub body: String,
}

/// The delivered codes for [`Template::CodesDelivered`], when the shell could read them.
#[derive(Debug, Clone, Copy)]
pub enum Codes<'a> {
    Listed(&'a [String]),
    /// No code source, or it failed: the buyer is pointed at the order page.
    Unavailable,
}

/// Renders `template` for `order`. `data` is the planned notification's event facts;
/// `codes` matters only for [`Template::CodesDelivered`].
pub fn render(
    template: Template,
    locale: Locale,
    order: &Order,
    data: &serde_json::Value,
    codes: Codes<'_>,
) -> Message {
    let id = order.external_id.as_deref().unwrap_or_default();
    let id = if id.is_empty() {
        order.id.to_string()
    } else {
        id.to_string()
    };
    let currency = order.pricing.currency;
    let total = format_amount(order.pricing.total_minor, currency, locale);
    let text = |key: &str| data.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let lines = order
        .lines
        .iter()
        .map(|l| format!("  {} × {}", l.name, l.quantity))
        .collect::<Vec<_>>()
        .join("\n");
    let zh = locale == Locale::ZhCn;
    let (subject, body) = match template {
        Template::OrderPlaced if zh => (
            format!("订单已提交：{id}"),
            format!(
                "您好，您的订单 {id} 已提交，应付金额 {total}。\n{lines}\n请尽快完成支付，超时未付的订单将自动取消。"
            ),
        ),
        Template::OrderPlaced => (
            format!("Order {id} received"),
            format!(
                "Hello, we received your order {id}. Amount due: {total}.\n{lines}\nPlease pay soon: unpaid orders are cancelled automatically."
            ),
        ),
        Template::PaymentReminder if zh => (
            format!("订单 {id} 待支付"),
            format!("您的订单 {id} 尚未支付（{total}），即将超时自动取消，请尽快完成支付。"),
        ),
        Template::PaymentReminder => (
            format!("Order {id} is waiting for payment"),
            format!(
                "Your order {id} ({total}) has not been paid yet and will be cancelled soon. Please complete the payment."
            ),
        ),
        Template::Paid if zh => {
            let paid = format_amount(order.paid_minor, currency, locale);
            (
                format!("订单 {id} 支付成功"),
                format!("我们已收到您的付款 {paid}，订单 {id} 正在备货。\n{lines}"),
            )
        }
        Template::Paid => {
            let paid = format_amount(order.paid_minor, currency, locale);
            (
                format!("Payment received for order {id}"),
                format!("We received your payment of {paid}. Order {id} is being prepared.\n{lines}"),
            )
        }
        Template::Shipped => {
            let shipment = order.shipment.as_ref();
            let carrier = Some(text("carrier"))
                .filter(|c| !c.is_empty())
                .or_else(|| shipment.map(|s| s.carrier.clone()))
                .unwrap_or_default();
            let tracking = Some(text("tracking_number"))
                .filter(|t| !t.is_empty())
                .or_else(|| shipment.map(|s| s.tracking_number.clone()))
                .unwrap_or_default();
            if zh {
                (
                    format!("订单 {id} 已发货"),
                    format!("您的订单 {id} 已由 {carrier} 发出，运单号 {tracking}。"),
                )
            } else {
                (
                    format!("Order {id} has shipped"),
                    format!("Your order {id} has shipped with {carrier}, tracking number {tracking}."),
                )
            }
        }
        Template::Delivered if zh => (
            format!("订单 {id} 已送达"),
            format!("您的订单 {id} 已送达，感谢您的购买！"),
        ),
        Template::Delivered => (
            format!("Order {id} was delivered"),
            format!("Your order {id} was delivered. Thank you for shopping with us!"),
        ),
        Template::Refund => {
            let amount_minor = data.get("amount_minor").and_then(|v| v.as_i64());
            let refund_currency = data
                .get("currency")
                .and_then(|v| v.as_str())
                .and_then(|c| c.parse().ok())
                .unwrap_or(currency);
            let amount = format_amount(amount_minor.unwrap_or(order.refunded_minor), refund_currency, locale);
            if zh {
                (
                    format!("订单 {id} 退款 {amount}"),
                    format!("我们已为您的订单 {id} 退款 {amount}，款项将按原支付方式退回。"),
                )
            } else {
                (
                    format!("Refund of {amount} for order {id}"),
                    format!("We refunded {amount} for your order {id}; it goes back to the way you paid."),
                )
            }
        }
        Template::CodesDelivered => {
            let listed = match codes {
                Codes::Listed(codes) if !codes.is_empty() => {
                    Some(codes.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n"))
                }
                _ => None,
            };
            match (zh, listed) {
                (true, Some(listed)) => (
                    format!("订单 {id} 的兑换码"),
                    format!("您购买的兑换码如下（订单 {id}）：\n{listed}\n请妥善保管。"),
                ),
                (true, None) => (
                    format!("订单 {id} 的兑换码"),
                    format!("您的订单 {id} 的兑换码已发放，可在订单页面查看。"),
                ),
                (false, Some(listed)) => (
                    format!("Your codes for order {id}"),
                    format!("Here are the codes you bought (order {id}):\n{listed}\nPlease keep them safe."),
                ),
                (false, None) => (
                    format!("Your codes for order {id}"),
                    format!(
                        "The codes of your order {id} were delivered: your codes are available in your order page."
                    ),
                ),
            }
        }
        Template::PresaleRescheduled => {
            let sku = text("sku");
            let item = order
                .lines
                .iter()
                .find(|l| l.sku == sku)
                .map_or(sku.clone(), |l| l.name.clone());
            let date = |key: &str| data.get(key).and_then(|v| v.as_i64()).map(|ms| ship_date(ms, locale));
            match (zh, date("ships_at"), date("before")) {
                (true, Some(to), before) => (
                    format!("订单 {id} 发货时间调整"),
                    format!(
                        "您的订单 {id} 中的预售商品「{item}」预计发货日期调整为 {to}{}。给您带来不便，敬请谅解。",
                        before.map(|b| format!("（原定 {b}）")).unwrap_or_default()
                    ),
                ),
                (true, None, _) => (
                    format!("订单 {id} 即将发货"),
                    format!("您的订单 {id} 中的预售商品「{item}」已到货，我们将尽快为您发货。"),
                ),
                (false, Some(to), before) => (
                    format!("New shipping date for order {id}"),
                    format!(
                        "The pre-sale item \"{item}\" in your order {id} is now expected to ship on {to}{}. We are sorry for the wait.",
                        before.map(|b| format!(" (it was {b})")).unwrap_or_default()
                    ),
                ),
                (false, None, _) => (
                    format!("Order {id} ships soon"),
                    format!("The pre-sale item \"{item}\" in your order {id} is in stock now and will ship soon."),
                ),
            }
        }
    };
    Message { subject, body }
}

/// A ship date as buyers read it: zh-CN messages go to buyers in China, so the
/// day is China Standard Time's (UTC+8, no daylight saving); English ones give
/// the UTC day and say so.
fn ship_date(ms: i64, locale: Locale) -> String {
    let Ok(at) = jiff::Timestamp::from_millisecond(ms) else {
        return String::new();
    };
    match locale {
        Locale::ZhCn => {
            let day = at.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).date();
            format!("{}年{}月{}日", day.year(), day.month(), day.day())
        }
        Locale::En => format!("{} (UTC)", at.to_zoned(jiff::tz::TimeZone::UTC).date()),
    }
}

/// Digits after the decimal point of a currency's minor unit.
fn minor_digits(currency: Currency) -> u32 {
    match currency.as_str() {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" => 3,
        _ => 2,
    }
}

/// An amount in minor units for people: `¥128.50` for yuan in Chinese, otherwise
/// the ISO code first (`CNY 128.50`, `USD 3.00`).
pub fn format_amount(minor: i64, currency: Currency, locale: Locale) -> String {
    let digits = minor_digits(currency);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let scale = 10u64.pow(digits);
    let number = if digits == 0 {
        abs.to_string()
    } else {
        format!("{}.{:0width$}", abs / scale, abs % scale, width = digits as usize)
    };
    if locale == Locale::ZhCn && currency == Currency::CNY {
        format!("{sign}¥{number}")
    } else {
        format!("{sign}{currency} {number}")
    }
}

/// Waits before each retry: after the first failed attempt 30 s, then 2 min, 10 min,
/// 1 h and 6 h; a notification whose sixth attempt fails is `failed`.
pub const RETRY_BACKOFF_SECS: [i64; 5] = [30, 120, 600, 3_600, 21_600];

/// The most attempts a notification gets (the first plus one per backoff step).
pub const MAX_ATTEMPTS: u32 = RETRY_BACKOFF_SECS.len() as u32 + 1;

/// When to try again after attempt number `attempts` (1 = the first) failed at
/// `failed_at`; `None` = give up.
pub fn next_attempt(attempts: u32, failed_at: Timestamp) -> Option<Timestamp> {
    let step = usize::try_from(attempts.checked_sub(1)?).ok()?;
    RETRY_BACKOFF_SECS.get(step).map(|secs| failed_at.plus_secs(*secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Actor;
    use crate::order::{Address, Buyer, OrderLine, OrderStatus, Pricing, Shipment};
    use crate::{ProductId, ShopId};

    fn order() -> Order {
        Order {
            id: OrderId(0xabc),
            shop: ShopId(1),
            channel: "web".into(),
            external_id: Some("WEB-1001".into()),
            status: OrderStatus::Paid,
            cancel_reason: None,
            hold_reason: None,
            payment_exception: None,
            buyer: Buyer {
                id: "b1".into(),
                name: Some("韩梅梅".into()),
                phone: Some("13800000001".into()),
                email: Some("meimei@example.com".into()),
            },
            shipping_address: Some(Address {
                recipient: "韩梅梅".into(),
                phone: "13900000002".into(),
                country: "CN".into(),
                province: "广东省".into(),
                city: "深圳市".into(),
                district: None,
                line1: "科技路 1 号".into(),
                line2: None,
                postal_code: None,
            }),
            lines: vec![OrderLine {
                sku_id: ProductId(2),
                sku: "TEE".into(),
                name: "T 恤".into(),
                quantity: 2,
                unit_price_minor: 6425,
                total_minor: 12850,
                warehouse: None,
                discount_minor: 0,
                digital: false,
                codes: Vec::new(),
                ships_at: None,
                refunded_quantity: 0,
                refunded_minor: 0,
            }],
            pricing: Pricing {
                currency: Currency::CNY,
                items_minor: 12850,
                shipping_minor: 0,
                tax_minor: 0,
                discount_minor: 0,
                total_minor: 12850,
            },
            note: None,
            payment_method: None,
            promotions: Vec::new(),
            shipment: Some(Shipment {
                carrier: "SF".into(),
                tracking_number: "SF123".into(),
                shipped_at: Timestamp(0),
            }),
            parcels: Vec::new(),
            revisions: Vec::new(),
            paid_minor: 12850,
            refunded_minor: 0,
            payment_due_at: None,
            counted: Vec::new(),
            history: Default::default(),
            payment_reminder_at: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            version: 1,
        }
    }

    fn event(kind: &str, subject: String, payload: serde_json::Value) -> Event {
        Event {
            seq: 7,
            shop: Some(ShopId(1)),
            subject,
            kind: kind.into(),
            payload,
            actor: Actor("key_x".into()),
            at: Timestamp(0),
        }
    }

    fn data(t: Template) -> serde_json::Value {
        match t {
            Template::Shipped => serde_json::json!({"carrier": "SF", "tracking_number": "SF123"}),
            Template::Refund => serde_json::json!({"amount_minor": 5000, "currency": "CNY", "order": "x"}),
            Template::CodesDelivered => serde_json::json!({"codes": 2}),
            // 2027-03-01T00:00:00+08:00, moved from 2027-02-01T00:00:00+08:00.
            Template::PresaleRescheduled => {
                serde_json::json!({"sku": "TEE", "ships_at": 1_803_830_400_000_i64, "before": 1_801_411_200_000_i64})
            }
            _ => serde_json::json!({}),
        }
    }

    /// Every template in both locales: the subject names the order, the body says
    /// the one fact that template is about, and the two locales differ.
    #[test]
    fn every_template_renders_in_both_locales() {
        let o = order();
        let codes = vec!["AAAA-1111".to_string(), "BBBB-2222".to_string()];
        let expect: &[(Template, &str, &str, &str, &str)] = &[
            (
                Template::OrderPlaced,
                "订单已提交：WEB-1001",
                "¥128.50",
                "Order WEB-1001 received",
                "CNY 128.50",
            ),
            (
                Template::PaymentReminder,
                "订单 WEB-1001 待支付",
                "尚未支付（¥128.50）",
                "waiting for payment",
                "has not been paid",
            ),
            (
                Template::Paid,
                "订单 WEB-1001 支付成功",
                "付款 ¥128.50",
                "Payment received for order WEB-1001",
                "payment of CNY 128.50",
            ),
            (
                Template::Shipped,
                "订单 WEB-1001 已发货",
                "SF 发出，运单号 SF123",
                "Order WEB-1001 has shipped",
                "with SF, tracking number SF123",
            ),
            (
                Template::Delivered,
                "订单 WEB-1001 已送达",
                "感谢您的购买",
                "Order WEB-1001 was delivered",
                "Thank you",
            ),
            (
                Template::Refund,
                "订单 WEB-1001 退款 ¥50.00",
                "退款 ¥50.00",
                "Refund of CNY 50.00 for order WEB-1001",
                "refunded CNY 50.00",
            ),
            (
                Template::CodesDelivered,
                "订单 WEB-1001 的兑换码",
                "AAAA-1111",
                "Your codes for order WEB-1001",
                "BBBB-2222",
            ),
            (
                Template::PresaleRescheduled,
                "订单 WEB-1001 发货时间调整",
                "「T 恤」预计发货日期调整为 2027年3月1日（原定 2027年2月1日）",
                "New shipping date for order WEB-1001",
                "ship on 2027-02-28 (UTC) (it was 2027-01-31 (UTC))",
            ),
        ];
        assert_eq!(expect.len(), Template::ALL.len());
        for (t, zh_subject, zh_body, en_subject, en_body) in expect {
            let zh = render(*t, Locale::ZhCn, &o, &data(*t), Codes::Listed(&codes));
            let en = render(*t, Locale::En, &o, &data(*t), Codes::Listed(&codes));
            assert_eq!(zh.subject, *zh_subject, "{t:?}");
            assert!(zh.body.contains(zh_body), "{t:?}: {}", zh.body);
            assert!(en.subject.contains(en_subject), "{t:?}: {}", en.subject);
            assert!(en.body.contains(en_body), "{t:?}: {}", en.body);
            assert!(zh.body.contains("WEB-1001") && en.body.contains("WEB-1001"), "{t:?}");
            assert_ne!(zh, en);
        }
        let placed = render(
            Template::OrderPlaced,
            Locale::En,
            &o,
            &data(Template::OrderPlaced),
            Codes::Unavailable,
        );
        assert!(placed.body.contains("T 恤 × 2"), "{}", placed.body);
    }

    #[test]
    fn a_presale_that_ended_ships_soon() {
        let o = order();
        let data = serde_json::json!({"sku": "TEE", "ships_at": null, "before": 1_801_411_200_000_i64});
        let zh = render(
            Template::PresaleRescheduled,
            Locale::ZhCn,
            &o,
            &data,
            Codes::Unavailable,
        );
        assert_eq!(zh.subject, "订单 WEB-1001 即将发货");
        assert!(zh.body.contains("「T 恤」已到货"), "{}", zh.body);
        let en = render(Template::PresaleRescheduled, Locale::En, &o, &data, Codes::Unavailable);
        assert!(en.body.contains("in stock now and will ship soon"), "{}", en.body);
    }

    #[test]
    fn codes_without_a_source_point_at_the_order_page() {
        let o = order();
        let en = render(
            Template::CodesDelivered,
            Locale::En,
            &o,
            &data(Template::CodesDelivered),
            Codes::Unavailable,
        );
        assert!(
            en.body.contains("your codes are available in your order page"),
            "{}",
            en.body
        );
        let zh = render(
            Template::CodesDelivered,
            Locale::ZhCn,
            &o,
            &data(Template::CodesDelivered),
            Codes::Listed(&[]),
        );
        assert!(zh.body.contains("可在订单页面查看"), "{}", zh.body);
    }

    #[test]
    fn orders_without_an_external_id_are_named_by_their_id() {
        let mut o = order();
        o.external_id = None;
        let m = render(
            Template::Delivered,
            Locale::En,
            &o,
            &serde_json::json!({}),
            Codes::Unavailable,
        );
        assert_eq!(m.subject, format!("Order {} was delivered", o.id));
    }

    #[test]
    fn amounts_use_the_currency_minor_unit() {
        assert_eq!(format_amount(12850, Currency::CNY, Locale::ZhCn), "¥128.50");
        assert_eq!(format_amount(12850, Currency::CNY, Locale::En), "CNY 128.50");
        assert_eq!(format_amount(5, Currency::USD, Locale::ZhCn), "USD 0.05");
        assert_eq!(format_amount(-100, Currency::CNY, Locale::ZhCn), "-¥1.00");
        assert_eq!(format_amount(1200, "JPY".parse().unwrap(), Locale::En), "JPY 1200");
        assert_eq!(format_amount(1234, "KWD".parse().unwrap(), Locale::En), "KWD 1.234");
    }

    #[test]
    fn plan_sends_email_and_sms_where_the_buyer_can_be_reached() {
        let mut o = order();
        let settings = NotificationSettings::default();
        let paid = event(kinds::ORDER_PAID, o.id.to_string(), serde_json::json!({}));
        let p = plan(&paid, &o, &settings);
        assert_eq!(
            p.iter().map(|p| (p.channel, p.to.as_str())).collect::<Vec<_>>(),
            vec![(Channel::Email, "meimei@example.com"), (Channel::Sms, "13800000001")]
        );
        assert!(
            p.iter()
                .all(|p| p.template == Template::Paid && p.locale == Locale::ZhCn)
        );

        // The order confirmation is e-mail only.
        let placed = event(kinds::ORDER_PLACED, o.id.to_string(), serde_json::json!({}));
        assert_eq!(plan(&placed, &o, &settings).len(), 1);

        // No buyer phone: the recipient's phone; no e-mail: nothing by e-mail.
        o.buyer.phone = None;
        o.buyer.email = Some("  ".into());
        let p = plan(&paid, &o, &settings);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].channel, p[0].to.as_str()), (Channel::Sms, "13900000002"));

        // Switched off per channel.
        let off = NotificationSettings {
            locale: Locale::En,
            email: false,
            sms: false,
        };
        assert!(plan(&paid, &order(), &off).is_empty());

        // Events that notify nobody.
        let held = event(kinds::ORDER_HELD, o.id.to_string(), serde_json::json!({}));
        assert!(plan(&held, &o, &settings).is_empty());
    }

    #[test]
    fn refund_events_name_their_order_in_the_payload() {
        let o = order();
        let refund = event(
            kinds::REFUND_CREATED,
            "ref_00000000000000000000000000000009".into(),
            serde_json::json!({"order": o.id, "amount_minor": 100}),
        );
        assert_eq!(order_of(&refund), Some(o.id));
        let shipped = event(kinds::ORDER_SHIPPED, o.id.to_string(), serde_json::json!({}));
        assert_eq!(order_of(&shipped), Some(o.id));
        let parcel = event(
            kinds::ORDER_PARCEL_SHIPPED,
            o.id.to_string(),
            serde_json::json!({ "carrier": "SF", "tracking_number": "SF-P1", "parcel": 0 }),
        );
        let announced = plan(&parcel, &o, &NotificationSettings::default());
        assert!(!announced.is_empty(), "a parcel is announced like a shipment");
        assert_eq!(announced[0].template, Template::Shipped);
        assert_eq!(announced[0].data["tracking_number"], "SF-P1");
        let planned = plan(&refund, &o, &NotificationSettings::default());
        assert_eq!(planned[0].data["amount_minor"], 100);
    }

    #[test]
    fn every_template_is_named_after_its_event_kind() {
        for t in Template::ALL {
            assert_eq!(Template::from_kind(t.kind()), Some(t));
        }
        assert_eq!(
            Template::from_kind(kinds::ORDER_CODES_DELIVERED),
            Some(Template::CodesDelivered)
        );
    }

    #[test]
    fn retries_back_off_then_give_up() {
        let t = Timestamp(1_000_000);
        let waits: Vec<Option<i64>> = (1..=MAX_ATTEMPTS + 1)
            .map(|n| next_attempt(n, t).map(|at| (at.0 - t.0) / 1000))
            .collect();
        assert_eq!(
            waits,
            vec![Some(30), Some(120), Some(600), Some(3600), Some(21600), None, None]
        );
        assert_eq!(next_attempt(0, t), None);
        assert_eq!(MAX_ATTEMPTS, 6);
    }

    #[test]
    fn settings_default_to_chinese_on_every_channel() {
        let s: NotificationSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, NotificationSettings::default());
        assert_eq!(s.locale, Locale::ZhCn);
        let en: NotificationSettings = serde_json::from_str(r#"{"locale": "en", "sms": false}"#).unwrap();
        assert_eq!((en.locale, en.email, en.sms), (Locale::En, true, false));
        assert_eq!(serde_json::to_value(Locale::ZhCn).unwrap(), "zh-CN");
        for l in [Locale::ZhCn, Locale::En] {
            assert_eq!(Locale::parse(l.as_str()), Some(l));
        }
    }
}
