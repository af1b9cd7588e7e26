//! The fixtures parse to exactly the expected orders; signatures and bad inputs fail with the right codes.

use ordo_channels::{ChannelError, ChannelLine, ChannelOrder, ChannelPayment, marketplace, shopify, woocommerce};
use ordo_core::Currency;
use ordo_core::order::{Address, Buyer};

const SHOPIFY_PAID: &str = include_str!("fixtures/shopify-order-paid.json");
const SHOPIFY_COD: &str = include_str!("fixtures/shopify-order-cod.json");
const WOO_PROCESSING: &str = include_str!("fixtures/woocommerce-order-processing.json");
const MARKETPLACE: &str = include_str!("fixtures/marketplace-order.json");

fn s(v: &str) -> String {
    v.to_owned()
}

fn line(
    product: &str,
    variant: Option<&str>,
    sku: Option<&str>,
    title: &str,
    qty: i64,
    unit: i64,
    disc: i64,
) -> ChannelLine {
    ChannelLine {
        product_id: Some(s(product)),
        variant_id: variant.map(s),
        sku: sku.map(s),
        title: s(title),
        quantity: qty,
        unit_price_minor: unit,
        discount_minor: disc,
    }
}

/// items + shipping + tax − discount == total, and line discounts never exceed the order's.
fn assert_identity(o: &ChannelOrder) {
    let items: i64 = o.lines.iter().map(|l| l.unit_price_minor * l.quantity).sum();
    assert_eq!(items + o.shipping_minor + o.tax_minor - o.discount_minor, o.total_minor);
    assert!(o.lines.iter().map(|l| l.discount_minor).sum::<i64>() <= o.discount_minor);
}

#[test]
fn shopify_paid_order() {
    let o = shopify::parse(SHOPIFY_PAID).unwrap();
    let want = ChannelOrder {
        channel: "shopify",
        external_id: s("5872349102117"),
        number: Some(s("#1001")),
        platform: None,
        currency: Currency::USD,
        buyer: Buyer {
            id: s("6940095564069"),
            name: Some(s("Zoë Ångström")),
            phone: Some(s("+12125550143")),
            email: Some(s("zoe.angstrom@example.com")),
        },
        shipping_address: Some(Address {
            recipient: s("Zoë Ångström"),
            phone: s("+1 212-555-0143"),
            country: s("US"),
            province: s("New York"),
            city: s("New York"),
            district: None,
            line1: s("350 5th Ave"),
            line2: Some(s("Apt 12B")),
            postal_code: Some(s("10118")),
        }),
        lines: vec![
            line(
                "7718838403237",
                Some("43012934566053"),
                Some("SWTR-MER-M-NVY"),
                "Ångström Merino Sweater - M / Navy",
                2,
                8900,
                1780,
            ),
            line(
                "7718838435013",
                Some("43012934631589"),
                Some("CUP-CELADON-01"),
                "手工青瓷茶杯 (Celadon Tea Cup)",
                3,
                2450,
                735,
            ),
            line(
                "7718838468101",
                Some("43012934664357"),
                Some(""),
                "Gift Wrap",
                1,
                500,
                50,
            ),
        ],
        shipping_minor: 1200,
        tax_minor: 2065,
        discount_minor: 2565,
        total_minor: 26350,
        note: Some(s("Please leave the parcel with the doorman — thank you!")),
        payment: ChannelPayment::Paid {
            amount_minor: 26350,
            reference: s("shopify:5872349102117"),
        },
        payment_method: Some(s("shopify_payments")),
        cancelled: false,
    };
    assert_eq!(o, want);
    assert_identity(&o);
}

#[test]
fn shopify_cash_on_delivery_order() {
    let o = shopify::parse(SHOPIFY_COD).unwrap();
    let want = ChannelOrder {
        channel: "shopify",
        external_id: s("5872361980197"),
        number: Some(s("#1002")),
        platform: None,
        currency: "INR".parse().unwrap(),
        // No customer object: the email is the buyer id.
        buyer: Buyer {
            id: s("priya.sharma@example.in"),
            name: None,
            phone: Some(s("+919845012345")),
            email: Some(s("priya.sharma@example.in")),
        },
        shipping_address: Some(Address {
            recipient: s("Priya Sharma"),
            // The shipping address has no phone: the order's is used.
            phone: s("+919845012345"),
            country: s("IN"),
            province: s("Karnataka"),
            city: s("Bengaluru"),
            district: None,
            line1: s("Flat 402, Lotus Residency"),
            line2: Some(s("MG Road")),
            postal_code: Some(s("560001")),
        }),
        lines: vec![
            line(
                "7718901219365",
                Some("43013012619301"),
                Some("KURTA-L-IND"),
                "Cotton Kurta - L / Indigo",
                1,
                129900,
                0,
            ),
            line(
                "7718901252133",
                Some("43013012652069"),
                None,
                "Brass Diya Set",
                2,
                45000,
                0,
            ),
        ],
        // Free shipping: the whole shipping price comes back as a discount.
        shipping_minor: 9900,
        // Prices include GST.
        tax_minor: 0,
        discount_minor: 9900,
        total_minor: 219900,
        note: None,
        payment: ChannelPayment::CashOnDelivery,
        payment_method: Some(s("Cash on Delivery (COD)")),
        cancelled: false,
    };
    assert_eq!(o, want);
    assert_identity(&o);
}

#[test]
fn woocommerce_processing_order() {
    let o = woocommerce::parse(WOO_PROCESSING).unwrap();
    let want = ChannelOrder {
        channel: "woocommerce",
        external_id: s("10482"),
        number: Some(s("10482")),
        platform: None,
        currency: "EUR".parse().unwrap(),
        buyer: Buyer {
            id: s("57"),
            name: Some(s("Jürgen Weiß")),
            phone: Some(s("+49 30 12345678")),
            email: Some(s("juergen.weiss@example.de")),
        },
        shipping_address: Some(Address {
            recipient: s("Jürgen Weiß"),
            phone: s("+49 30 12345678"),
            country: s("DE"),
            province: s("BE"),
            city: s("Berlin"),
            district: None,
            line1: s("Kastanienallee 12"),
            line2: Some(s("Hinterhaus, 3. OG")),
            postal_code: Some(s("10435")),
        }),
        lines: vec![
            line(
                "812",
                None,
                Some("ARM-BERG-LIN"),
                "Bergère Armchair – Linen",
                1,
                34900,
                3490,
            ),
            line(
                "845",
                Some("851"),
                Some("THR-150-GRY"),
                "Überwurf-Decke - Grau, 150×200",
                2,
                3990,
                798,
            ),
            line("870", None, Some(""), "Duftkerze Feigenblatt", 3, 1250, 375),
        ],
        shipping_minor: 1490,
        tax_minor: 8257,
        discount_minor: 4663,
        total_minor: 51714,
        note: Some(s("Bitte nicht vor 10 Uhr klingeln. Danke! 🙂")),
        payment: ChannelPayment::Paid {
            amount_minor: 51714,
            reference: s("woocommerce:10482"),
        },
        payment_method: Some(s("stripe")),
        cancelled: false,
    };
    assert_eq!(o, want);
    assert_identity(&o);
}

#[test]
fn marketplace_order() {
    let o = marketplace::parse(MARKETPLACE).unwrap();
    let want = ChannelOrder {
        channel: "marketplace",
        external_id: s("3904218850271553926"),
        number: None,
        platform: Some(s("taobao")),
        currency: Currency::CNY,
        buyer: Buyer {
            id: s("tb_2208811203"),
            name: Some(s("小鱼儿爱喝茶")),
            phone: Some(s("13800138000")),
            email: None,
        },
        shipping_address: Some(Address {
            recipient: s("林晓梅"),
            phone: s("13912345678"),
            country: s("CN"),
            province: s("广东省"),
            city: s("深圳市"),
            district: Some(s("南山区")),
            line1: s("粤海街道高新南七道18号A座1203室"),
            line2: None,
            postal_code: Some(s("518057")),
        }),
        lines: vec![
            line(
                "681234567890",
                Some("5012345678901"),
                Some("TEA-LJ-250G"),
                "西湖龙井 明前特级 250g 礼盒装",
                1,
                36800,
                2000,
            ),
            line(
                "671122334455",
                Some("4998877665544"),
                Some("CUP-QC-06"),
                "龙泉青瓷品茗杯 6只装",
                2,
                5990,
                0,
            ),
        ],
        shipping_minor: 1200,
        tax_minor: 0,
        discount_minor: 3500,
        total_minor: 46480,
        note: Some(s("请用顺丰发货，谢谢！")),
        payment: ChannelPayment::Paid {
            amount_minor: 46480,
            reference: s("marketplace:taobao:3904218850271553926"),
        },
        payment_method: Some(s("alipay")),
        cancelled: false,
    };
    assert_eq!(o, want);
    assert_identity(&o);
}

type Verify = fn(&[u8], &[u8], Option<&str>) -> Result<(), ChannelError>;

#[test]
fn signatures_verify_and_refuse_wrong_secret_tampering_and_absence() {
    let cases: [(&str, Verify, &str); 3] = [
        ("shopify", shopify::verify, SHOPIFY_PAID),
        ("woocommerce", woocommerce::verify, WOO_PROCESSING),
        ("marketplace", marketplace::verify, MARKETPLACE),
    ];
    let secret = b"whsec_3c1f9e0a7b5d4c2e8f6a1b0c9d7e5f3a";
    for (name, verify, body) in cases {
        let body = body.as_bytes();
        let sig = ordo_channels::sign(secret, body);
        assert_eq!(verify(secret, body, Some(&sig)), Ok(()), "{name}");

        let mut tampered = body.to_vec();
        let pos = tampered.iter().position(|&b| b.is_ascii_digit()).unwrap();
        tampered[pos] = if tampered[pos] == b'9' { b'8' } else { tampered[pos] + 1 };
        let wrong_sig = ordo_channels::sign(b"another-secret", body);
        let failures = [
            verify(b"another-secret", body, Some(&sig)),
            verify(secret, body, Some(&wrong_sig)),
            verify(secret, &tampered, Some(&sig)),
            verify(secret, body, None),
            verify(secret, body, Some("")),
            verify(secret, body, Some("%%%")),
        ];
        for (i, r) in failures.into_iter().enumerate() {
            assert_eq!(r.map_err(|e| e.code()), Err("bad-signature"), "{name} case {i}");
        }
    }
}

#[test]
fn known_signature_value() {
    // Computed independently: printf '{"id":1}' | openssl dgst -sha256 -hmac secret -binary | base64
    assert_eq!(
        ordo_channels::sign(b"secret", br#"{"id":1}"#),
        "A971iWIMgT8Zj9A9eWfikrFj7wQ16/Qwcc4OlRl2PLc="
    );
}

/// Replaces the first occurrence of `from` in a fixture.
fn edit(body: &str, from: &str, to: &str) -> String {
    assert!(body.contains(from), "fixture lacks {from}");
    body.replacen(from, to, 1)
}

fn code<T: std::fmt::Debug>(r: Result<T, ChannelError>) -> &'static str {
    r.unwrap_err().code()
}

#[test]
fn bad_inputs_give_reason_codes() {
    type Parse = fn(&str) -> Result<ChannelOrder, ChannelError>;
    let parsers: [(&str, Parse); 3] = [
        ("shopify", shopify::parse),
        ("woocommerce", woocommerce::parse),
        ("marketplace", marketplace::parse),
    ];
    for (name, parse) in parsers {
        for junk in ["", "{", "[]", "null", "not json", "{\"id\": \"x\"}"] {
            assert_eq!(code(parse(junk)), "malformed-json", "{name} {junk:?}");
        }
    }

    // Missing id.
    let e = shopify::parse(&edit(SHOPIFY_PAID, "\"id\": 5872349102117,", "")).unwrap_err();
    assert_eq!(e, ChannelError::MissingField { field: "id".into() });
    let e = woocommerce::parse(&edit(WOO_PROCESSING, "\"id\": 10482,", "")).unwrap_err();
    assert_eq!(e, ChannelError::MissingField { field: "id".into() });
    let e = marketplace::parse(&edit(MARKETPLACE, "\"order_id\": \"3904218850271553926\",", "")).unwrap_err();
    assert_eq!(
        e,
        ChannelError::MissingField {
            field: "order_id".into()
        }
    );
    let e = marketplace::parse(&edit(
        MARKETPLACE,
        "\"order_id\": \"3904218850271553926\"",
        "\"order_id\": \" \"",
    ));
    assert_eq!(code(e), "missing-field");

    // Too many decimals for USD.
    let e = shopify::parse(&edit(SHOPIFY_PAID, "\"price\": \"89.00\"", "\"price\": \"12.345\"")).unwrap_err();
    assert_eq!(
        e,
        ChannelError::BadAmount {
            field: "line_items[0].price".into(),
            value: "12.345".into()
        }
    );
    assert_eq!(
        code(woocommerce::parse(&edit(
            WOO_PROCESSING,
            "\"total\": \"517.14\"",
            "\"total\": \"-517.14\""
        ))),
        "bad-amount"
    );
    assert_eq!(
        code(marketplace::parse(&edit(
            MARKETPLACE,
            "\"price\": \"368.00\"",
            "\"price\": 368.0"
        ))),
        "malformed-json"
    );
    assert_eq!(
        code(marketplace::parse(&edit(
            MARKETPLACE,
            "\"post_fee\": \"12.00\"",
            "\"post_fee\": \"12,00\""
        ))),
        "bad-amount"
    );

    // Quantities.
    let e = shopify::parse(&edit(SHOPIFY_PAID, "\"quantity\": 2,", "\"quantity\": -2,")).unwrap_err();
    assert_eq!(
        e,
        ChannelError::BadQuantity {
            field: "line_items[0].quantity".into(),
            value: -2
        }
    );
    assert_eq!(
        code(woocommerce::parse(&edit(
            WOO_PROCESSING,
            "\"quantity\": 1,",
            "\"quantity\": 0,"
        ))),
        "bad-quantity"
    );
    assert_eq!(
        code(marketplace::parse(&edit(
            MARKETPLACE,
            "\"quantity\": 1,",
            "\"quantity\": -1,"
        ))),
        "bad-quantity"
    );

    // Totals that do not add up.
    let e = shopify::parse(&edit(
        SHOPIFY_PAID,
        "\"total_price\": \"263.50\"",
        "\"total_price\": \"263.51\"",
    ))
    .unwrap_err();
    assert_eq!(
        e,
        ChannelError::TotalsMismatch {
            computed: 26350,
            total: 26351
        }
    );
    assert_eq!(
        code(woocommerce::parse(&edit(
            WOO_PROCESSING,
            "\"shipping_total\": \"14.90\"",
            "\"shipping_total\": \"4.90\""
        ))),
        "totals-mismatch"
    );
    assert_eq!(
        code(marketplace::parse(&edit(
            MARKETPLACE,
            "\"total\": \"464.80\"",
            "\"total\": \"500.00\""
        ))),
        "totals-mismatch"
    );
    // Shopify with taxes excluded but total_tax dropped: the tax is missing from the identity.
    assert_eq!(
        code(shopify::parse(&edit(
            SHOPIFY_PAID,
            "\"total_tax\": \"20.65\"",
            "\"total_tax\": \"0.00\""
        ))),
        "totals-mismatch"
    );

    // No lines.
    let no_lines = r#"{"id": 1, "currency": "USD", "total_price": "0.00", "line_items": []}"#;
    assert_eq!(shopify::parse(no_lines), Err(ChannelError::NoLines));
    let no_lines = r#"{"id": 1, "currency": "EUR", "total": "0.00", "line_items": []}"#;
    assert_eq!(woocommerce::parse(no_lines), Err(ChannelError::NoLines));
    let no_lines =
        r#"{"order_id": "1", "platform": "xianyu", "currency": "CNY", "items": [], "total": "0.00", "paid": false}"#;
    assert_eq!(marketplace::parse(no_lines), Err(ChannelError::NoLines));

    // Currencies.
    assert_eq!(
        code(shopify::parse(&edit(
            SHOPIFY_PAID,
            "\"currency\": \"USD\"",
            "\"currency\": \"usd\""
        ))),
        "bad-currency"
    );
    assert_eq!(
        code(marketplace::parse(&edit(
            MARKETPLACE,
            "\"currency\": \"CNY\"",
            "\"currency\": \"RMB1\""
        ))),
        "bad-currency"
    );

    // The marketplace format is ours: unknown fields are refused.
    assert_eq!(
        code(marketplace::parse(&edit(
            MARKETPLACE,
            "\"paid\": true",
            "\"paid\": true, \"piad\": true"
        ))),
        "malformed-json"
    );
}

#[test]
fn payment_status_mapping() {
    // Shopify: authorized is not paid; pending without the COD gateway is pending.
    let o = shopify::parse(&edit(
        SHOPIFY_PAID,
        "\"financial_status\": \"paid\"",
        "\"financial_status\": \"authorized\"",
    ));
    assert_eq!(o.unwrap().payment, ChannelPayment::Pending);
    let o = shopify::parse(&edit(
        SHOPIFY_PAID,
        "\"financial_status\": \"paid\"",
        "\"financial_status\": \"pending\"",
    ));
    assert_eq!(o.unwrap().payment, ChannelPayment::Pending);
    let cod = edit(
        SHOPIFY_COD,
        "\"gateway\": \"Cash on Delivery (COD)\"",
        "\"gateway\": null",
    );
    let cod = edit(&cod, "[\"Cash on Delivery (COD)\"]", "[\"cash_on_delivery\"]");
    assert_eq!(shopify::parse(&cod).unwrap().payment, ChannelPayment::CashOnDelivery);

    // WooCommerce: COD orders sit in `processing` without date_paid.
    let cod = edit(
        WOO_PROCESSING,
        "\"payment_method\": \"stripe\"",
        "\"payment_method\": \"cod\"",
    );
    let cod = edit(&cod, "\"date_paid\": \"2026-03-14T10:22:35\"", "\"date_paid\": null");
    assert_eq!(
        woocommerce::parse(&cod).unwrap().payment,
        ChannelPayment::CashOnDelivery
    );
    let pending = edit(WOO_PROCESSING, "\"status\": \"processing\"", "\"status\": \"pending\"");
    let pending = edit(
        &pending,
        "\"date_paid\": \"2026-03-14T10:22:35\"",
        "\"date_paid\": null",
    );
    assert_eq!(woocommerce::parse(&pending).unwrap().payment, ChannelPayment::Pending);
    let on_hold = edit(&pending, "\"status\": \"pending\"", "\"status\": \"on-hold\"");
    assert_eq!(woocommerce::parse(&on_hold).unwrap().payment, ChannelPayment::Pending);
    let completed = edit(&pending, "\"status\": \"pending\"", "\"status\": \"completed\"");
    assert!(matches!(
        woocommerce::parse(&completed).unwrap().payment,
        ChannelPayment::Paid { .. }
    ));

    // Marketplace.
    let unpaid = edit(MARKETPLACE, "\"paid\": true", "\"paid\": false");
    assert_eq!(marketplace::parse(&unpaid).unwrap().payment, ChannelPayment::Pending);
    let cod = edit(&unpaid, "\"payment_method\": \"alipay\"", "\"payment_method\": \"cod\"");
    assert_eq!(
        marketplace::parse(&cod).unwrap().payment,
        ChannelPayment::CashOnDelivery
    );
}

#[test]
fn woocommerce_subtotal_not_divisible_by_quantity() {
    // Three for 10.00: the unit price rounds up to 3.34 and the 0.02 becomes discount.
    let body = r#"{
        "id": 77, "currency": "EUR", "status": "pending", "date_paid": null, "payment_method": "bacs",
        "customer_id": 0, "billing": {"first_name": "", "last_name": "", "email": "", "phone": ""},
        "shipping": {"first_name": "", "last_name": "", "address_1": "", "city": "", "country": ""},
        "line_items": [{"name": "Bundle", "product_id": 5, "variation_id": 0, "quantity": 3, "sku": "B",
                        "subtotal": "10.00", "total": "9.00", "price": 3}],
        "discount_total": "1.00", "shipping_total": "0.00", "total_tax": "0.00", "total": "9.00"
    }"#;
    let o = woocommerce::parse(body).unwrap();
    assert_eq!(o.lines[0].unit_price_minor, 334);
    assert_eq!(o.lines[0].discount_minor, 102);
    assert_eq!(o.discount_minor, 102);
    assert_eq!(o.payment, ChannelPayment::Pending);
    assert_eq!(o.buyer.id, "guest:77");
    assert_eq!(o.shipping_address, None);
    assert_identity(&o);
}

#[test]
fn zero_decimal_currency() {
    let jpy = edit(SHOPIFY_COD, "\"currency\": \"INR\"", "\"currency\": \"JPY\"");
    let o = shopify::parse(&jpy).unwrap();
    assert_eq!(o.total_minor, 2199);
    assert_eq!(o.lines[0].unit_price_minor, 1299);
}

#[test]
fn each_channel_says_when_an_order_is_cancelled() {
    let shopify = edit(
        SHOPIFY_PAID,
        "\"cancelled_at\": null",
        "\"cancelled_at\": \"2026-03-14T21:02:11+08:00\"",
    );
    assert!(shopify::parse(&shopify).unwrap().cancelled);
    assert!(!shopify::parse(SHOPIFY_PAID).unwrap().cancelled);
    let woo = edit(
        WOO_PROCESSING,
        "\"status\": \"processing\"",
        "\"status\": \"cancelled\"",
    );
    assert!(woocommerce::parse(&woo).unwrap().cancelled);
    assert!(!woocommerce::parse(WOO_PROCESSING).unwrap().cancelled);
    let market = edit(
        MARKETPLACE,
        "\"paid\": true,",
        "\"paid\": true,\n  \"cancelled\": true,",
    );
    assert!(marketplace::parse(&market).unwrap().cancelled);
    assert!(!marketplace::parse(MARKETPLACE).unwrap().cancelled);
}
