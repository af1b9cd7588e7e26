//! Channel intake over HTTP with each platform's documented payloads: signatures,
//! raw orders kept when unmappable, SKU mappings, re-sends, and shop scoping.

use hyper::Method;
use ordo::client::{self, Response};
use serde_json::{Value, json};

use crate::support::{ADMIN, TestApp, spawn_app};

const SHOPIFY_PAID: &str = include_str!("../../../ordo-channels/tests/fixtures/shopify-order-paid.json");
const SHOPIFY_COD: &str = include_str!("../../../ordo-channels/tests/fixtures/shopify-order-cod.json");
const WOO_PROCESSING: &str = include_str!("../../../ordo-channels/tests/fixtures/woocommerce-order-processing.json");
const MARKETPLACE: &str = include_str!("../../../ordo-channels/tests/fixtures/marketplace-order.json");
const SECRET: &str = "channel-secret-0123456789";

struct ChannelShop {
    id: String,
    owner: String,
}

/// A shop in `currency` selling `skus` (each with 50 units) from one warehouse,
/// with `channel` configured.
async fn channel_shop(app: &TestApp, currency: &str, channel: &str, skus: &[&str]) -> ChannelShop {
    let r = app
        .call(
            Method::POST,
            "/api/v1/shops",
            ADMIN,
            Some(json!({ "name": format!("{channel} shop"), "currency": currency })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let owner = app.key(&id, "owner").await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/warehouses",
            &owner,
            Some(json!({ "code": "MAIN", "name": "Main", "region": "CN-GD" })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let warehouse = r.json()["id"].as_str().unwrap().to_string();
    for sku in skus {
        let body = json!({ "sku": sku, "name": sku, "price_minor": 100 });
        let r = app.call(Method::POST, "/api/v1/products", &owner, Some(body)).await;
        assert_eq!(r.status, 201, "{:?}", r.json());
        let r = app
            .call(
                Method::POST,
                &format!("/api/v1/stock/{sku}/adjustments"),
                &owner,
                Some(json!({ "warehouse_id": warehouse, "delta": 50 })),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
    }
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/channels/{channel}"),
            &owner,
            Some(json!({ "secret": SECRET })),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.json());
    ChannelShop { id, owner }
}

fn header_of(channel: &str) -> &'static str {
    match channel {
        "shopify" => "x-shopify-hmac-sha256",
        "woocommerce" => "x-wc-webhook-signature",
        _ => "x-ordo-hmac-sha256",
    }
}

/// Posts `body` the way the channel does: raw bytes, signed with `secret`.
async fn deliver(app: &TestApp, channel: &str, shop: &str, body: &str, secret: &str) -> Response {
    let signature = ordo_channels::sign(secret.as_bytes(), body.as_bytes());
    let headers = [
        (header_of(channel), signature.as_str()),
        ("content-type", "application/json"),
        ("x-shopify-webhook-id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
    ];
    client::request(
        app.addr,
        Method::POST,
        &format!("/api/v1/channels/{channel}/orders?shop={shop}"),
        &headers,
        Some(body.as_bytes().to_vec()),
    )
    .await
    .expect("request")
}

/// A USD shop selling the Shopify fixture's SKUs, no mapping yet: the fixture's
/// gift-wrap line (no seller SKU) leaves its orders unmapped.
async fn shopify_shop_unmapped(app: &TestApp) -> ChannelShop {
    channel_shop(
        app,
        "USD",
        "shopify",
        &["SWTR-MER-M-NVY", "CUP-CELADON-01", "GIFT-WRAP"],
    )
    .await
}

/// A USD shop selling the Shopify fixture's SKUs, its gift-wrap line (no seller
/// SKU) mapped by variant.
async fn shopify_shop(app: &TestApp) -> ChannelShop {
    let shop = shopify_shop_unmapped(app).await;
    map(
        app,
        &shop,
        "shopify",
        json!([{ "channel_key": "variant:43012934664357", "sku": "GIFT-WRAP" }]),
    )
    .await;
    shop
}

/// Runs a stored channel order through mapping again, as `who`.
async fn retry(app: &TestApp, who: &str, raw_id: &str) -> Response {
    app.call(
        Method::POST,
        &format!("/api/v1/channel-orders/{raw_id}/retry"),
        who,
        Some(json!({})),
    )
    .await
}

async fn map(app: &TestApp, shop: &ChannelShop, channel: &str, mappings: Value) {
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/channels/{channel}/sku-mappings"),
            &shop.owner,
            Some(json!({ "mappings": mappings })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
}

async fn order(app: &TestApp, shop: &ChannelShop, id: &Value) -> Value {
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/orders/{}", id.as_str().unwrap()),
            &shop.owner,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    r.json()
}

async fn channel_orders(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let r = app
        .call(Method::GET, &format!("/api/v1/channel-orders{query}"), token, None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    r.json()["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_shopify_order_waits_for_its_mapping_then_completes_on_resend() {
    let app = spawn_app().await;
    let shop = shopify_shop_unmapped(&app).await;

    // The gift-wrap line has no SKU: the order is kept, unmapped, with the reason.
    let r = deliver(&app, "shopify", &shop.id, SHOPIFY_PAID, SECRET).await;
    assert_eq!(r.status, 202, "{:?}", r.json());
    let receipt = r.json();
    assert_eq!(
        (receipt["status"].as_str(), receipt["reason_code"].as_str()),
        (Some("unmapped"), Some("unmapped-sku"))
    );
    assert!(receipt["reason"].as_str().unwrap().contains("43012934664357"));
    let waiting = channel_orders(&app, &shop.owner, "?status=unmapped").await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["external_id"], "5872349102117");
    assert_eq!(waiting[0]["body"].as_str(), Some(SHOPIFY_PAID), "kept byte for byte");

    map(
        &app,
        &shop,
        "shopify",
        json!([{ "channel_key": "variant:43012934664357", "sku": "GIFT-WRAP" }]),
    )
    .await;
    let r = deliver(&app, "shopify", &shop.id, SHOPIFY_PAID, SECRET).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let receipt = r.json();
    assert_eq!(
        receipt["channel_order_id"], waiting[0]["id"],
        "the same raw order completed"
    );
    let placed = order(&app, &shop, &receipt["order_id"]).await;
    assert_eq!(placed["channel"], "shopify");
    assert_eq!(placed["external_id"], "5872349102117");
    assert_eq!(placed["status"], "fulfilling", "paid at Shopify and approved by review");
    assert_eq!(placed["pricing"]["total_minor"], 26_350);
    assert_eq!(placed["pricing"]["currency"], "USD");
    assert_eq!(placed["buyer"]["name"], "Zoë Ångström");
    let lines = placed["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        (lines[0]["sku"].as_str(), lines[0]["unit_price_minor"].as_i64()),
        (Some("SWTR-MER-M-NVY"), Some(8_900))
    );
    let payments = app
        .call(
            Method::GET,
            &format!("/api/v1/orders/{}/payments", receipt["order_id"].as_str().unwrap()),
            &shop.owner,
            None,
        )
        .await
        .json();
    assert_eq!(payments[0]["status"], "captured", "{payments:?}");
    assert_eq!(payments[0]["captured_minor"], 26_350);
    assert_eq!(payments[0]["gateway"], "shopify");

    // Shopify retries webhooks: a re-send is answered 200 and creates nothing.
    let r = deliver(&app, "shopify", &shop.id, SHOPIFY_PAID, SECRET).await;
    assert_eq!((r.status, r.json()["duplicate"].as_bool()), (200, Some(true)));
    assert_eq!(r.json()["order_id"], receipt["order_id"]);
    let all = app.call(Method::GET, "/api/v1/orders", &shop.owner, None).await.json();
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    assert!(channel_orders(&app, &shop.owner, "?status=unmapped").await.is_empty());
}

#[tokio::test]
async fn a_bad_signature_or_an_unconfigured_channel_stores_nothing() {
    let app = spawn_app().await;
    let shop = channel_shop(&app, "USD", "shopify", &["SWTR-MER-M-NVY"]).await;
    let r = deliver(&app, "shopify", &shop.id, SHOPIFY_PAID, "wrong-secret-0123456789").await;
    assert_eq!(r.status, 401, "{:?}", r.json());
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let tampered = SHOPIFY_PAID.replace("263.50", "2.50");
    let signature = ordo_channels::sign(SECRET.as_bytes(), SHOPIFY_PAID.as_bytes());
    let r = client::request(
        app.addr,
        Method::POST,
        &format!("/api/v1/channels/shopify/orders?shop={}", shop.id),
        &[("x-shopify-hmac-sha256", signature.as_str())],
        Some(tampered.into_bytes()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401);
    let r = deliver(&app, "woocommerce", &shop.id, WOO_PROCESSING, SECRET).await;
    assert_eq!(r.status, 401, "woocommerce is not configured for this shop");
    let r = deliver(&app, "ebay", &shop.id, SHOPIFY_PAID, SECRET).await;
    assert_eq!(r.status, 422, "{:?}", r.json());
    assert!(channel_orders(&app, &shop.owner, "").await.is_empty());
}

#[tokio::test]
async fn unreadable_and_invalid_orders_are_kept_with_their_reason_codes() {
    let app = spawn_app().await;
    let shop = channel_shop(&app, "CNY", "marketplace", &["TEA-LJ-250G", "CUP-QC-06"]).await;
    let r = deliver(&app, "marketplace", &shop.id, "{\"order_id\": \"TB-9\", ", SECRET).await;
    assert_eq!(
        (r.status, r.json()["reason_code"].as_str()),
        (202, Some("malformed-json"))
    );

    // The receiver's city is not in the province: kept as invalid-address.
    let wrong_city = MARKETPLACE.replace("深圳市", "杭州市");
    let r = deliver(&app, "marketplace", &shop.id, &wrong_city, SECRET).await;
    assert_eq!(
        (r.status, r.json()["reason_code"].as_str()),
        (202, Some("invalid-address")),
        "{:?}",
        r.json()
    );
    let kept = channel_orders(&app, &shop.owner, "?status=unmapped").await;
    assert_eq!(kept.len(), 2);

    // The platform re-sends the corrected order: the same raw order completes.
    let r = deliver(&app, "marketplace", &shop.id, MARKETPLACE, SECRET).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let placed = order(&app, &shop, &r.json()["order_id"]).await;
    assert_eq!(placed["shipping_address"]["district"], "南山区");
    assert_eq!(placed["pricing"]["total_minor"], 46_480);
    assert_eq!(placed["status"], "fulfilling");
    let kept = channel_orders(&app, &shop.owner, "?status=unmapped").await;
    assert_eq!(kept.len(), 1, "only the unreadable body is left");
    let kept_id = kept[0]["external_id"].as_str().unwrap();
    assert!(
        kept_id.starts_with("unread-"),
        "kept under a digest of the body: {kept_id}"
    );
    let r = deliver(&app, "marketplace", &shop.id, "{\"order_id\": \"TB-9\", ", SECRET).await;
    assert_eq!(
        r.json()["channel_order_id"],
        kept[0]["id"],
        "the same unreadable body is the same raw order"
    );

    // Signed bytes that are not UTF-8 are kept too, with the same reason code.
    let not_utf8 = b"{\"order_id\": \"TB-\xff\"}".to_vec();
    let signature = ordo_channels::sign(SECRET.as_bytes(), &not_utf8);
    let r = client::request(
        app.addr,
        Method::POST,
        &format!("/api/v1/channels/marketplace/orders?shop={}", shop.id),
        &[("x-ordo-hmac-sha256", signature.as_str())],
        Some(not_utf8),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status, r.json()["reason_code"].as_str()),
        (202, Some("malformed-json"))
    );
    assert!(
        r.json()["reason"].as_str().unwrap().contains("not UTF-8"),
        "{:?}",
        r.json()
    );
    assert_eq!(channel_orders(&app, &shop.owner, "?status=unmapped").await.len(), 2);
}

#[tokio::test]
async fn woocommerce_orders_map_by_variation_product_and_seller_sku() {
    let app = spawn_app().await;
    let shop = channel_shop(&app, "EUR", "woocommerce", &["ARM-BERG-LIN", "THROW-GREY", "CANDLE"]).await;
    map(
        &app,
        &shop,
        "woocommerce",
        json!([
            { "channel_key": "variant:851", "sku": "THROW-GREY" },
            { "channel_key": "product:870", "sku": "CANDLE" },
        ]),
    )
    .await;
    let r = deliver(&app, "woocommerce", &shop.id, WOO_PROCESSING, SECRET).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let placed = order(&app, &shop, &r.json()["order_id"]).await;
    let skus = crate::support::strs(&placed["lines"], "sku");
    assert_eq!(skus, ["ARM-BERG-LIN", "THROW-GREY", "CANDLE"]);
    assert_eq!(placed["pricing"]["total_minor"], 51_714);
    assert_eq!(placed["pricing"]["tax_minor"], 8_257);
    assert_eq!(placed["note"].as_str().map(|n| !n.is_empty()), Some(true));
}

#[tokio::test]
async fn a_cash_on_delivery_order_goes_to_fulfilment_unpaid() {
    let app = spawn_app().await;
    let shop = channel_shop(&app, "INR", "shopify", &["KURTA-L-IND", "DUPATTA"]).await;
    map(
        &app,
        &shop,
        "shopify",
        json!([{ "channel_key": "variant:43013012652069", "sku": "DUPATTA" }]),
    )
    .await;
    let r = deliver(&app, "shopify", &shop.id, SHOPIFY_COD, SECRET).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let placed = order(&app, &shop, &r.json()["order_id"]).await;
    assert_eq!(placed["status"], "fulfilling");
    assert_eq!(placed["paid_minor"], 0);
    assert!(
        placed["payment_due_at"].is_null(),
        "no payment timeout for cash on delivery"
    );
}

#[tokio::test]
async fn channel_orders_and_mappings_stay_inside_their_shop() {
    let app = spawn_app().await;
    let shop = channel_shop(&app, "USD", "shopify", &["SWTR-MER-M-NVY"]).await;
    let other = channel_shop(&app, "USD", "shopify", &["SWTR-MER-M-NVY"]).await;
    let r = deliver(&app, "shopify", &shop.id, SHOPIFY_PAID, SECRET).await;
    let raw_id = r.json()["channel_order_id"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/channel-orders/{raw_id}"),
            &other.owner,
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = retry(&app, &other.owner, &raw_id).await;
    assert_eq!(r.status, 404);
    assert!(channel_orders(&app, &other.owner, "").await.is_empty());
    map(
        &app,
        &shop,
        "shopify",
        json!([{ "channel_key": "sku:x", "sku": "SWTR-MER-M-NVY" }]),
    )
    .await;
    let theirs = app
        .call(Method::GET, "/api/v1/channels/shopify/sku-mappings", &other.owner, None)
        .await;
    assert_eq!(theirs.json(), json!([]));

    // A role that does not see buyers' personal data gets the raw order without its body.
    let warehouse = app.key(&shop.id, "warehouse").await;
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/channel-orders/{raw_id}"),
            &warehouse,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(r.json()["body"].is_null());

    // Another shop's webhook URL does not accept this shop's secret.
    let r = app
        .call(
            Method::PUT,
            "/api/v1/channels/shopify",
            &other.owner,
            Some(json!({ "secret": "another-secret-0123456789" })),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = deliver(&app, "shopify", &other.id, SHOPIFY_PAID, SECRET).await;
    assert_eq!(r.status, 401);

    // A retry by a person completes an order once its mapping exists.
    let r = retry(&app, &shop.owner, &raw_id).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(
        r.json()["channel_order"]["status"],
        "unmapped",
        "CUP and gift wrap are still unknown"
    );
}

#[tokio::test]
async fn a_retry_after_the_mapping_answers_with_the_order_it_placed() {
    let app = spawn_app().await;
    let shop = shopify_shop_unmapped(&app).await;
    // Unmapped: the gift-wrap line has no SKU.
    let r = deliver(&app, "shopify", &shop.id, SHOPIFY_PAID, SECRET).await;
    assert_eq!(r.status, 202, "{:?}", r.json());
    let raw_id = r.json()["channel_order_id"].as_str().unwrap().to_string();
    let gift_wrap = json!([{ "channel_key": "variant:43012934664357", "sku": "GIFT-WRAP" }]);
    map(&app, &shop, "shopify", gift_wrap).await;
    let r = retry(&app, &shop.owner, &raw_id).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let result = r.json();
    assert_eq!(result["channel_order"]["status"], "mapped");
    assert_eq!(result["order"]["id"], result["channel_order"]["order_id"]);
    assert_eq!(result["order"]["external_id"], "5872349102117");
    assert_eq!(result["order"]["lines"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn a_shopify_order_paid_later_is_paid_by_the_later_webhook() {
    let app = spawn_app().await;
    let shop = shopify_shop(&app).await;
    let pending = SHOPIFY_PAID.replace("\"financial_status\": \"paid\"", "\"financial_status\": \"pending\"");
    assert_ne!(pending, SHOPIFY_PAID);
    let r = deliver(&app, "shopify", &shop.id, &pending, SECRET).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let id = r.json()["order_id"].clone();
    assert_eq!(order(&app, &shop, &id).await["status"], "pending_payment");

    // orders/paid carries the same order, now paid.
    let r = deliver(&app, "shopify", &shop.id, SHOPIFY_PAID, SECRET).await;
    assert_eq!((r.status, r.json()["duplicate"].as_bool()), (200, Some(true)));
    let paid = order(&app, &shop, &id).await;
    assert_eq!(
        (paid["status"].as_str(), paid["paid_minor"].as_i64()),
        (Some("fulfilling"), Some(26_350))
    );
    let r = deliver(&app, "shopify", &shop.id, SHOPIFY_PAID, SECRET).await;
    assert_eq!(r.status, 200);
    assert_eq!(order(&app, &shop, &id).await["paid_minor"], 26_350, "paid once");
}

#[tokio::test]
async fn a_channel_cancellation_cancels_the_order_until_it_ships() {
    let app = spawn_app().await;
    let shop = shopify_shop(&app).await;
    let cancelled_body = |id: &str| {
        SHOPIFY_PAID
            .replace("\"id\": 5872349102117", &format!("\"id\": {id}"))
            .replace(
                "\"cancelled_at\": null",
                "\"cancelled_at\": \"2026-11-20T10:00:00-05:00\"",
            )
    };
    let r = deliver(&app, "shopify", &shop.id, SHOPIFY_PAID, SECRET).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let id = r.json()["order_id"].clone();
    assert_eq!(app.stock(&shop.owner, "CUP-CELADON-01").await["reserved"], 3);

    // orders/cancelled: the same order, now cancelled at Shopify.
    let cancelled = cancelled_body("5872349102117");
    assert_ne!(cancelled, SHOPIFY_PAID);
    for _ in 0..2 {
        let r = deliver(&app, "shopify", &shop.id, &cancelled, SECRET).await;
        assert_eq!(
            (r.status, r.json()["duplicate"].as_bool()),
            (200, Some(true)),
            "{:?}",
            r.json()
        );
        let o = order(&app, &shop, &id).await;
        assert_eq!(
            (
                o["status"].as_str(),
                o["cancel_reason"].as_str(),
                o["refunded_minor"].as_i64()
            ),
            (Some("cancelled"), Some("platform"), Some(26_350)),
            "cancelled and refunded once: {o}"
        );
    }
    let cup = app.stock(&shop.owner, "CUP-CELADON-01").await;
    assert_eq!(
        (cup["reserved"].as_i64(), cup["available"].as_i64()),
        (Some(0), Some(50))
    );

    // An order that arrives already cancelled is kept as received, not placed.
    let r = deliver(&app, "shopify", &shop.id, &cancelled_body("5872349102118"), SECRET).await;
    assert_eq!(r.status, 202, "{:?}", r.json());
    assert_eq!(
        (r.json()["reason_code"].as_str(), &r.json()["order_id"]),
        (Some("cancelled-at-channel"), &Value::Null)
    );

    // Once shipped, a cancellation at the channel is for a person: the order stays
    // shipped and the refusal is in the event log.
    let fresh = SHOPIFY_PAID.replace("\"id\": 5872349102117", "\"id\": 5872349102119");
    let r = deliver(&app, "shopify", &shop.id, &fresh, SECRET).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let shipped = r.json()["order_id"].clone();
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{}/ship", shipped.as_str().unwrap()),
            &shop.owner,
            Some(json!({ "carrier": "UPS", "tracking_number": "1Z999AA10123456784" })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = deliver(&app, "shopify", &shop.id, &cancelled_body("5872349102119"), SECRET).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(order(&app, &shop, &shipped).await["status"], "shipped");
    let refused = app.events_of(&shop.owner, "channel_order.cancel_refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["payload"]["order"], shipped);
    assert_eq!(refused[0]["payload"]["status"], "shipped");
    // Shopify re-delivers a webhook it is unsure of: the person is told once.
    let r = deliver(&app, "shopify", &shop.id, &cancelled_body("5872349102119"), SECRET).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(
        app.events_of(&shop.owner, "channel_order.cancel_refused").await.len(),
        1
    );
    assert_eq!(order(&app, &shop, &shipped).await["status"], "shipped");
}

#[tokio::test]
async fn an_address_changed_at_the_channel_edits_the_order_until_it_ships() {
    let app = spawn_app().await;
    let shop = shopify_shop(&app).await;
    let moved_to = |line1: &str| {
        let mut body: Value = serde_json::from_str(SHOPIFY_PAID).unwrap();
        body["shipping_address"]["address1"] = json!(line1);
        body.to_string()
    };
    let r = deliver(&app, "shopify", &shop.id, SHOPIFY_PAID, SECRET).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let order_id = r.json()["order_id"].clone();
    let id = order_id.as_str().unwrap().to_string();

    // orders/updated with a new street: the order follows, as a revision.
    for _ in 0..2 {
        let r = deliver(&app, "shopify", &shop.id, &moved_to("1 Liberty Plaza"), SECRET).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
    }
    let o = order(&app, &shop, &order_id).await;
    assert_eq!(o["shipping_address"]["line1"], "1 Liberty Plaza");
    assert_eq!(
        o["revisions"].as_array().map(Vec::len),
        Some(1),
        "a repeat changes nothing: {o}"
    );
    assert_eq!(o["revisions"][0]["address_changed"], true);
    assert_eq!(app.events_of(&shop.owner, "order.edited").await.len(), 1);

    // A delivery that repeats the channel's address does not undo an edit made in Ordo.
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/orders/{id}"),
            &shop.owner,
            Some(json!({
                "version": o["version"],
                "shipping_address": { "recipient": "Zoë Ångström", "phone": "+1 212-555-0143", "country": "US",
                    "province": "NY", "city": "New York", "line1": "20 W 34th St", "postal_code": "10001" },
                "reason": "buyer called"
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = deliver(&app, "shopify", &shop.id, &moved_to("1 Liberty Plaza"), SECRET).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(
        order(&app, &shop, &order_id).await["shipping_address"]["line1"],
        "20 W 34th St"
    );

    // Once shipped, a change at the channel is for a person, told once.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{id}/ship"),
            &shop.owner,
            Some(json!({ "carrier": "UPS", "tracking_number": "1Z999AA10123456784" })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    for _ in 0..2 {
        let r = deliver(&app, "shopify", &shop.id, &moved_to("11 Wall St"), SECRET).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
    }
    assert_eq!(
        order(&app, &shop, &order_id).await["shipping_address"]["line1"],
        "20 W 34th St"
    );
    let refused = app.events_of(&shop.owner, "channel_order.change_refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        (
            refused[0]["payload"]["order"].as_str(),
            refused[0]["payload"]["status"].as_str()
        ),
        (Some(id.as_str()), Some("shipped"))
    );
}
