//! Ordo's own order format for marketplace exports (Taobao, Tmall, Xianyu, …), posted by an
//! exporter or middleware. Described for people in `docs/channels/marketplace.md` and as a JSON
//! Schema in `docs/channels/marketplace-order.schema.json`.
//!
//! Signature: header `X-Ordo-Hmac-Sha256` = base64(HMAC-SHA256(shop's channel secret, raw body)),
//! the same scheme as Shopify's, so the same client code signs both.
//!
//! Amounts are decimal strings in major units (`"12.50"`), never JSON numbers, so that they are
//! exact. Unknown fields are refused: the format is ours and a typo should not pass silently.
//!
//! Mapping: `Σ items[].price × quantity + post_fee + tax − (Σ items[].discount + discount) == total`;
//! `paid: true` → paid (`"marketplace:<platform>:<order_id>"`), otherwise `payment_method: "cod"` →
//! cash on delivery, otherwise pending.

use std::borrow::Cow;

use ordo_core::order::{Address, Buyer};
use serde::Deserialize;

use crate::{
    ChannelError, ChannelLine, ChannelOrder, ChannelPayment, add, amount, amount_or_zero, check_totals, currency,
    line_amount, non_empty, quantity,
};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Ordo-Hmac-Sha256";

/// Checks the `X-Ordo-Hmac-Sha256` header against the raw body (constant time).
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), ChannelError> {
    crate::verify_base64_hmac(secret, body, header)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Order<'a> {
    #[serde(borrow)]
    order_id: Cow<'a, str>,
    #[serde(borrow)]
    platform: Cow<'a, str>,
    #[serde(borrow)]
    currency: Cow<'a, str>,
    #[serde(borrow)]
    buyer: Option<MarketBuyer<'a>>,
    #[serde(borrow)]
    receiver: Option<Receiver<'a>>,
    #[serde(borrow)]
    items: Vec<Item<'a>>,
    #[serde(borrow)]
    post_fee: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tax: Option<Cow<'a, str>>,
    #[serde(borrow)]
    discount: Option<Cow<'a, str>>,
    #[serde(borrow)]
    total: Cow<'a, str>,
    paid: bool,
    /// Informational only (this crate reads no clock and keeps no times).
    #[serde(borrow, rename = "pay_time")]
    _pay_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payment_method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    buyer_message: Option<Cow<'a, str>>,
    #[serde(default)]
    cancelled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarketBuyer<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    nick: Option<Cow<'a, str>>,
    #[serde(borrow)]
    phone: Option<Cow<'a, str>>,
    #[serde(borrow)]
    email: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Receiver<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    phone: Cow<'a, str>,
    #[serde(borrow)]
    country: Option<Cow<'a, str>>,
    #[serde(borrow)]
    province: Cow<'a, str>,
    #[serde(borrow)]
    city: Cow<'a, str>,
    #[serde(borrow)]
    district: Option<Cow<'a, str>>,
    #[serde(borrow)]
    address: Cow<'a, str>,
    #[serde(borrow)]
    address2: Option<Cow<'a, str>>,
    #[serde(borrow)]
    postcode: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item<'a> {
    #[serde(borrow)]
    item_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    sku_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    outer_sku: Option<Cow<'a, str>>,
    #[serde(borrow)]
    title: Cow<'a, str>,
    quantity: i64,
    #[serde(borrow)]
    price: Cow<'a, str>,
    #[serde(borrow)]
    discount: Option<Cow<'a, str>>,
}

fn required(value: &str, field: &str) -> Result<(), ChannelError> {
    if value.trim().is_empty() {
        Err(ChannelError::MissingField {
            field: field.to_owned(),
        })
    } else {
        Ok(())
    }
}

/// Parses a marketplace order body.
pub fn parse(body: &str) -> Result<ChannelOrder, ChannelError> {
    let o: Order<'_> = serde_json::from_str(body)?;
    required(&o.order_id, "order_id")?;
    required(&o.platform, "platform")?;
    let cur = currency(&o.currency)?;
    if o.items.is_empty() {
        return Err(ChannelError::NoLines);
    }

    let mut items = 0i64;
    let mut discount = 0i64;
    let mut lines = Vec::with_capacity(o.items.len());
    for (i, it) in o.items.iter().enumerate() {
        let qty = quantity(it.quantity, || format!("items[{i}].quantity"))?;
        let unit = amount(&it.price, cur, || format!("items[{i}].price"))?;
        let gross = line_amount(unit, qty, || format!("items[{i}]"))?;
        let line_discount = amount_or_zero(it.discount.as_deref(), cur, || format!("items[{i}].discount"))?;
        if line_discount > gross {
            return Err(ChannelError::bad_amount(
                format!("items[{i}].discount"),
                it.discount.as_deref().unwrap_or(""),
            ));
        }
        items = add(items, gross, "items")?;
        discount = add(discount, line_discount, "discount")?;
        lines.push(ChannelLine {
            product_id: non_empty(it.item_id.as_ref()),
            variant_id: non_empty(it.sku_id.as_ref()),
            sku: it.outer_sku.as_deref().map(str::to_owned),
            title: it.title.as_ref().to_owned(),
            quantity: qty,
            unit_price_minor: unit,
            discount_minor: line_discount,
        });
    }
    let shipping = amount_or_zero(o.post_fee.as_deref(), cur, || "post_fee".into())?;
    let tax = amount_or_zero(o.tax.as_deref(), cur, || "tax".into())?;
    let order_discount = amount_or_zero(o.discount.as_deref(), cur, || "discount".into())?;
    let discount = add(discount, order_discount, "discount")?;
    let total = amount(&o.total, cur, || "total".into())?;
    check_totals(items, shipping, tax, discount, total)?;

    let method = o.payment_method.as_deref().map(str::trim).filter(|m| !m.is_empty());
    let payment = if o.paid {
        ChannelPayment::Paid {
            amount_minor: total,
            reference: format!("marketplace:{}:{}", o.platform, o.order_id),
        }
    } else if method == Some("cod") {
        ChannelPayment::CashOnDelivery
    } else {
        ChannelPayment::Pending
    };

    let b = o.buyer.as_ref();
    let buyer = Buyer {
        id: non_empty(b.and_then(|b| b.id.as_ref())).unwrap_or_else(|| format!("guest:{}", o.order_id)),
        name: non_empty(b.and_then(|b| b.nick.as_ref())),
        phone: non_empty(b.and_then(|b| b.phone.as_ref())),
        email: non_empty(b.and_then(|b| b.email.as_ref())),
    };

    let shipping_address = o.receiver.as_ref().map(|r| Address {
        recipient: r.name.trim().to_owned(),
        phone: r.phone.trim().to_owned(),
        country: non_empty(r.country.as_ref()).unwrap_or_else(|| "CN".to_owned()),
        province: r.province.trim().to_owned(),
        city: r.city.trim().to_owned(),
        district: non_empty(r.district.as_ref()),
        line1: r.address.trim().to_owned(),
        line2: non_empty(r.address2.as_ref()),
        postal_code: non_empty(r.postcode.as_ref()),
    });

    Ok(ChannelOrder {
        channel: "marketplace",
        external_id: o.order_id.into_owned(),
        number: None,
        platform: Some(o.platform.into_owned()),
        currency: cur,
        buyer,
        shipping_address,
        lines,
        shipping_minor: shipping,
        tax_minor: tax,
        discount_minor: discount,
        total_minor: total,
        note: non_empty(o.buyer_message.as_ref()),
        payment,
        payment_method: method.map(str::to_owned),
        cancelled: o.cancelled,
    })
}

#[cfg(test)]
mod tests {
    use serde::de::{self, Deserializer, Visitor};
    use serde_json::{Map, Value};

    use super::*;

    const SCHEMA: &str = include_str!("../../../docs/channels/marketplace-order.schema.json");
    const DOC: &str = include_str!("../../../docs/channels/marketplace.md");
    const FIXTURE: &str = include_str!("../tests/fixtures/marketplace-order.json");

    /// A deserializer that only records the field names a struct asks for.
    struct FieldNames(&'static [&'static str]);

    impl<'de> Deserializer<'de> for &mut FieldNames {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = fields;
            Err(de::Error::custom("fields recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    fn struct_fields<T: Deserialize<'static>>() -> Vec<&'static str> {
        let mut names = FieldNames(&[]);
        let _ = T::deserialize(&mut names);
        let mut v = names.0.to_vec();
        v.sort_unstable();
        v
    }

    fn keys(o: &Value) -> Vec<&str> {
        let mut v: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    fn doc_example() -> &'static str {
        let start = DOC.find("```json\n").expect("the doc has a json example") + "```json\n".len();
        let len = DOC[start..].find("```").unwrap();
        &DOC[start..start + len]
    }

    /// `(schema object, path of the matching object inside an order, struct fields)` for each level.
    fn levels(schema: &Value) -> Vec<(&Value, &'static [&'static str], Vec<&'static str>)> {
        vec![
            (schema, &[], struct_fields::<Order<'static>>()),
            (
                &schema["$defs"]["buyer"],
                &["buyer"],
                struct_fields::<MarketBuyer<'static>>(),
            ),
            (
                &schema["$defs"]["receiver"],
                &["receiver"],
                struct_fields::<Receiver<'static>>(),
            ),
            (
                &schema["$defs"]["item"],
                &["items", "0"],
                struct_fields::<Item<'static>>(),
            ),
        ]
    }

    fn object_at<'v>(order: &'v mut Value, path: &[&str]) -> &'v mut Map<String, Value> {
        let mut v = order;
        for p in path {
            v = match p.parse::<usize>() {
                Ok(i) => &mut v[i],
                Err(_) => &mut v[*p],
            };
        }
        v.as_object_mut().unwrap()
    }

    #[test]
    fn schema_properties_are_exactly_the_struct_fields() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
        for (obj, path, fields) in levels(&schema) {
            assert_eq!(keys(&obj["properties"]), fields, "properties at {path:?}");
            assert_eq!(obj["additionalProperties"], false, "at {path:?}");
            for r in obj.get("required").and_then(Value::as_array).into_iter().flatten() {
                assert!(fields.contains(&r.as_str().unwrap()), "required {r} at {path:?}");
            }
        }
    }

    #[test]
    fn schema_required_matches_what_the_parser_requires() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        let full: Value = serde_json::from_str(FIXTURE).unwrap();
        for (obj, path, fields) in levels(&schema) {
            let required: Vec<&str> = obj
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().map(|v| v.as_str().unwrap()).collect())
                .unwrap_or_default();
            for field in fields {
                let mut order = full.clone();
                // Fill every field so each removal tests exactly one.
                let o = object_at(&mut order, path);
                o.entry(field).or_insert_with(|| match field {
                    "address2" => Value::from("Room 3"),
                    "email" => Value::from("buyer@example.com"),
                    _ => Value::from("0.00"),
                });
                o.remove(field);
                let result = parse(&serde_json::to_string(&order).unwrap());
                if required.contains(&field) {
                    assert_eq!(
                        result.unwrap_err(),
                        ChannelError::MissingField {
                            field: field.to_owned()
                        },
                        "{path:?}.{field}"
                    );
                } else {
                    // Dropping a non-zero optional amount changes the arithmetic, nothing else.
                    let accepted = matches!(result, Ok(_) | Err(ChannelError::TotalsMismatch { .. }));
                    assert!(accepted, "{path:?}.{field} is optional: {result:?}");
                }
            }
        }
    }

    #[test]
    fn doc_example_and_fixture_parse() {
        let o = parse(doc_example()).unwrap();
        assert_eq!(o.platform.as_deref(), Some("xianyu"));
        assert_eq!((o.total_minor, o.shipping_minor, o.discount_minor), (54000, 1000, 3000));
        assert_eq!(o.lines[0].sku, None);
        assert_eq!(o.shipping_address.unwrap().country, "CN");
        parse(FIXTURE).unwrap();
    }
}
