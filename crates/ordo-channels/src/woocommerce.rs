//! WooCommerce order webhooks (`order.created`, `order.updated`): the REST API v3 order object.
//!
//! Signature: header `X-WC-Webhook-Signature` = base64(HMAC-SHA256(webhook secret, raw body)).
//!
//! Mapping:
//! - `id` → `external_id`, `number` → `number`;
//! - WooCommerce keeps line amounts without tax whatever `prices_include_tax` says, so a line's unit
//!   price is `subtotal / quantity` (before discounts) and its discount `subtotal − total`; tax is
//!   `total_tax` (cart and shipping tax) in both cases;
//! - when `subtotal` does not divide by the quantity (10.00 for 3), the unit price is rounded up to
//!   the next minor unit and the rounding (here 0.02) is counted as discount on that line, so the
//!   totals still add up. The line's `price` field is not used: WooCommerce computes it as a float
//!   from the discounted `total`, so it is neither exact nor the pre-discount price;
//! - shipping is `shipping_total`, discount is `discount_total` (plus any rounding above);
//! - payment: `payment_method == "cod"` while `date_paid` is null → cash on delivery (WooCommerce
//!   puts COD orders straight into `processing`); otherwise paid (`"woocommerce:<id>"`) when
//!   `date_paid` is set, `set_paid` is true or the status is `processing`/`completed`; else pending.
//!
//! Fee lines (`fee_lines`) are not modelled: an order with fees fails with `totals-mismatch`.

use std::borrow::Cow;

use ordo_core::order::{Address, Buyer};
use serde::Deserialize;

use crate::{
    ChannelError, ChannelLine, ChannelOrder, ChannelPayment, add, amount, amount_or_zero, check_totals, currency,
    full_name, line_amount, non_empty, quantity,
};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-WC-Webhook-Signature";

/// Checks the `X-WC-Webhook-Signature` header against the raw body (constant time).
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), ChannelError> {
    crate::verify_base64_hmac(secret, body, header)
}

#[derive(Deserialize)]
struct Order<'a> {
    id: u64,
    #[serde(borrow)]
    number: Option<Cow<'a, str>>,
    #[serde(borrow)]
    currency: Cow<'a, str>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    date_paid: Option<Cow<'a, str>>,
    set_paid: Option<bool>,
    #[serde(borrow)]
    payment_method: Option<Cow<'a, str>>,
    customer_id: Option<u64>,
    #[serde(borrow)]
    customer_note: Option<Cow<'a, str>>,
    #[serde(borrow)]
    billing: Option<Contact<'a>>,
    #[serde(borrow)]
    shipping: Option<Contact<'a>>,
    #[serde(borrow)]
    line_items: Vec<LineItem<'a>>,
    #[serde(borrow)]
    discount_total: Option<Cow<'a, str>>,
    #[serde(borrow)]
    shipping_total: Option<Cow<'a, str>>,
    #[serde(borrow)]
    total_tax: Option<Cow<'a, str>>,
    #[serde(borrow)]
    total: Cow<'a, str>,
}

/// `billing` and `shipping` share their shape (billing adds `email`, shipping has `phone` since 5.6).
#[derive(Deserialize)]
struct Contact<'a> {
    #[serde(borrow)]
    first_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    last_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    address_1: Option<Cow<'a, str>>,
    #[serde(borrow)]
    address_2: Option<Cow<'a, str>>,
    #[serde(borrow)]
    city: Option<Cow<'a, str>>,
    #[serde(borrow)]
    state: Option<Cow<'a, str>>,
    #[serde(borrow)]
    postcode: Option<Cow<'a, str>>,
    #[serde(borrow)]
    country: Option<Cow<'a, str>>,
    #[serde(borrow)]
    email: Option<Cow<'a, str>>,
    #[serde(borrow)]
    phone: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct LineItem<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    product_id: Option<u64>,
    variation_id: Option<u64>,
    quantity: i64,
    #[serde(borrow)]
    sku: Option<Cow<'a, str>>,
    #[serde(borrow)]
    subtotal: Cow<'a, str>,
    #[serde(borrow)]
    total: Cow<'a, str>,
}

/// WooCommerce uses 0 for "none" in product, variation and customer ids.
fn id(v: Option<u64>) -> Option<String> {
    v.filter(|&id| id != 0).map(|id| id.to_string())
}

/// Parses a WooCommerce order webhook body.
pub fn parse(body: &str) -> Result<ChannelOrder, ChannelError> {
    let o: Order<'_> = serde_json::from_str(body)?;
    let cur = currency(&o.currency)?;
    if o.line_items.is_empty() {
        return Err(ChannelError::NoLines);
    }

    let mut items = 0i64;
    let mut rounding = 0i64;
    let mut lines = Vec::with_capacity(o.line_items.len());
    for (i, li) in o.line_items.iter().enumerate() {
        let qty = quantity(li.quantity, || format!("line_items[{i}].quantity"))?;
        let subtotal = amount(&li.subtotal, cur, || format!("line_items[{i}].subtotal"))?;
        let total = amount(&li.total, cur, || format!("line_items[{i}].total"))?;
        if total > subtotal {
            return Err(ChannelError::bad_amount(format!("line_items[{i}].total"), &li.total));
        }
        // Round up so the rounding is a (tiny) discount rather than a negative one.
        let unit = (subtotal + qty - 1) / qty; // both non-negative, qty >= 1
        let gross = line_amount(unit, qty, || format!("line_items[{i}]"))?;
        rounding += gross - subtotal;
        items = add(items, gross, "line_items")?;
        lines.push(ChannelLine {
            product_id: id(li.product_id),
            variant_id: id(li.variation_id),
            sku: li.sku.as_deref().map(str::to_owned),
            title: li.name.as_deref().unwrap_or("").to_owned(),
            quantity: qty,
            unit_price_minor: unit,
            discount_minor: gross - total,
        });
    }

    let shipping = amount_or_zero(o.shipping_total.as_deref(), cur, || "shipping_total".into())?;
    let tax = amount_or_zero(o.total_tax.as_deref(), cur, || "total_tax".into())?;
    let discount = amount_or_zero(o.discount_total.as_deref(), cur, || "discount_total".into())?;
    let discount = add(discount, rounding, "discount_total")?;
    let total = amount(&o.total, cur, || "total".into())?;
    check_totals(items, shipping, tax, discount, total)?;

    let method = o.payment_method.as_deref().map(str::trim).filter(|m| !m.is_empty());
    let date_paid = o.date_paid.as_deref().is_some_and(|d| !d.is_empty());
    let status = o.status.as_deref().unwrap_or("");
    let payment = if method == Some("cod") && !date_paid {
        ChannelPayment::CashOnDelivery
    } else if date_paid || o.set_paid == Some(true) || matches!(status, "processing" | "completed") {
        ChannelPayment::Paid {
            amount_minor: total,
            reference: format!("woocommerce:{}", o.id),
        }
    } else {
        ChannelPayment::Pending
    };

    let billing = o.billing.as_ref();
    let email = non_empty(billing.and_then(|b| b.email.as_ref()));
    let phone = non_empty(billing.and_then(|b| b.phone.as_ref()));
    let buyer = Buyer {
        id: match (id(o.customer_id), &email) {
            (Some(id), _) => id,
            (None, Some(email)) => email.clone(),
            (None, None) => format!("guest:{}", o.id),
        },
        name: billing.and_then(|b| full_name(b.first_name.as_ref(), b.last_name.as_ref())),
        phone,
        email,
    };

    // Virtual orders come with an all-empty shipping object.
    let shipping_address = o
        .shipping
        .as_ref()
        .filter(|s| non_empty(s.address_1.as_ref()).is_some() || non_empty(s.city.as_ref()).is_some())
        .map(|s| Address {
            recipient: full_name(s.first_name.as_ref(), s.last_name.as_ref()).unwrap_or_default(),
            phone: non_empty(s.phone.as_ref())
                .or_else(|| buyer.phone.clone())
                .unwrap_or_default(),
            country: non_empty(s.country.as_ref()).unwrap_or_default(),
            province: non_empty(s.state.as_ref()).unwrap_or_default(),
            city: non_empty(s.city.as_ref()).unwrap_or_default(),
            district: None,
            line1: non_empty(s.address_1.as_ref()).unwrap_or_default(),
            line2: non_empty(s.address_2.as_ref()),
            postal_code: non_empty(s.postcode.as_ref()),
        });

    Ok(ChannelOrder {
        channel: "woocommerce",
        external_id: o.id.to_string(),
        number: non_empty(o.number.as_ref()),
        platform: None,
        currency: cur,
        buyer,
        shipping_address,
        lines,
        shipping_minor: shipping,
        tax_minor: tax,
        discount_minor: discount,
        total_minor: total,
        note: non_empty(o.customer_note.as_ref()),
        payment,
        payment_method: method.map(str::to_owned),
        cancelled: status == "cancelled",
    })
}
