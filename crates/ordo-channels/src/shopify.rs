//! Shopify `orders/create` (and `orders/updated`, `orders/paid`, `orders/cancelled`) webhooks.
//!
//! Signature: header `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(app secret, raw body)).
//!
//! Mapping:
//! - `id` → `external_id`, `name` (`"#1001"`) → `number`;
//! - lines: `line_items[].price` × `quantity`; the line discount is the sum of its
//!   `discount_allocations` (falling back to the deprecated `total_discount`);
//! - shipping is the sum of `shipping_lines[].price`; shipping discounts (their `discount_allocations`,
//!   or `price − discounted_price`) count towards `discount_minor`;
//! - tax is `total_tax` unless `taxes_included`, when prices already contain it and tax is 0;
//! - `financial_status == "paid"` → paid (`"shopify:<id>"`), `"pending"` with the Cash on Delivery
//!   gateway → cash on delivery, anything else (`pending`, `authorized`, …) → pending.
//!
//! Only the fields used are declared; Shopify's many others are skipped.

use std::borrow::Cow;

use ordo_core::order::{Address, Buyer};
use serde::Deserialize;

use crate::{
    ChannelError, ChannelLine, ChannelOrder, ChannelPayment, add, amount, amount_or_zero, check_totals, currency,
    full_name, line_amount, non_empty, quantity,
};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Shopify-Hmac-Sha256";

/// Checks the `X-Shopify-Hmac-Sha256` header against the raw body (constant time).
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), ChannelError> {
    crate::verify_base64_hmac(secret, body, header)
}

#[derive(Deserialize)]
struct Order<'a> {
    id: u64,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    currency: Cow<'a, str>,
    #[serde(borrow)]
    email: Option<Cow<'a, str>>,
    #[serde(borrow)]
    phone: Option<Cow<'a, str>>,
    #[serde(borrow)]
    note: Option<Cow<'a, str>>,
    #[serde(borrow)]
    financial_status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    cancelled_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    gateway: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payment_gateway_names: Option<Vec<Cow<'a, str>>>,
    taxes_included: Option<bool>,
    #[serde(borrow)]
    total_price: Cow<'a, str>,
    #[serde(borrow)]
    total_tax: Option<Cow<'a, str>>,
    #[serde(borrow)]
    customer: Option<Customer<'a>>,
    #[serde(borrow)]
    shipping_address: Option<ShippingAddress<'a>>,
    #[serde(borrow)]
    line_items: Vec<LineItem<'a>>,
    #[serde(borrow)]
    shipping_lines: Option<Vec<ShippingLine<'a>>>,
}

#[derive(Deserialize)]
struct Customer<'a> {
    id: Option<u64>,
    #[serde(borrow)]
    email: Option<Cow<'a, str>>,
    #[serde(borrow)]
    phone: Option<Cow<'a, str>>,
    #[serde(borrow)]
    first_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    last_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ShippingAddress<'a> {
    #[serde(borrow)]
    first_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    last_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    address1: Option<Cow<'a, str>>,
    #[serde(borrow)]
    address2: Option<Cow<'a, str>>,
    #[serde(borrow)]
    city: Option<Cow<'a, str>>,
    #[serde(borrow)]
    province: Option<Cow<'a, str>>,
    #[serde(borrow)]
    province_code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    country_code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    zip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    phone: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct LineItem<'a> {
    product_id: Option<u64>,
    variant_id: Option<u64>,
    #[serde(borrow)]
    sku: Option<Cow<'a, str>>,
    #[serde(borrow)]
    title: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    quantity: i64,
    #[serde(borrow)]
    price: Cow<'a, str>,
    #[serde(borrow)]
    total_discount: Option<Cow<'a, str>>,
    #[serde(borrow)]
    discount_allocations: Option<Vec<DiscountAllocation<'a>>>,
}

#[derive(Deserialize)]
struct DiscountAllocation<'a> {
    #[serde(borrow)]
    amount: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ShippingLine<'a> {
    #[serde(borrow)]
    price: Cow<'a, str>,
    #[serde(borrow)]
    discounted_price: Option<Cow<'a, str>>,
    #[serde(borrow)]
    discount_allocations: Option<Vec<DiscountAllocation<'a>>>,
}

const COD_GATEWAYS: [&str; 2] = ["Cash on Delivery (COD)", "cash_on_delivery"];

/// Parses a Shopify order webhook body.
pub fn parse(body: &str) -> Result<ChannelOrder, ChannelError> {
    let o: Order<'_> = serde_json::from_str(body)?;
    let cur = currency(&o.currency)?;
    if o.line_items.is_empty() {
        return Err(ChannelError::NoLines);
    }

    let mut items = 0i64;
    let mut discount = 0i64;
    let mut lines = Vec::with_capacity(o.line_items.len());
    for (i, li) in o.line_items.iter().enumerate() {
        let qty = quantity(li.quantity, || format!("line_items[{i}].quantity"))?;
        let unit = amount(&li.price, cur, || format!("line_items[{i}].price"))?;
        let gross = line_amount(unit, qty, || format!("line_items[{i}]"))?;
        let line_discount = match &li.discount_allocations {
            Some(allocs) if !allocs.is_empty() => {
                let mut sum = 0;
                for (j, a) in allocs.iter().enumerate() {
                    let v = amount(&a.amount, cur, || {
                        format!("line_items[{i}].discount_allocations[{j}].amount")
                    })?;
                    sum = add(sum, v, "line_items[].discount_allocations")?;
                }
                sum
            }
            _ => amount_or_zero(li.total_discount.as_deref(), cur, || {
                format!("line_items[{i}].total_discount")
            })?,
        };
        if line_discount > gross {
            return Err(ChannelError::bad_amount(
                format!("line_items[{i}].discount_allocations"),
                "more than the line",
            ));
        }
        items = add(items, gross, "line_items")?;
        discount = add(discount, line_discount, "discounts")?;
        let title = li
            .name
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(li.title.as_deref())
            .unwrap_or("");
        lines.push(ChannelLine {
            product_id: li.product_id.map(|id| id.to_string()),
            variant_id: li.variant_id.map(|id| id.to_string()),
            sku: li.sku.as_deref().map(str::to_owned),
            title: title.to_owned(),
            quantity: qty,
            unit_price_minor: unit,
            discount_minor: line_discount,
        });
    }

    let mut shipping = 0i64;
    for (i, sl) in o.shipping_lines.iter().flatten().enumerate() {
        let price = amount(&sl.price, cur, || format!("shipping_lines[{i}].price"))?;
        let ship_discount = match (&sl.discount_allocations, &sl.discounted_price) {
            (Some(allocs), _) if !allocs.is_empty() => {
                let mut sum = 0;
                for (j, a) in allocs.iter().enumerate() {
                    let v = amount(&a.amount, cur, || {
                        format!("shipping_lines[{i}].discount_allocations[{j}].amount")
                    })?;
                    sum = add(sum, v, "shipping_lines[].discount_allocations")?;
                }
                sum
            }
            (_, Some(dp)) => {
                let dp = amount(dp, cur, || format!("shipping_lines[{i}].discounted_price"))?;
                price.checked_sub(dp).filter(|d| *d >= 0).ok_or_else(|| {
                    ChannelError::bad_amount(format!("shipping_lines[{i}].discounted_price"), "above the price")
                })?
            }
            _ => 0,
        };
        shipping = add(shipping, price, "shipping_lines")?;
        discount = add(discount, ship_discount, "discounts")?;
    }

    let tax = if o.taxes_included == Some(true) {
        0
    } else {
        amount_or_zero(o.total_tax.as_deref(), cur, || "total_tax".into())?
    };
    let total = amount(&o.total_price, cur, || "total_price".into())?;
    check_totals(items, shipping, tax, discount, total)?;

    let gateways = || {
        o.payment_gateway_names
            .iter()
            .flatten()
            .map(|g| &**g)
            .chain(o.gateway.as_deref())
    };
    let payment = match o.financial_status.as_deref() {
        Some("paid") => ChannelPayment::Paid {
            amount_minor: total,
            reference: format!("shopify:{}", o.id),
        },
        Some("pending") if gateways().any(|g| COD_GATEWAYS.iter().any(|c| g.eq_ignore_ascii_case(c))) => {
            ChannelPayment::CashOnDelivery
        }
        _ => ChannelPayment::Pending,
    };
    let payment_method = gateways().find(|g| !g.trim().is_empty()).map(str::to_owned);

    let c = o.customer.as_ref();
    let email = non_empty(o.email.as_ref()).or_else(|| non_empty(c.and_then(|c| c.email.as_ref())));
    let phone = non_empty(o.phone.as_ref()).or_else(|| non_empty(c.and_then(|c| c.phone.as_ref())));
    let buyer = Buyer {
        id: match (c.and_then(|c| c.id), &email) {
            (Some(id), _) => id.to_string(),
            (None, Some(email)) => email.clone(),
            (None, None) => format!("guest:{}", o.id),
        },
        name: c.and_then(|c| full_name(c.first_name.as_ref(), c.last_name.as_ref())),
        phone,
        email,
    };

    let shipping_address = o.shipping_address.as_ref().map(|a| Address {
        recipient: non_empty(a.name.as_ref())
            .or_else(|| full_name(a.first_name.as_ref(), a.last_name.as_ref()))
            .unwrap_or_default(),
        phone: non_empty(a.phone.as_ref())
            .or_else(|| buyer.phone.clone())
            .unwrap_or_default(),
        country: non_empty(a.country_code.as_ref()).unwrap_or_default(),
        province: non_empty(a.province.as_ref())
            .or_else(|| non_empty(a.province_code.as_ref()))
            .unwrap_or_default(),
        city: non_empty(a.city.as_ref()).unwrap_or_default(),
        district: None,
        line1: non_empty(a.address1.as_ref()).unwrap_or_default(),
        line2: non_empty(a.address2.as_ref()),
        postal_code: non_empty(a.zip.as_ref()),
    });

    Ok(ChannelOrder {
        channel: "shopify",
        external_id: o.id.to_string(),
        number: non_empty(o.name.as_ref()),
        platform: None,
        currency: cur,
        buyer,
        shipping_address,
        lines,
        shipping_minor: shipping,
        tax_minor: tax,
        discount_minor: discount,
        total_minor: total,
        note: non_empty(o.note.as_ref()),
        payment,
        payment_method,
        cancelled: o.cancelled_at.is_some(),
    })
}
