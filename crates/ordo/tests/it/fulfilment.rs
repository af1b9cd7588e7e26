//! Fulfilment rules: pre-sale goods ship apart from goods in stock (A3, A6).

use hyper::Method;
use serde_json::{Value, json};

use crate::support::{Shop, TestApp, spawn_app};

const DAY: i64 = 86_400;

async fn presale_sku(app: &TestApp, shop: &Shop, sku: &str, ships_in_secs: i64) {
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
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/stock/{sku}/adjustments"),
            &shop.owner,
            Some(json!({ "warehouse_id": shop.warehouse, "delta": 20 })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
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

fn problem(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
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
    assert_eq!((status, problem(&body)), (422, "parcel-required"), "{body:?}");
    let (status, body) = ship(&app, &shop, id, Some(1)).await;
    assert_eq!((status, problem(&body)), (422, "presale-not-ready"), "{body:?}");

    let (status, body) = ship(&app, &shop, id, Some(0)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("fulfilling")), "{body:?}");
    assert_eq!(body["parcels"][0]["shipment"]["tracking_number"], "SF0");
    let a = app.stock(&shop.owner, "A").await;
    assert_eq!((a["on_hand"].as_i64(), a["reserved"].as_i64()), (Some(99), Some(0)));
    let tea = app.stock(&shop.owner, "TEA-NEW").await;
    assert_eq!(
        (tea["on_hand"].as_i64(), tea["reserved"].as_i64()),
        (Some(20), Some(2)),
        "still held"
    );
    let (status, body) = ship(&app, &shop, id, Some(0)).await;
    assert_eq!((status, problem(&body)), (422, "no-such-parcel"), "{body:?}");

    app.clock.advance_secs(2 * DAY + 1);
    let (status, body) = ship(&app, &shop, id, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("shipped")),
        "the last parcel: {body:?}"
    );
    assert_eq!(body["shipment"]["tracking_number"], "SF9");
    let tea = app.stock(&shop.owner, "TEA-NEW").await;
    assert_eq!((tea["on_hand"].as_i64(), tea["reserved"].as_i64()), (Some(18), Some(0)));

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
