//! `GET /api/v1/notifications`: the delivery log through the API, masked by role.

use std::sync::Arc;

use hyper::Method;
use ordo_notify::{FileProvider, Notifier, Providers};
use serde_json::json;

use crate::support::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_log_lists_attempts_and_masks_recipients_by_role() {
    let app = spawn_app().await;
    let shop = app.shop("通知").await;
    let r = app.place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }])).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let order = r.json();
    let file = app.dir.join("notifications.jsonl");
    let provider = Arc::new(FileProvider::new(&file));
    let providers = Providers {
        email: Some(provider),
        sms: None,
    };
    let report = Notifier::new(app.engine.store().clone(), app.clock.clone(), providers)
        .run_once()
        .await
        .unwrap();
    assert_eq!(report.sent, 1, "{report:?}");

    let order_id = order["id"].as_str().unwrap();
    let path = format!("/api/v1/notifications?order={order_id}&limit=10");
    let r = app.call(Method::GET, &path, &shop.owner, None).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let page = r.json();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    let n = &items[0];
    assert_eq!(n["order_id"], order_id);
    assert_eq!(n["channel"], "email");
    assert_eq!(n["recipient"], "zhang@example.com");
    assert_eq!(n["template"], "order.placed");
    assert_eq!(n["locale"], "zh-CN");
    let sent = std::fs::read_to_string(&file).unwrap();
    assert!(sent.contains(&format!("订单已提交：{order_id}")), "{sent}");
    assert_eq!(n["status"], "sent");
    assert_eq!(n["attempts"], 1);
    assert_eq!(n["attempt_log"][0]["ok"], true);
    assert!(page["next_cursor"].is_null());

    let viewer = app.key(&shop.id, "viewer").await;
    let r = app.call(Method::GET, &path, &viewer, None).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["items"][0]["recipient"], "*************.com");

    // Another shop sees nothing of it; a bad order id is a 400.
    let other = app.shop("别家").await;
    let r = app.call(Method::GET, &path, &other.owner, None).await;
    assert_eq!(r.json()["items"], json!([]));
    let r = app
        .call(Method::GET, "/api/v1/notifications?order=nope", &shop.owner, None)
        .await;
    assert_eq!(r.status, 400);

    // The shop switches to English and e-mail only; a locale it does not know is refused.
    let settings = format!("/api/v1/shops/{}/settings", shop.id);
    let body = json!({ "notifications": { "locale": "en", "sms": false } });
    let r = app.call(Method::PUT, &settings, &shop.owner, Some(body)).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(
        r.json()["notifications"],
        json!({ "locale": "en", "email": true, "sms": false })
    );
    let body = json!({ "notifications": { "locale": "fr" } });
    let r = app.call(Method::PUT, &settings, &shop.owner, Some(body)).await;
    assert_eq!(r.status, 422, "{:?}", r.json());
    let r = app.place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }])).await;
    let english = r.json()["id"].as_str().unwrap().to_string();
    let providers = Providers {
        email: Some(Arc::new(FileProvider::new(&file))),
        sms: None,
    };
    Notifier::new(app.engine.store().clone(), app.clock.clone(), providers)
        .run_once()
        .await
        .unwrap();
    let sent = std::fs::read_to_string(&file).unwrap();
    assert!(sent.contains(&format!("Order {english} received")), "{sent}");

    // Listed in the OpenAPI document.
    let r = app.call(Method::GET, "/api/openapi.json", &shop.owner, None).await;
    assert!(r.json()["paths"]["/api/v1/notifications"]["get"].is_object());
}
