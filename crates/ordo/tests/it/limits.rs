//! Limits that span orders, over HTTP: coupon usage limits, per-buyer purchase
//! limits and the history review rules (A3, A4, A5).

use hyper::Method;
use serde_json::{Value, json};

use crate::support::{Shop, TestApp, edit, order_body, problem_type, spawn_app};

async fn place(app: &TestApp, shop: &Shop, buyer: &str, lines: Value, coupon: Option<&str>) -> (u16, Value) {
    let mut body = order_body(lines);
    body["buyer"]["id"] = json!(buyer);
    body["shipping_address"]["line1"] = json!(format!("{buyer} 路 1 号"));
    if let Some(code) = coupon {
        body["coupon_codes"] = json!([code]);
    }
    let r = app.call(Method::POST, "/api/v1/orders", &shop.owner, Some(body)).await;
    (r.status, r.json())
}

#[tokio::test]
async fn coupons_and_purchase_limits_hold_across_orders() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let settings = json!({
        "promotions": [{
            "id": "新客立减", "coupon_code": "HELLO10", "kind": { "type": "fixed", "amount_minor": 100 },
            "usage_limit": 2, "per_buyer_limit": 1
        }],
        "purchase_limits": [{ "sku": "B", "max_units": 3, "window_secs": 86400 }],
    });
    let r = app.put_settings(&shop, settings).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["purchase_limits"][0]["max_units"], 3);

    let a = json!([{ "sku": "A", "quantity": 1 }]);
    let (status, first) = place(&app, &shop, "u1", a.clone(), Some("HELLO10")).await;
    assert_eq!((status, first["pricing"]["discount_minor"].as_i64()), (201, Some(100)));
    let (status, body) = place(&app, &shop, "u1", a.clone(), Some("HELLO10")).await;
    assert_eq!(
        (status, problem_type(&body)),
        (422, "coupon-per-buyer-limit"),
        "{body:?}"
    );
    assert_eq!(place(&app, &shop, "u2", a.clone(), Some("HELLO10")).await.0, 201);
    let (status, body) = place(&app, &shop, "u3", a.clone(), Some("HELLO10")).await;
    assert_eq!((status, problem_type(&body)), (422, "coupon-used-up"), "{body:?}");

    // A cancelled order gives its use back.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{}/cancel", first["id"].as_str().unwrap()),
            &shop.owner,
            Some(json!({ "reason": "buyer" })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(place(&app, &shop, "u3", a, Some("HELLO10")).await.0, 201);

    let b = |n: i64| json!([{ "sku": "B", "quantity": n }]);
    assert_eq!(place(&app, &shop, "u4", b(2), None).await.0, 201);
    let (status, body) = place(&app, &shop, "u4", b(2), None).await;
    assert_eq!((status, problem_type(&body)), (422, "purchase-limit"), "{body:?}");
    assert_eq!(place(&app, &shop, "u4", b(1), None).await.0, 201, "up to the limit");
    assert_eq!(place(&app, &shop, "u5", b(2), None).await.0, 201, "per buyer");
    let stock = app.stock(&shop.owner, "B").await;
    assert_eq!(stock["reserved"], 5, "refused orders reserved nothing");

    let bad = json!({ "purchase_limits": [{ "sku": "B", "max_units": 0 }] });
    let r = app.put_settings(&shop, bad).await;
    assert_eq!((r.status, problem_type(&r.json())), (422, "invalid-setting"));
}

#[tokio::test]
async fn a_new_buyers_big_first_order_and_a_busy_address_are_held() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let settings = json!({ "review": {
        "new_buyer_above_minor": 3000,
        "address_orders": { "max_orders": 2, "window_secs": 3600 }
    } });
    let r = app.put_settings(&shop, settings).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let status_after_paying = |order: Value| {
        let app = &app;
        let shop = &shop;
        async move {
            assert_eq!(app.pay(shop, &order).await.status, 200);
            let id = order["id"].as_str().unwrap();
            app.call(Method::GET, &format!("/api/v1/orders/{id}"), &shop.owner, None)
                .await
                .json()
        }
    };
    let big = json!([{ "sku": "A", "quantity": 2 }]);
    let (_, first) = place(&app, &shop, "newbie", big.clone(), None).await;
    let first = status_after_paying(first).await;
    assert_eq!(first["status"], "on_hold");
    assert!(
        first["hold_reason"].as_str().unwrap().contains("new buyer"),
        "{first:?}"
    );
    let (_, second) = place(&app, &shop, "newbie", big, None).await;
    assert_eq!(
        status_after_paying(second).await["status"],
        "fulfilling",
        "a known buyer now"
    );

    // Same address, a third order within the hour: held for a look.
    let (_, third) = place(&app, &shop, "newbie", json!([{ "sku": "B", "quantity": 1 }]), None).await;
    let third = status_after_paying(third).await;
    assert_eq!(third["status"], "on_hold");
    assert!(
        third["hold_reason"]
            .as_str()
            .unwrap()
            .contains("3 orders to this address"),
        "{third:?}"
    );
}

#[tokio::test]
async fn an_edit_counts_against_purchase_limits_as_a_placement_does() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let settings = json!({ "purchase_limits": [{ "sku": "B", "max_units": 3, "window_secs": 86400 }] });
    let r = app.put_settings(&shop, settings).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let (status, order) = place(&app, &shop, "u1", json!([{ "sku": "B", "quantity": 1 }]), None).await;
    assert_eq!(status, 201, "{order:?}");
    let (status, body) = edit(
        &app,
        &shop,
        &order,
        json!({ "version": order["version"], "lines": [{ "sku": "B", "quantity": 4 }] }),
    )
    .await;
    assert_eq!((status, problem_type(&body)), (422, "purchase-limit"), "{body:?}");
    let (status, edited) = edit(
        &app,
        &shop,
        &order,
        json!({ "version": order["version"], "lines": [{ "sku": "B", "quantity": 3 }] }),
    )
    .await;
    assert_eq!(status, 200, "{edited:?}");
    // The edit counted: the buyer has had all three.
    let (status, body) = place(&app, &shop, "u1", json!([{ "sku": "B", "quantity": 1 }]), None).await;
    assert_eq!((status, problem_type(&body)), (422, "purchase-limit"), "{body:?}");

    // Editing B away gives the units back.
    let (status, edited) = edit(
        &app,
        &shop,
        &order,
        json!({ "version": edited["version"], "lines": [{ "sku": "A", "quantity": 1 }] }),
    )
    .await;
    assert_eq!(status, 200, "{edited:?}");
    let (status, body) = place(&app, &shop, "u1", json!([{ "sku": "B", "quantity": 3 }]), None).await;
    assert_eq!(status, 201, "{body:?}");
}

#[tokio::test]
async fn an_edit_prices_by_the_promotions_as_placed_and_gives_back_a_coupon_it_loses() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let promotions = |tenth_bp: u32| {
        json!({ "promotions": [
            { "id": "tenth", "kind": { "type": "percentage", "percent_bp": tenth_bp }, "stackable": true },
            { "id": "big", "coupon_code": "BIG", "usage_limit": 1, "stackable": true, "priority": 1,
              "kind": { "type": "threshold", "spend_minor": 5000, "off_minor": 1000 } },
        ] })
    };
    assert_eq!(app.put_settings(&shop, promotions(1000)).await.status, 200);
    let a = |n: i64| json!([{ "sku": "A", "quantity": n }]);
    // 3 × 19.99 = 59.97: 10.00 off for spending 50, then a tenth of 49.97.
    let (status, order) = place(&app, &shop, "u1", a(3), Some("BIG")).await;
    assert_eq!(
        (status, order["pricing"]["discount_minor"].as_i64()),
        (201, Some(1499)),
        "{order:?}"
    );

    // The shop now gives half off; the placed order keeps the tenth it was sold with.
    assert_eq!(app.put_settings(&shop, promotions(5000)).await.status, 200);
    let (status, edited) = edit(
        &app,
        &shop,
        &order,
        json!({ "version": order["version"], "lines": a(4) }),
    )
    .await;
    assert_eq!(status, 200, "{edited:?}");
    assert_eq!(
        edited["pricing"]["discount_minor"],
        1000 + 699,
        "79.96: 10.00, then a tenth of 69.96"
    );
    let (status, body) = place(&app, &shop, "u2", a(3), Some("BIG")).await;
    assert_eq!((status, problem_type(&body)), (422, "coupon-used-up"), "{body:?}");

    // Down to 39.98 the coupon no longer applies: the order loses it and gives its use back.
    let (status, edited) = edit(
        &app,
        &shop,
        &order,
        json!({ "version": edited["version"], "lines": a(2) }),
    )
    .await;
    assert_eq!(status, 200, "{edited:?}");
    assert_eq!(edited["pricing"]["discount_minor"], 399, "{edited:?}");
    let applied = crate::support::strs(&edited["pricing"]["promotions"], "id");
    assert_eq!(applied, ["tenth"]);
    let (status, body) = place(&app, &shop, "u2", a(3), Some("BIG")).await;
    assert_eq!(status, 201, "the coupon's use came back: {body:?}");
}
