//! Refunds against the line allocation (B4): units of a line at their share of
//! the line's price after discounts, never above what was captured.

use hyper::Method;
use serde_json::{Value, json};

use crate::support::{problem_type, spawn_app};

#[tokio::test]
async fn units_of_a_line_refund_its_discounted_price_exactly() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let promo = json!({ "promotions": [{ "id": "九折", "kind": { "type": "percentage", "percent_bp": 1000 } }] });
    let r = app.put_settings(&shop, promo).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let order = app
        .place(
            &shop.owner,
            json!([{ "sku": "A", "quantity": 3 }, { "sku": "B", "quantity": 1 }]),
        )
        .await
        .json();
    let line_a = &order["lines"][0];
    let net_a = line_a["total_minor"].as_i64().unwrap() - line_a["discount_minor"].as_i64().unwrap();
    assert!(
        line_a["discount_minor"].as_i64().unwrap() > 0,
        "the promotion's share is on the line"
    );
    let line_b = &order["lines"][1];
    let net_b = line_b["total_minor"].as_i64().unwrap() - line_b["discount_minor"].as_i64().unwrap();
    assert_eq!(app.pay(&shop, &order).await.status, 200);
    let id = order["id"].as_str().unwrap();
    let refund = |body: Value| {
        let app = &app;
        let owner = shop.owner.clone();
        async move {
            let r = app
                .call(
                    Method::POST,
                    &format!("/api/v1/orders/{id}/refunds"),
                    &owner,
                    Some(body),
                )
                .await;
            (r.status, r.json())
        }
    };

    let (status, body) = refund(json!({ "lines": [{ "line": 0, "quantity": 1 }], "reason": "one cup broke" })).await;
    assert_eq!(status, 201, "{body:?}");
    assert_eq!(body["order"]["refunded_minor"], net_a / 3);
    let (status, body) =
        refund(json!({ "lines": [{ "line": 0, "quantity": 2 }, { "line": 1, "quantity": 1 }], "reason": "returned" }))
            .await;
    assert_eq!(status, 201, "{body:?}");
    assert_eq!(
        body["order"]["refunded_minor"],
        net_a + net_b,
        "the last units take the remainder"
    );
    assert_eq!(body["order"]["lines"][0]["refunded_quantity"], 3);

    let (status, body) = refund(json!({ "lines": [{ "line": 0, "quantity": 1 }], "reason": "again" })).await;
    assert_eq!((status, problem_type(&body)), (422, "line-refund-quantity"), "{body:?}");
    let (status, body) = refund(json!({ "lines": [{ "line": 7, "quantity": 1 }], "reason": "x" })).await;
    assert_eq!((status, problem_type(&body)), (422, "no-such-line"));
    let (status, body) =
        refund(json!({ "amount_minor": 1, "lines": [{ "line": 0, "quantity": 1 }], "reason": "x" })).await;
    assert_eq!((status, problem_type(&body)), (422, "invalid-refund"));
    // Shipping is refunded by amount; never more than was captured.
    let (status, body) = refund(json!({ "amount_minor": 801, "reason": "shipping" })).await;
    assert_eq!(
        (status, problem_type(&body)),
        (422, "refund-exceeds-captured"),
        "{body:?}"
    );
    let (status, _) = refund(json!({ "amount_minor": 800, "reason": "shipping" })).await;
    assert_eq!(status, 201);
}
