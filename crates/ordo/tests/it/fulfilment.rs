//! Fulfilment rules: pre-sale goods ship apart from goods in stock (A3, A6).

use hyper::Method;
use serde_json::{Value, json};

use crate::support::{Shop, TestApp, edit, problem_type, spawn_app};

const DAY: i64 = 86_400;

/// A pre-sale SKU with 20 units; returns its product id.
async fn presale_sku(app: &TestApp, shop: &Shop, sku: &str, ships_in_secs: i64) -> String {
    let ships_at = ordo_api::dto::time(ordo_core::Timestamp(app.clock_secs() * 1000 + ships_in_secs * 1000));
    let r = app
        .call(
            Method::POST,
            "/api/v1/products",
            &shop.owner,
            Some(json!({ "sku": sku, "name": "新茶预售 Spring tea pre-sale", "price_minor": 8800, "presale_ships_at": ships_at })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(r.json()["presale_ships_at"], json!(ships_at));
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/stock/{sku}/adjustments"),
            &shop.owner,
            Some(json!({ "warehouse_id": shop.warehouse, "delta": 20 })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    id
}

async fn ship(app: &TestApp, shop: &Shop, id: &str, parcel: Option<usize>) -> (u16, Value) {
    let mut body = json!({ "carrier": "SF", "tracking_number": format!("SF{}", parcel.unwrap_or(9)) });
    if let Some(p) = parcel {
        body["parcel"] = json!(p);
    }
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{id}/ship"),
            &shop.owner,
            Some(body),
        )
        .await;
    (r.status, r.json())
}

#[tokio::test]
async fn a_presale_line_never_shares_a_parcel_with_goods_in_stock() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    presale_sku(&app, &shop, "TEA-NEW", 2 * DAY).await;
    let order = app
        .place(
            &shop.owner,
            json!([{ "sku": "A", "quantity": 1 }, { "sku": "TEA-NEW", "quantity": 2 }, { "sku": "B", "quantity": 1 }]),
        )
        .await
        .json();
    let parcels = order["parcels"].as_array().unwrap();
    assert_eq!(parcels.len(), 2, "{order:?}");
    assert_eq!(parcels[0]["lines"], json!([0, 2]), "goods in stock together");
    assert_eq!(parcels[1]["lines"], json!([1]), "the pre-sale line apart");
    assert!(parcels[0]["ships_at"].is_null() && parcels[1]["ships_at"].is_string());
    assert!(app.pay(&shop, &order).await.status == 200);
    let id = order["id"].as_str().unwrap();

    let (status, body) = ship(&app, &shop, id, None).await;
    assert_eq!((status, problem_type(&body)), (422, "parcel-required"), "{body:?}");
    let only_presale = app
        .place(&shop.owner, json!([{ "sku": "TEA-NEW", "quantity": 1 }]))
        .await
        .json();
    assert_eq!(only_presale["parcels"], json!([]), "one parcel, the whole order");
    assert_eq!(app.pay(&shop, &only_presale).await.status, 200);
    let (status, body) = ship(&app, &shop, only_presale["id"].as_str().unwrap(), None).await;
    assert_eq!((status, problem_type(&body)), (422, "presale-not-ready"), "{body:?}");
    let (status, body) = ship(&app, &shop, id, Some(1)).await;
    assert_eq!((status, problem_type(&body)), (422, "presale-not-ready"), "{body:?}");

    let (status, body) = ship(&app, &shop, id, Some(0)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("fulfilling")), "{body:?}");
    assert_eq!(body["parcels"][0]["shipment"]["tracking_number"], "SF0");
    let a = app.stock(&shop.owner, "A").await;
    assert_eq!((a["on_hand"].as_i64(), a["reserved"].as_i64()), (Some(99), Some(0)));
    let tea = app.stock(&shop.owner, "TEA-NEW").await;
    assert_eq!(
        (tea["on_hand"].as_i64(), tea["reserved"].as_i64()),
        (Some(20), Some(3)),
        "still held"
    );
    let (status, body) = ship(&app, &shop, id, Some(0)).await;
    assert_eq!((status, problem_type(&body)), (422, "no-such-parcel"), "{body:?}");

    app.clock.advance_secs(2 * DAY + 1);
    let (status, body) = ship(&app, &shop, id, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("shipped")),
        "the last parcel: {body:?}"
    );
    assert_eq!(body["shipment"]["tracking_number"], "SF9");
    let tea = app.stock(&shop.owner, "TEA-NEW").await;
    assert_eq!((tea["on_hand"].as_i64(), tea["reserved"].as_i64()), (Some(18), Some(1)));

    // Once the pre-sale date has passed, the SKU is in stock and ships with the rest.
    let later = app
        .place(
            &shop.owner,
            json!([{ "sku": "A", "quantity": 1 }, { "sku": "TEA-NEW", "quantity": 1 }]),
        )
        .await
        .json();
    assert_eq!(later["parcels"], json!([]));
}

#[tokio::test]
async fn a_presale_date_that_moves_reaches_the_orders_sold_under_it() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let tea = presale_sku(&app, &shop, "TEA-NEW", 2 * DAY).await;
    let mixed = app
        .place(
            &shop.owner,
            json!([{ "sku": "A", "quantity": 1 }, { "sku": "TEA-NEW", "quantity": 1 }]),
        )
        .await
        .json();
    let only_tea = app
        .place(&shop.owner, json!([{ "sku": "TEA-NEW", "quantity": 1 }]))
        .await
        .json();
    let in_stock = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    for order in [&mixed, &only_tea, &in_stock] {
        assert_eq!(app.pay(&shop, order).await.status, 200);
    }
    let (status, _) = ship(&app, &shop, mixed["id"].as_str().unwrap(), Some(0)).await;
    assert_eq!(status, 200, "the goods in stock left");
    let in_stock_paid = fetch(&app, &shop, &in_stock, "").await;

    // The supplier is late: the pre-sale now ships in five days.
    let later = ordo_api::dto::time(ordo_core::Timestamp((app.clock_secs() + 5 * DAY) * 1000));
    let product = format!("/api/v1/products/{tea}");
    let patch = |ships_at: Value| {
        app.call(
            Method::PATCH,
            &product,
            &shop.owner,
            Some(json!({ "presale_ships_at": ships_at })),
        )
    };
    assert_eq!(patch(json!(later)).await.status, 200);
    let mixed_now = fetch(&app, &shop, &mixed, "").await;
    assert_eq!(mixed_now["lines"][1]["ships_at"], json!(later));
    assert_eq!(mixed_now["parcels"][1]["ships_at"], json!(later));
    assert_eq!(
        mixed_now["parcels"][0]["shipment"]["tracking_number"], "SF0",
        "the shipped parcel stays"
    );
    assert_eq!(
        fetch(&app, &shop, &only_tea, "").await["lines"][0]["ships_at"],
        json!(later)
    );
    assert_eq!(
        fetch(&app, &shop, &in_stock, "").await["version"],
        in_stock_paid["version"],
        "untouched"
    );
    let mut moved: Vec<String> = app
        .events_of(&shop.owner, "order.presale_rescheduled")
        .await
        .iter()
        .map(|e| e["subject"].as_str().unwrap().to_string())
        .collect();
    moved.sort();
    let mut expected = [mixed["id"].as_str().unwrap(), only_tea["id"].as_str().unwrap()];
    expected.sort();
    assert_eq!(moved, expected, "one event for each order that moved");

    // Each buyer whose order moved hears the new date, by e-mail and by text.
    let file = app.dir.join("notifications.jsonl");
    notify_once(&app, &file).await;
    let sent = std::fs::read_to_string(&file).unwrap();
    let about = |order: &Value| {
        let subject = format!("订单 {} 发货时间调整", order["id"].as_str().unwrap());
        sent.lines().filter(|l| l.contains(&subject)).collect::<Vec<_>>()
    };
    for order in [&mixed, &only_tea] {
        let messages = about(order);
        assert_eq!(messages.len(), 2, "e-mail and text: {sent}");
        assert!(
            messages[0].contains("「新茶预售 Spring tea pre-sale」预计发货日期调整为"),
            "{}",
            messages[0]
        );
    }
    assert!(about(&in_stock).is_empty(), "nothing moved for it");

    // Past the old date, not yet the new one: still waiting.
    app.clock.advance_secs(3 * DAY);
    let (status, body) = ship(&app, &shop, only_tea["id"].as_str().unwrap(), None).await;
    assert_eq!((status, problem_type(&body)), (422, "presale-not-ready"), "{body:?}");

    // The goods arrive early: the pre-sale ends and every order ships at once.
    assert_eq!(patch(Value::Null).await.status, 200);
    let (status, body) = ship(&app, &shop, only_tea["id"].as_str().unwrap(), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("shipped")), "{body:?}");
    let (status, body) = ship(&app, &shop, mixed["id"].as_str().unwrap(), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("shipped")), "{body:?}");

    // Sent now, "it ships soon" would arrive after "it has shipped": not sent.
    notify_once(&app, &file).await;
    let sent = std::fs::read_to_string(&file).unwrap();
    for order in [&mixed, &only_tea] {
        let id = order["id"].as_str().unwrap();
        assert!(sent.contains(&format!("订单 {id} 已发货")), "{sent}");
        assert!(!sent.contains(&format!("订单 {id} 即将发货")), "{sent}");
    }
}

/// Runs the notification worker once, every message to `file` (e-mail and text).
async fn notify_once(app: &TestApp, file: &std::path::Path) {
    let provider = std::sync::Arc::new(ordo_notify::FileProvider::new(file));
    let providers = ordo_notify::Providers {
        email: Some(provider.clone()),
        sms: Some(provider),
    };
    ordo_notify::Notifier::new(app.engine.store().clone(), app.clock.clone(), providers)
        .run_once()
        .await
        .unwrap();
}

async fn fetch(app: &TestApp, shop: &Shop, order: &Value, what: &str) -> Value {
    let id = order["id"].as_str().unwrap();
    app.call(Method::GET, &format!("/api/v1/orders/{id}{what}"), &shop.owner, None)
        .await
        .json()
}

#[tokio::test]
async fn an_edit_keeps_the_prices_the_order_was_placed_at() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let order = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    let a = order["lines"][0]["sku_id"].as_str().unwrap();
    // Since the order was placed, A went up and off sale.
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/products/{a}"),
            &shop.owner,
            Some(json!({ "price_minor": 2500, "on_sale": false })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let (status, edited) = edit(
        &app,
        &shop,
        &order,
        json!({ "version": order["version"], "lines": [{ "sku": "A", "quantity": 2 }, { "sku": "B", "quantity": 1 }] }),
    )
    .await;
    assert_eq!(status, 200, "{edited:?}");
    assert_eq!(
        (
            edited["lines"][0]["unit_price_minor"].as_i64(),
            edited["lines"][1]["unit_price_minor"].as_i64()
        ),
        (Some(1999), Some(500)),
        "A at its price as placed, B (added) at today's"
    );
    assert_eq!(edited["pricing"]["total_minor"], 2 * 1999 + 500 + 800);
}

#[tokio::test]
async fn an_unpaid_order_is_edited_against_its_version_and_stock_follows() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let order = app
        .place(
            &shop.owner,
            json!([{ "sku": "A", "quantity": 1 }, { "sku": "B", "quantity": 1 }]),
        )
        .await
        .json();
    assert_eq!(order["pricing"]["total_minor"], 1999 + 500 + 800);
    let v = order["version"].clone();

    let (status, edited) = edit(
        &app,
        &shop,
        &order,
        json!({ "version": v, "lines": [{ "sku": "A", "quantity": 3 }], "reason": "buyer called" }),
    )
    .await;
    assert_eq!(status, 200, "{edited:?}");
    assert_eq!(edited["pricing"]["total_minor"], 3 * 1999 + 800);
    assert_eq!(edited["revisions"][0]["total_before"], 3299);
    assert_eq!(edited["revisions"][0]["reason"], "buyer called");
    assert_eq!(app.stock(&shop.owner, "A").await["reserved"], 3);
    assert_eq!(app.stock(&shop.owner, "B").await["reserved"], 0);
    let payments = fetch(&app, &shop, &order, "/payments").await;
    assert_eq!(
        payments[0]["expected_minor"],
        3 * 1999 + 800,
        "the pending payment asks the new total"
    );

    let (status, body) = edit(
        &app,
        &shop,
        &order,
        json!({ "version": v, "lines": [{ "sku": "A", "quantity": 1 }] }),
    )
    .await;
    assert_eq!((status, problem_type(&body)), (409, "version-conflict"), "{body:?}");
    let (status, body) = edit(
        &app,
        &shop,
        &edited,
        json!({ "version": edited["version"], "lines": [{ "sku": "B", "quantity": 11 }] }),
    )
    .await;
    assert_eq!((status, problem_type(&body)), (422, "insufficient-stock"), "{body:?}");
    assert_eq!(
        app.stock(&shop.owner, "A").await["reserved"],
        3,
        "a refused edit changes nothing"
    );
    assert_eq!(fetch(&app, &shop, &order, "").await["version"], edited["version"]);

    let mut address = crate::support::order_body(json!([]))["shipping_address"].clone();
    address["line1"] = json!("世纪大道 200 号");
    let (status, moved) = edit(
        &app,
        &shop,
        &edited,
        json!({ "version": edited["version"], "shipping_address": address }),
    )
    .await;
    assert_eq!(status, 200, "{moved:?}");
    assert_eq!(moved["shipping_address"]["line1"], "世纪大道 200 号");
    assert_eq!(moved["revisions"].as_array().unwrap().len(), 2);
    assert_eq!(app.pay(&shop, &moved).await.status, 200);
    assert_eq!(fetch(&app, &shop, &order, "").await["status"], "fulfilling");
}

#[tokio::test]
async fn editing_a_paid_order_refunds_the_difference_or_asks_for_it() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let order = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 2 }]))
        .await
        .json();
    assert_eq!(app.pay(&shop, &order).await.status, 200);
    let paid = fetch(&app, &shop, &order, "").await;
    assert_eq!(paid["paid_minor"], 2 * 1999 + 800);

    let (status, smaller) = edit(
        &app,
        &shop,
        &paid,
        json!({ "version": paid["version"], "lines": [{ "sku": "A", "quantity": 1 }] }),
    )
    .await;
    assert_eq!(status, 200, "{smaller:?}");
    assert_eq!(smaller["refunded_minor"], 1999);
    let refunds = fetch(&app, &shop, &order, "/refunds").await;
    assert_eq!(refunds[0]["amount_minor"], 1999, "{refunds:?}");

    let (status, bigger) = edit(&app, &shop, &smaller, json!({ "version": smaller["version"], "lines": [{ "sku": "A", "quantity": 1 }, { "sku": "B", "quantity": 2 }] })).await;
    assert_eq!(status, 200, "{bigger:?}");
    let payments = fetch(&app, &shop, &order, "/payments").await;
    let due = payments
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["status"] == "pending")
        .expect("an amount due");
    assert_eq!(due["expected_minor"], 1000);
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{}/ship", order["id"].as_str().unwrap()),
            &shop.owner,
            Some(json!({ "carrier": "SF", "tracking_number": "SF0" })),
        )
        .await;
    assert_eq!(
        (r.status, problem_type(&r.json())),
        (422, "payment-due"),
        "ships once the difference is paid"
    );
    let r = app
        .notify(&crate::support::payment(&shop, &bigger, 1000, "CNY", "txn-due-1"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let settled = fetch(&app, &shop, &order, "").await;
    assert_eq!(
        (
            settled["paid_minor"].as_i64(),
            settled["refunded_minor"].as_i64(),
            settled["status"].as_str()
        ),
        (Some(2 * 1999 + 800 + 1000), Some(1999), Some("fulfilling"))
    );
    assert_eq!(settled["pricing"]["total_minor"], 1999 + 1000 + 800);

    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{}/ship", order["id"].as_str().unwrap()),
            &shop.owner,
            Some(json!({ "carrier": "SF", "tracking_number": "SF1" })),
        )
        .await;
    assert_eq!(r.status, 200);
    let shipped = r.json();
    let (status, body) = edit(
        &app,
        &shop,
        &shipped,
        json!({ "version": shipped["version"], "lines": [{ "sku": "A", "quantity": 1 }] }),
    )
    .await;
    assert_eq!((status, problem_type(&body)), (409, "not-editable"), "{body:?}");
}

#[tokio::test]
async fn one_buyers_orders_to_one_address_ship_as_one_parcel() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let place = |line1: &'static str, method: Option<&'static str>| {
        let mut body = crate::support::order_body(json!([{ "sku": "A", "quantity": 1 }]));
        body["shipping_address"]["line1"] = json!(line1);
        if let Some(m) = method {
            body["payment_method"] = json!(m);
        }
        let app = &app;
        let shop = &shop;
        async move {
            let r = app.call(Method::POST, "/api/v1/orders", &shop.owner, Some(body)).await;
            assert_eq!(r.status, 201, "{:?}", r.json());
            let order = r.json();
            if method.is_none() {
                assert_eq!(app.pay(shop, &order).await.status, 200);
            }
            order["id"].as_str().unwrap().to_string()
        }
    };
    let same = [
        place("世纪大道 100 号", None).await,
        place("世纪大道100号", None).await,
        place("世纪大道 100 号", None).await,
    ];
    let elsewhere = place("南京路 1 号", None).await;
    let cod = place("世纪大道 100 号", Some("cod")).await;

    let groups = app
        .call(Method::GET, "/api/v1/shipments/merge-groups", &shop.owner, None)
        .await
        .json();
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups:?}");
    assert_eq!(
        groups[0]["order_ids"],
        json!(same),
        "oldest first, without COD or the other address"
    );

    let ship = |ids: Vec<&String>| {
        let body = json!({ "order_ids": ids, "carrier": "SF", "tracking_number": "SF-MERGED-1" });
        let app = &app;
        let shop = &shop;
        async move {
            app.call(Method::POST, "/api/v1/shipments", &shop.owner, Some(body))
                .await
        }
    };
    let r = ship(vec![&same[0], &cod]).await;
    assert_eq!(
        (r.status, problem_type(&r.json())),
        (422, "cannot-merge"),
        "{:?}",
        r.json()
    );
    let r = ship(vec![&same[0], &elsewhere]).await;
    assert_eq!((r.status, problem_type(&r.json())), (422, "cannot-merge"));
    assert_eq!(
        app.stock(&shop.owner, "A").await["reserved"],
        5,
        "a refused merge ships nothing"
    );

    let body = json!({ "order_ids": same, "carrier": "SF", "tracking_number": "SF-MERGED-1" });
    let headers = [("idempotency-key", "merge-1")];
    let r = app
        .call_with(
            Method::POST,
            "/api/v1/shipments",
            &shop.owner,
            &headers,
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let again = app
        .call_with(Method::POST, "/api/v1/shipments", &shop.owner, &headers, Some(body))
        .await;
    assert_eq!(
        (again.status, again.json()),
        (200, r.json()),
        "a retry with the key replays"
    );
    for o in r.json().as_array().unwrap() {
        assert_eq!(
            (o["status"].as_str(), o["shipment"]["tracking_number"].as_str()),
            (Some("shipped"), Some("SF-MERGED-1"))
        );
    }
    let a = app.stock(&shop.owner, "A").await;
    assert_eq!((a["on_hand"].as_i64(), a["reserved"].as_i64()), (Some(97), Some(2)));
    let groups = app
        .call(Method::GET, "/api/v1/shipments/merge-groups", &shop.owner, None)
        .await
        .json();
    assert_eq!(groups, json!([]));
}
