//! Inbound orders from sales channels: parsing and signature checks.
//!
//! Each channel module ([`shopify`], [`woocommerce`], [`marketplace`]) has a `verify` function for the
//! webhook signature and a `parse` function that turns the raw body into a [`ChannelOrder`].
//!
//! Invariant: this crate is pure. It does no I/O, reads no clock and spawns nothing; the HTTP layer
//! hands in the raw body and the signature header and gets back an order or a typed [`ChannelError`]
//! whose [`code`](ChannelError::code) is a stable reason for the API response.
//!
//! Money never goes through floating point: amounts are decimal strings converted exactly to the
//! currency's minor unit by [`parse_amount`]. Every parsed order satisfies
//! `Σ unit_price × quantity + shipping + tax − discount == total`, or parsing fails with
//! `totals-mismatch`.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use ordo_core::Currency;
use ordo_core::money::AMOUNT_MINOR_MAX;
use ordo_core::order::{Address, Buyer};
use serde::Serialize;
use sha2::Sha256;

pub mod marketplace;
pub mod shopify;
pub mod woocommerce;

/// An order as a channel reported it, in Ordo's terms and minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelOrder {
    /// Which channel sent it: `"shopify"`, `"woocommerce"` or `"marketplace"`.
    pub channel: &'static str,
    /// The channel's own order id (Shopify `id` in decimal, WooCommerce `id`, marketplace `order_id`).
    pub external_id: String,
    /// The order number people see, e.g. `"#1001"`.
    pub number: Option<String>,
    /// Only for the marketplace format: the platform the export came from (`"taobao"`, `"xianyu"`, …).
    pub platform: Option<String>,
    /// Currency of every amount in the order.
    pub currency: Currency,
    /// The buyer; `id` is the channel's customer id, else the email, else `"guest:<order id>"`.
    pub buyer: Buyer,
    /// Where to ship; `None` for orders without shipping (virtual goods).
    pub shipping_address: Option<Address>,
    /// The ordered items, at least one.
    pub lines: Vec<ChannelLine>,
    /// Shipping charged, before shipping discounts.
    pub shipping_minor: i64,
    /// Tax not already included in the prices (0 when prices include tax).
    pub tax_minor: i64,
    /// All discounts (line, order and shipping level): items + shipping + tax − discount == total.
    pub discount_minor: i64,
    /// What the buyer pays.
    pub total_minor: i64,
    /// The buyer's note, if any.
    pub note: Option<String>,
    /// Whether and how the order is paid.
    pub payment: ChannelPayment,
    /// The channel's name for the payment method (gateway name, `payment_method` slug).
    pub payment_method: Option<String>,
    /// The channel says the order is cancelled: Shopify `cancelled_at` set (the
    /// `orders/cancelled` webhook), WooCommerce status `cancelled`, marketplace `cancelled: true`.
    pub cancelled: bool,
}

/// One ordered item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelLine {
    /// The channel's product id.
    pub product_id: Option<String>,
    /// The channel's variant (variation, SKU) id.
    pub variant_id: Option<String>,
    /// The seller's SKU exactly as given (may be empty or absent).
    pub sku: Option<String>,
    /// The item name shown to the buyer.
    pub title: String,
    /// How many, at least 1.
    pub quantity: i64,
    /// Price of one unit before discounts.
    pub unit_price_minor: i64,
    /// Discount allocated to this line (already part of the order's `discount_minor`).
    pub discount_minor: i64,
}

/// Whether the channel has taken the money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ChannelPayment {
    /// Captured at the channel. `reference` is stable across redeliveries (e.g. `"shopify:<order id>"`)
    /// so the payment can be recorded exactly once.
    Paid { amount_minor: i64, reference: String },
    /// Not paid yet (awaiting payment, authorized only, on hold).
    Pending,
    /// To be paid in cash to the courier.
    CashOnDelivery,
}

/// Why a channel order was refused. [`ChannelError::code`] gives a stable machine-readable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("The body is not a valid order document: {message}.")]
    MalformedJson { message: String },
    #[error("The required field `{field}` is missing.")]
    MissingField { field: String },
    #[error("The value `{value}` of `{field}` is not a valid amount.")]
    BadAmount { field: String, value: String },
    #[error("The value `{value}` is not an ISO 4217 currency code.")]
    BadCurrency { value: String },
    #[error("The quantity {value} of `{field}` is not between 1 and {max}.", max = ordo_core::batch::LINE_QUANTITY_MAX)]
    BadQuantity { field: String, value: i64 },
    #[error("The order has no line items.")]
    NoLines,
    #[error("The order total {total} does not equal items + shipping + tax - discount, which is {computed}.")]
    TotalsMismatch { computed: i64, total: i64 },
    #[error("The webhook signature {problem}.")]
    BadSignature { problem: SignatureProblem },
}

/// What was wrong with a webhook signature (for logs; the API answers `bad-signature` either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureProblem {
    /// No header, or an empty one.
    Missing,
    /// The header is not base64 of a SHA-256 MAC.
    Malformed,
    /// Well-formed, but computed with another secret or over another body.
    Mismatch,
}

impl std::fmt::Display for SignatureProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureProblem::Missing => "header is missing",
            SignatureProblem::Malformed => "header is not valid base64 of an HMAC-SHA256",
            SignatureProblem::Mismatch => "does not match the body",
        })
    }
}

impl ChannelError {
    /// Stable reason code for API responses and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ChannelError::MalformedJson { .. } => "malformed-json",
            ChannelError::MissingField { .. } => "missing-field",
            ChannelError::BadAmount { .. } => "bad-amount",
            ChannelError::BadCurrency { .. } => "bad-currency",
            ChannelError::BadQuantity { .. } => "bad-quantity",
            ChannelError::NoLines => "no-lines",
            ChannelError::TotalsMismatch { .. } => "totals-mismatch",
            ChannelError::BadSignature { .. } => "bad-signature",
        }
    }

    fn bad_amount(field: String, value: &str) -> Self {
        ChannelError::BadAmount {
            field,
            value: value.chars().take(32).collect(),
        }
    }
}

impl From<serde_json::Error> for ChannelError {
    fn from(e: serde_json::Error) -> Self {
        let message = e.to_string();
        // serde reports an absent required field as "missing field `x` at line L column C".
        if let Some(rest) = message.strip_prefix("missing field `")
            && let Some(end) = rest.find('`')
        {
            return ChannelError::MissingField {
                field: rest[..end].to_owned(),
            };
        }
        ChannelError::MalformedJson { message }
    }
}

/// Digits after the decimal point in the currency's minor unit (ISO 4217); 2 unless listed.
pub fn currency_exponent(currency: Currency) -> u32 {
    match currency.as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// Converts a decimal string such as `"199.00"` to minor units of `currency`, exactly.
///
/// Accepts `digits` or `digits.digits`. Refuses signs, exponents, spaces, an empty integer or fraction
/// part, more fraction digits than the currency has (unless the extra ones are zeros: `"12.340"` is
/// fine for USD, `"12.345"` is not) and amounts above [`AMOUNT_MINOR_MAX`].
pub fn parse_amount(s: &str, currency: Currency) -> Result<i64, ChannelError> {
    parse_minor(s, currency_exponent(currency)).ok_or_else(|| ChannelError::bad_amount("amount".into(), s))
}

fn parse_minor(s: &str, exponent: u32) -> Option<i64> {
    let b = s.as_bytes();
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(p) => (&b[..p], &b[p + 1..]),
        None => (b, &b[b.len()..]),
    };
    let has_point = int.len() != b.len();
    if int.is_empty() || (has_point && frac.is_empty()) {
        return None;
    }
    if !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let (kept, extra) = frac.split_at(frac.len().min(exponent as usize));
    if extra.iter().any(|&c| c != b'0') {
        return None;
    }
    let mut v: i64 = 0;
    for &d in int.iter().chain(kept) {
        v = v * 10 + i64::from(d - b'0');
        // The value only grows from here on, so stop before it can overflow.
        if v > AMOUNT_MINOR_MAX {
            return None;
        }
    }
    for _ in kept.len()..exponent as usize {
        v *= 10;
        if v > AMOUNT_MINOR_MAX {
            return None;
        }
    }
    Some(v)
}

/// Parses `value` as an amount of `currency`, naming `field` (built only on failure) in the error.
pub(crate) fn amount(value: &str, currency: Currency, field: impl FnOnce() -> String) -> Result<i64, ChannelError> {
    parse_minor(value, currency_exponent(currency)).ok_or_else(|| ChannelError::bad_amount(field(), value))
}

/// Like [`amount`], with an absent value meaning zero.
pub(crate) fn amount_or_zero(
    value: Option<&str>,
    currency: Currency,
    field: impl FnOnce() -> String,
) -> Result<i64, ChannelError> {
    value.map_or(Ok(0), |v| amount(v, currency, field))
}

pub(crate) fn currency(value: &str) -> Result<Currency, ChannelError> {
    value.parse().map_err(|_| ChannelError::BadCurrency {
        value: value.chars().take(16).collect(),
    })
}

pub(crate) fn quantity(value: i64, field: impl FnOnce() -> String) -> Result<i64, ChannelError> {
    if (1..=ordo_core::batch::LINE_QUANTITY_MAX).contains(&value) {
        Ok(value)
    } else {
        Err(ChannelError::BadQuantity { field: field(), value })
    }
}

/// Running sum of amounts that stays within [`AMOUNT_MINOR_MAX`].
pub(crate) fn add(sum: i64, value: i64, field: &str) -> Result<i64, ChannelError> {
    match sum.checked_add(value) {
        Some(s) if s <= AMOUNT_MINOR_MAX => Ok(s),
        _ => Err(ChannelError::BadAmount {
            field: field.to_owned(),
            value: "sum out of range".to_owned(),
        }),
    }
}

/// Unit price × quantity, refusing a line worth more than [`AMOUNT_MINOR_MAX`].
pub(crate) fn line_amount(unit: i64, qty: i64, field: impl FnOnce() -> String) -> Result<i64, ChannelError> {
    match unit.checked_mul(qty) {
        Some(v) if v <= AMOUNT_MINOR_MAX => Ok(v),
        _ => Err(ChannelError::BadAmount {
            field: field(),
            value: "line amount out of range".to_owned(),
        }),
    }
}

/// Checks `items + shipping + tax − discount == total`.
pub(crate) fn check_totals(items: i64, shipping: i64, tax: i64, discount: i64, total: i64) -> Result<(), ChannelError> {
    // Each term is at most AMOUNT_MINOR_MAX, so this cannot overflow.
    let computed = items + shipping + tax - discount;
    if computed == total {
        Ok(())
    } else {
        Err(ChannelError::TotalsMismatch { computed, total })
    }
}

/// A string that is present and not blank, owned.
pub(crate) fn non_empty(s: Option<&Cow<'_, str>>) -> Option<String> {
    s.map(|s| s.trim()).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// `"first last"`, skipping blank parts; `None` when both are blank.
pub(crate) fn full_name(first: Option<&Cow<'_, str>>, last: Option<&Cow<'_, str>>) -> Option<String> {
    let first = first.map_or("", |s| s.trim());
    let last = last.map_or("", |s| s.trim());
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (false, true) => Some(first.to_owned()),
        (true, false) => Some(last.to_owned()),
        (false, false) => Some(format!("{first} {last}")),
    }
}

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac
}

/// base64(HMAC-SHA256(secret, body)): the signature all three channels use.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    BASE64.encode(mac(secret, body).finalize().into_bytes())
}

/// Checks a base64(HMAC-SHA256(secret, body)) header in constant time.
pub(crate) fn verify_base64_hmac(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), ChannelError> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(ChannelError::BadSignature {
            problem: SignatureProblem::Missing,
        })?;
    // A SHA-256 MAC is 32 bytes (44 base64 characters); the spare room keeps the decoder's
    // conservative length estimate happy, anything longer is refused as malformed.
    let mut buf = [0u8; 48];
    let n = BASE64
        .decode_slice(header, &mut buf)
        .map_err(|_| ChannelError::BadSignature {
            problem: SignatureProblem::Malformed,
        })?;
    mac(secret, body)
        .verify_slice(&buf[..n])
        .map_err(|_| ChannelError::BadSignature {
            problem: SignatureProblem::Mismatch,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Result<i64, ChannelError> {
        parse_amount(s, Currency::USD)
    }

    #[test]
    fn parse_amount_edge_cases() {
        let jpy: Currency = "JPY".parse().unwrap();
        let kwd: Currency = "KWD".parse().unwrap();
        let ok: &[(&str, Currency, i64)] = &[
            ("0", Currency::USD, 0),
            ("0.00", Currency::USD, 0),
            ("0.0", Currency::USD, 0),
            ("199.00", Currency::USD, 19900),
            ("19.99", Currency::USD, 1999),
            ("19.9", Currency::USD, 1990),
            ("19", Currency::USD, 1900),
            ("007.50", Currency::USD, 750),
            ("12.340", Currency::USD, 1234),
            ("12.34000000", Currency::USD, 1234),
            ("0.01", Currency::CNY, 1),
            ("1500", jpy, 1500),
            ("1500.00", jpy, 1500),
            ("1.234", kwd, 1234),
            ("1.2", kwd, 1200),
            ("100000000000.00", Currency::USD, AMOUNT_MINOR_MAX),
            ("10000000000000", jpy, AMOUNT_MINOR_MAX),
            ("00000000000000000000000001.00", Currency::USD, 100),
        ];
        for &(s, c, want) in ok {
            assert_eq!(parse_amount(s, c), Ok(want), "{s} {c}");
        }
        let bad: &[(&str, Currency)] = &[
            ("", Currency::USD),
            (".", Currency::USD),
            (".50", Currency::USD),
            ("1.", Currency::USD),
            ("-1.00", Currency::USD),
            ("-0", Currency::USD),
            ("+1.00", Currency::USD),
            (" 1.00", Currency::USD),
            ("1.00 ", Currency::USD),
            ("1,00", Currency::USD),
            ("1.0.0", Currency::USD),
            ("1e3", Currency::USD),
            ("12.345", Currency::USD),
            ("12.001", Currency::USD),
            ("abc", Currency::USD),
            ("NaN", Currency::USD),
            ("１２", Currency::USD),
            ("1.5", jpy),
            ("1.2345", kwd),
            ("100000000000.01", Currency::USD),
            ("10000000000001", jpy),
            ("99999999999999999999999999999", Currency::USD),
        ];
        for &(s, c) in bad {
            let err = parse_amount(s, c).unwrap_err();
            assert_eq!(err.code(), "bad-amount", "{s} {c}");
        }
        assert_eq!(
            usd("12.345"),
            Err(ChannelError::BadAmount {
                field: "amount".into(),
                value: "12.345".into()
            })
        );
    }

    #[test]
    fn exponents() {
        for (c, e) in [
            ("USD", 2),
            ("CNY", 2),
            ("JPY", 0),
            ("KRW", 0),
            ("VND", 0),
            ("BHD", 3),
            ("TND", 3),
        ] {
            assert_eq!(currency_exponent(c.parse().unwrap()), e, "{c}");
        }
    }

    #[test]
    fn signatures_are_base64_hmac_sha256() {
        // RFC 4231 test case 2.
        let sig = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
        assert_eq!(
            verify_base64_hmac(b"Jefe", b"what do ya want for nothing?", Some(&sig)),
            Ok(())
        );
        let too_long = format!("{sig}{sig}");
        for (header, problem) in [
            (None, SignatureProblem::Missing),
            (Some("  "), SignatureProblem::Missing),
            (Some("not base64!"), SignatureProblem::Malformed),
            (Some(too_long.as_str()), SignatureProblem::Malformed),
            (Some("AAAA"), SignatureProblem::Mismatch),
        ] {
            assert_eq!(
                verify_base64_hmac(b"Jefe", b"what do ya want for nothing?", header),
                Err(ChannelError::BadSignature { problem })
            );
        }
    }

    #[test]
    fn error_messages_are_one_sentence() {
        let errors = [
            ChannelError::MalformedJson { message: "x".into() },
            ChannelError::MissingField { field: "id".into() },
            ChannelError::BadAmount {
                field: "total".into(),
                value: "x".into(),
            },
            ChannelError::BadCurrency { value: "x".into() },
            ChannelError::BadQuantity {
                field: "q".into(),
                value: 0,
            },
            ChannelError::NoLines,
            ChannelError::TotalsMismatch { computed: 1, total: 2 },
            ChannelError::BadSignature {
                problem: SignatureProblem::Missing,
            },
        ];
        for e in errors {
            let m = e.to_string();
            assert!(m.ends_with('.') && m.matches(". ").count() == 0, "{m}");
            assert!(m.chars().next().is_some_and(char::is_uppercase), "{m}");
        }
    }
}
