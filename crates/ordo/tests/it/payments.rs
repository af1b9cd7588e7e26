//! Payments: signed notifications, idempotent capture, mismatches, refunds and
//! the durable payment timeout driven by an injected clock.

use hyper::Method;
use serde_json::{Value, json};

use crate::support::{GATEWAY_SECRET, payment, problem_type, real_now, spawn_app};

#[tokio::test]
async fn the_same_notification_a_thousand_times_captures_once() {
    let app = std::sync::Arc::new(spawn_app().await);
    let shop = app.shop("s").await;
    let order = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    let body = payment(
        &shop,
        &order,
        order["pricing"]["total_minor"].as_i64().unwrap(),
        "CNY",
        "txn-dup",
    );
    let mut results = Vec::new();
    for _round in 0..20 {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (app, body) = (app.clone(), body.clone());
                tokio::spawn(async move { app.notify(&body).await })
            })
            .collect();
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(r.status, 200, "{:?}", r.json());
            results.push(r.json()["result"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(results.iter().filter(|r| *r == "captured").count(), 1);
    assert_eq!(results.iter().filter(|r| *r == "already_processed").count(), 999);
    let id = order["id"].as_str().unwrap();
    let payments = app
        .call(Method::GET, &format!("/api/v1/orders/{id}/payments"), &shop.owner, None)
        .await
        .json();
    let captured: Vec<_> = payments
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "captured")
        .collect();
    assert_eq!(captured.len(), 1);
    let o = app
        .call(Method::GET, &format!("/api/v1/orders/{id}"), &shop.owner, None)
        .await
        .json();
    assert_eq!(
        (o["status"].as_str(), o["paid_minor"].clone()),
        (Some("fulfilling"), order["pricing"]["total_minor"].clone())
    );
}

#[tokio::test]
async fn an_unsigned_forged_or_stale_notification_is_refused() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let order = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    let body = payment(&shop, &order, 2799, "CNY", "txn-1");
    let now = real_now().0 / 1000;
    let forged = app.notify_signed(&body, "not-the-secret-at-all", now).await;
    let stale = app.notify_signed(&body, GATEWAY_SECRET, now - 600).await;
    let unsigned = ordo::client::request(
        app.addr,
        Method::POST,
        "/api/v1/payments/generic/notify",
        &[],
        Some(body.to_string().into_bytes()),
    )
    .await
    .unwrap();
    for r in [forged, stale, unsigned] {
        assert_eq!(r.status, 401, "{:?}", r.json());
        assert_eq!(r.json()["type"], "https://ordo.dev/problems/bad-signature");
    }
    let id = order["id"].as_str().unwrap();
    let o = app
        .call(Method::GET, &format!("/api/v1/orders/{id}"), &shop.owner, None)
        .await
        .json();
    assert_eq!(o["status"], "pending_payment");
}

#[tokio::test]
async fn a_wrong_amount_or_currency_makes_a_payment_exception_not_a_paid_order() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    for (amount, currency, check) in [
        (100, "CNY", "under-paid"),
        (999_999, "CNY", "over-paid"),
        (2799, "USD", "wrong currency"),
    ] {
        let order = app
            .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
            .await
            .json();
        let txn = format!("txn-{amount}-{currency}");
        let r = app.notify(&payment(&shop, &order, amount, currency, &txn)).await;
        assert_eq!(r.json()["result"], "mismatch");
        let id = order["id"].as_str().unwrap();
        let o = app
            .call(Method::GET, &format!("/api/v1/orders/{id}"), &shop.owner, None)
            .await
            .json();
        assert_eq!(o["status"], "payment_exception");
        assert!(o["payment_exception"].as_str().unwrap().contains(check), "{o}");
    }
}

#[tokio::test]
async fn a_payment_exception_is_resolved_by_a_person() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let over = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    app.notify(&payment(&shop, &over, 5000, "CNY", "txn-over")).await;
    let id = over["id"].as_str().unwrap();
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{id}/payment-exception/resolve"),
            &shop.owner,
            Some(json!({ "action": "accept" })),
        )
        .await;
    assert_eq!(r.json()["status"], "fulfilling");
    // The extra money stays refundable.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{id}/refunds"),
            &shop.owner,
            Some(json!({ "amount_minor": 5000 - 2799, "reason": "overpaid" })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json());

    let under = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    app.notify(&payment(&shop, &under, 100, "CNY", "txn-under")).await;
    let id = under["id"].as_str().unwrap();
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{id}/payment-exception/resolve"),
            &shop.owner,
            Some(json!({ "action": "refund_and_cancel" })),
        )
        .await;
    let o = r.json();
    assert_eq!(
        (o["status"].as_str(), o["refunded_minor"].as_i64()),
        (Some("cancelled"), Some(100))
    );
    assert_eq!(
        app.stock(&shop.owner, "A").await["reserved"],
        1,
        "only the accepted order still holds stock"
    );
}

#[tokio::test]
async fn refunds_are_recorded_and_never_exceed_what_was_captured() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let order = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    let id = order["id"].as_str().unwrap();
    let path = format!("/api/v1/orders/{id}/refunds");
    let r = app
        .call(
            Method::POST,
            &path,
            &shop.owner,
            Some(json!({ "amount_minor": 1, "reason": "before payment" })),
        )
        .await;
    assert_eq!(r.json()["type"], "https://ordo.dev/problems/refund-exceeds-captured");
    app.pay(&shop, &order).await; // 2799 captured
    let r = app
        .call_with(
            Method::POST,
            &path,
            &shop.owner,
            &[("idempotency-key", "r1")],
            Some(json!({ "amount_minor": 1000, "reason": "damaged box" })),
        )
        .await;
    assert_eq!(r.status, 201);
    let again = app
        .call_with(
            Method::POST,
            &path,
            &shop.owner,
            &[("idempotency-key", "r1")],
            Some(json!({ "amount_minor": 1000, "reason": "damaged box" })),
        )
        .await;
    assert_eq!(again.json()["refunds"][0]["id"], r.json()["refunds"][0]["id"]);
    let r = app
        .call(
            Method::POST,
            &path,
            &shop.owner,
            Some(json!({ "amount_minor": 1800, "reason": "too much" })),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["detail"].as_str().map(|d| d.contains("1799"))),
        (422, Some(true))
    );
    let r = app
        .call(
            Method::POST,
            &path,
            &shop.owner,
            Some(json!({ "amount_minor": 1799, "reason": "rest" })),
        )
        .await;
    assert_eq!(r.json()["order"]["refunded_minor"], 2799);
    let refunds = app.call(Method::GET, &path, &shop.owner, None).await.json();
    let total: i64 = refunds
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount_minor"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 2799);
    let payments = app
        .call(Method::GET, &format!("/api/v1/orders/{id}/payments"), &shop.owner, None)
        .await
        .json();
    assert_eq!(payments[0]["refunded_minor"], 2799);
}

#[tokio::test]
async fn an_unpaid_order_is_cancelled_when_its_payment_times_out() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let r = app.put_settings(&shop, json!({ "payment_timeout_secs": 600 })).await;
    assert_eq!(r.json()["payment_timeout_secs"], 600);
    let unpaid = app
        .place(&shop.owner, json!([{ "sku": "B", "quantity": 4 }]))
        .await
        .json();
    let paid = app
        .place(&shop.owner, json!([{ "sku": "B", "quantity": 1 }]))
        .await
        .json();
    app.pay(&shop, &paid).await;
    app.clock.advance_secs(599);
    assert_eq!(app.engine.run_due_timers().await.unwrap(), 0);
    app.clock.advance_secs(2);
    assert_eq!(app.engine.run_due_timers().await.unwrap(), 1);
    let id = unpaid["id"].as_str().unwrap();
    let o = app
        .call(Method::GET, &format!("/api/v1/orders/{id}"), &shop.owner, None)
        .await
        .json();
    assert_eq!(
        (o["status"].as_str(), o["cancel_reason"].as_str()),
        (Some("cancelled"), Some("payment_timeout"))
    );
    let b = app.stock(&shop.owner, "B").await;
    assert_eq!((b["reserved"].as_i64(), b["available"].as_i64()), (Some(1), Some(9)));
    let payments = app
        .call(Method::GET, &format!("/api/v1/orders/{id}/payments"), &shop.owner, None)
        .await
        .json();
    assert_eq!(payments[0]["status"], "expired");
    // Money that arrives after the timeout is kept on record and flagged, not lost.
    let ts = app.clock_secs();
    let late = app
        .notify_signed(&payment(&shop, &unpaid, 2000, "CNY", "txn-late"), GATEWAY_SECRET, ts)
        .await;
    assert_eq!(late.json()["result"], "unexpected");
    let o = app
        .call(Method::GET, &format!("/api/v1/orders/{id}"), &shop.owner, None)
        .await
        .json();
    assert_eq!(o["paid_minor"], 2000);
    assert!(o["payment_exception"].as_str().unwrap().contains("unexpected payment"));
    // The order has moved on (cancelled), so a person accepting the exception clears
    // the flag and leaves the status alone; after that there is nothing to resolve.
    let resolve = format!("/api/v1/orders/{id}/payment-exception/resolve");
    let accept = json!({ "action": "accept" });
    let r = app
        .call(Method::POST, &resolve, &shop.owner, Some(accept.clone()))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let o = r.json();
    assert_eq!(
        (o["status"].as_str(), &o["payment_exception"]),
        (Some("cancelled"), &Value::Null)
    );
    let again = app.call(Method::POST, &resolve, &shop.owner, Some(accept)).await;
    assert_eq!(problem_type(&again.json()), "no-payment-exception");
    let resolved = app.events_of(&shop.owner, "order.payment_exception_resolved").await;
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert!(
        resolved[0]["payload"]["detail"]
            .as_str()
            .unwrap()
            .contains("unexpected payment")
    );
}

#[tokio::test]
async fn the_payment_timer_survives_a_restart() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let unpaid = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 5 }]))
        .await
        .json();
    let db = format!("sqlite://{}", app.dir.join("ordo.db").display());
    // A second engine on the same file, as after a restart, with time moved on.
    let clock = std::sync::Arc::new(ordo_engine::ManualClock::starting_at(real_now()));
    clock.advance_secs(31 * 60);
    let store = ordo::open_store(&db, ordo_store_sqlite::Durability::Normal)
        .await
        .unwrap();
    let restarted = ordo_engine::Engine::start(store, clock, ordo_engine::EngineConfig::new("t"));
    assert_eq!(restarted.run_due_timers().await.unwrap(), 1);
    let id = unpaid["id"].as_str().unwrap();
    let o = app
        .call(Method::GET, &format!("/api/v1/orders/{id}"), &shop.owner, None)
        .await
        .json();
    assert_eq!(o["status"], "cancelled");
    assert_eq!(app.stock(&shop.owner, "A").await["reserved"], 0);
}

#[tokio::test]
async fn money_in_the_wrong_currency_goes_back_as_it_came_when_the_order_is_cancelled() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let order = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    app.notify(&payment(&shop, &order, 400, "USD", "txn-usd")).await;
    let id = order["id"].as_str().unwrap();
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{id}/payment-exception/resolve"),
            &shop.owner,
            Some(json!({ "action": "refund_and_cancel" })),
        )
        .await;
    assert_eq!(r.json()["status"], "cancelled");
    let refunds = app
        .call(Method::GET, &format!("/api/v1/orders/{id}/refunds"), &shop.owner, None)
        .await
        .json();
    assert_eq!(refunds.as_array().unwrap().len(), 1);
    assert_eq!(
        (refunds[0]["amount_minor"].as_i64(), refunds[0]["currency"].as_str()),
        (Some(400), Some("USD"))
    );
    let payments = app
        .call(Method::GET, &format!("/api/v1/orders/{id}/payments"), &shop.owner, None)
        .await
        .json();
    let usd = payments
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["captured_currency"] == "USD")
        .unwrap();
    assert_eq!(usd["refunded_minor"], 400);
}

fn stripe_event(
    kind: &str,
    intent: &str,
    shop: &crate::support::Shop,
    order: &serde_json::Value,
    amount: i64,
) -> String {
    json!({
        "id": format!("evt_{intent}"), "object": "event", "type": kind, "api_version": "2024-06-20", "livemode": false,
        "data": { "object": {
            "id": intent, "object": "payment_intent", "amount": amount, "amount_received": amount,
            "currency": "cny", "status": "succeeded", "capture_method": "automatic",
            "metadata": { "ordo_shop_id": shop.id, "ordo_order_id": order["id"] }
        } }
    })
    .to_string()
}

async fn post_stripe(app: &crate::support::TestApp, body: &str, header: &str) -> ordo::client::Response {
    let headers = [("stripe-signature", header)];
    ordo::client::request(
        app.addr,
        Method::POST,
        "/api/v1/payments/stripe/notify",
        &headers,
        Some(body.as_bytes().to_vec()),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_stripe_style_webhook_captures_once_and_is_verified_by_its_signature() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let secret = "whsec_test_0123456789abcdef";
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/shops/{}/gateways/stripe", shop.id),
            &shop.owner,
            Some(json!({ "secret": secret })),
        )
        .await;
    assert_eq!(r.status, 204);
    let order = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    let now = real_now().0 / 1000;

    let failed = stripe_event("payment_intent.payment_failed", "pi_1", &shop, &order, 2799);
    let r = post_stripe(
        &app,
        &failed,
        &ordo_engine::gateway::sign_stripe(secret, now, failed.as_bytes()),
    )
    .await;
    assert_eq!(r.json()["result"], "failed");

    let body = stripe_event("payment_intent.succeeded", "pi_2", &shop, &order, 2799);
    let forged = post_stripe(
        &app,
        &body,
        &ordo_engine::gateway::sign_stripe("whsec_wrong_secret_value", now, body.as_bytes()),
    )
    .await;
    let stale = post_stripe(
        &app,
        &body,
        &ordo_engine::gateway::sign_stripe(secret, now - 3600, body.as_bytes()),
    )
    .await;
    assert_eq!((forged.status, stale.status), (401, 401));

    let signed = ordo_engine::gateway::sign_stripe(secret, now, body.as_bytes());
    let first = post_stripe(&app, &body, &signed).await;
    let again = post_stripe(&app, &body, &signed).await;
    assert_eq!(
        (first.json()["result"].as_str(), again.json()["result"].as_str()),
        (Some("captured"), Some("already_processed"))
    );
    let id = order["id"].as_str().unwrap();
    let o = app
        .call(Method::GET, &format!("/api/v1/orders/{id}"), &shop.owner, None)
        .await
        .json();
    assert_eq!(o["status"], "fulfilling");
    let payments = app
        .call(Method::GET, &format!("/api/v1/orders/{id}/payments"), &shop.owner, None)
        .await
        .json();
    let captured = payments
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["status"] == "captured")
        .unwrap();
    assert_eq!(
        (captured["gateway"].as_str(), captured["transaction_id"].as_str()),
        (Some("stripe"), Some("pi_2"))
    );

    let other = stripe_event("customer.created", "pi_3", &shop, &order, 0);
    let r = post_stripe(
        &app,
        &other,
        &ordo_engine::gateway::sign_stripe(secret, now, other.as_bytes()),
    )
    .await;
    assert_eq!((r.status, r.json()["result"].as_str()), (200, Some("ignored")));
}

#[tokio::test]
async fn the_buyer_is_reminded_once_before_the_payment_deadline() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let settings = json!({ "payment_timeout_secs": 900, "payment_reminder_secs": 300 });
    let r = app.put_settings(&shop, settings).await;
    assert_eq!(r.json()["payment_reminder_secs"], 300);
    let unpaid = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    let paid = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    assert!(unpaid["payment_reminder_at"].is_string());
    app.pay(&shop, &paid).await;

    app.clock.advance_secs(599);
    assert_eq!(app.engine.run_due_reminders().await.unwrap(), 0);
    app.clock.advance_secs(2);
    assert_eq!(
        app.engine.run_due_reminders().await.unwrap(),
        1,
        "only the unpaid order is reminded"
    );
    assert_eq!(app.engine.run_due_reminders().await.unwrap(), 0, "and only once");
    let id = unpaid["id"].as_str().unwrap();
    let events = app
        .call(Method::GET, "/api/v1/events?limit=1000", &shop.owner, None)
        .await
        .json();
    let reminders: Vec<_> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "order.payment_reminder")
        .collect();
    assert_eq!(reminders.len(), 1);
    assert_eq!(reminders[0]["subject"], json!(id));
    // The reminder names the deadline: 15 minutes after placement, 5 after the reminder.
    let due_ms = reminders[0]["payload"]["payment_due_at"]
        .as_i64()
        .expect("deadline in the payload");
    assert_eq!(due_ms - crate::support::parse_ms(&unpaid["created_at"]), 900_000);
    let o = app
        .call(Method::GET, &format!("/api/v1/orders/{id}"), &shop.owner, None)
        .await
        .json();
    assert_eq!(
        (o["status"].as_str(), o["payment_reminder_at"].is_null()),
        (Some("pending_payment"), true)
    );

    app.clock.advance_secs(300);
    assert_eq!(app.engine.run_due_timers().await.unwrap(), 1);
    let r = app.put_settings(&shop, json!({ "payment_reminder_secs": 900 })).await;
    assert_eq!(r.status, 422, "a reminder must come before the deadline");
}

/// Plays Alipay: signs the form parameters with its private key as RSA2.
fn alipay_form(key: &rsa::RsaPrivateKey, params: &[(&str, String)]) -> String {
    use base64::Engine as _;
    use rsa::signature::{SignatureEncoding, Signer};
    let owned: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let message = ordo_engine::gateway::alipay_signing_string(&owned);
    let signer = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(key.clone());
    let sign = base64::engine::general_purpose::STANDARD.encode(signer.sign(message.as_bytes()).to_bytes());
    let mut form = url_form(params);
    form.push_str(&format!("&sign_type=RSA2&sign={}", url_encode(&sign)));
    form
}

fn url_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn url_form(params: &[(&str, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn an_alipay_style_notification_is_verified_with_rsa2_and_answered_success() {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("key");
    let public_pem = key.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/shops/{}/gateways/alipay", shop.id),
            &shop.owner,
            Some(json!({ "secret": public_pem })),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.json());
    let order = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    let id = order["id"].as_str().unwrap().to_string();
    let params = |amount: &str| {
        vec![
            ("notify_time", "2026-11-22 10:00:00".to_string()),
            ("notify_type", "trade_status_sync".to_string()),
            ("notify_id", "ac05099524730693a8b330c5ecf72da9786".to_string()),
            ("app_id", "2021000000000000".to_string()),
            ("charset", "utf-8".to_string()),
            ("version", "1.0".to_string()),
            ("trade_no", "2026112222001400000000000001".to_string()),
            ("out_trade_no", id.clone()),
            ("trade_status", "TRADE_SUCCESS".to_string()),
            ("total_amount", amount.to_string()),
            ("subject", "商品 A × 1".to_string()),
            ("buyer_logon_id", "159****5620".to_string()),
        ]
    };
    let path = format!("/api/v1/payments/alipay/notify?shop={}", shop.id);
    let post = |form: String| {
        let path = path.clone();
        async move {
            let headers = [("content-type", "application/x-www-form-urlencoded; charset=utf-8")];
            ordo::client::request(app.addr, Method::POST, &path, &headers, Some(form.into_bytes()))
                .await
                .unwrap()
        }
    };
    // A tampered amount no longer matches the signature.
    let mut tampered = alipay_form(&key, &params("27.99"));
    tampered = tampered.replace("total_amount=27.99", "total_amount=0.01");
    assert_eq!(post(tampered).await.status, 401);
    let other_key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    assert_eq!(post(alipay_form(&other_key, &params("27.99"))).await.status, 401);

    let form = alipay_form(&key, &params("27.99"));
    let first = post(form.clone()).await;
    assert_eq!((first.status, &first.body[..]), (200, &b"success"[..]));
    let again = post(form).await;
    assert_eq!(
        (again.status, &again.body[..]),
        (200, &b"success"[..]),
        "a retried notification is answered the same"
    );
    let o = app
        .call(Method::GET, &format!("/api/v1/orders/{id}"), &shop.owner, None)
        .await
        .json();
    assert_eq!(
        (o["status"].as_str(), o["paid_minor"].as_i64()),
        (Some("fulfilling"), Some(2799))
    );
    let payments = app
        .call(Method::GET, &format!("/api/v1/orders/{id}/payments"), &shop.owner, None)
        .await
        .json();
    assert_eq!(
        payments
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["status"] == "captured")
            .count(),
        1
    );
}

#[tokio::test]
async fn review_rules_hold_paid_orders_with_reasons_and_people_approve_or_reject_them_in_bulk() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let other = app.shop("other").await;
    let rules = json!({ "review": { "hold_when_note": true, "blocked_phones": ["13900000000"], "flagged_address_words": ["Locker"] } });
    let r = app.put_settings(&shop, rules).await;
    assert_eq!(r.json()["review"]["blocked_phones"], json!(["13900000000"]));

    let mut with_note = crate::support::order_body(json!([{ "sku": "A", "quantity": 1 }]));
    with_note["note"] = json!("请下午送货");
    let mut risky = crate::support::order_body(json!([{ "sku": "A", "quantity": 2 }]));
    risky["shipping_address"]["phone"] = json!("13900000000");
    risky["shipping_address"]["line1"] = json!("Smart locker 7, 科技园");
    let mut ids = Vec::new();
    for body in [
        with_note,
        risky,
        crate::support::order_body(json!([{ "sku": "A", "quantity": 1 }])),
    ] {
        let order = app
            .call(Method::POST, "/api/v1/orders", &shop.owner, Some(body))
            .await
            .json();
        app.pay(&shop, &order).await;
        ids.push(order["id"].as_str().unwrap().to_string());
    }
    let get = |id: &str| {
        let path = format!("/api/v1/orders/{id}");
        let (app, token) = (&app, shop.owner.clone());
        async move { app.call(Method::GET, &path, &token, None).await }
    };
    let held_note = get(&ids[0]).await.json();
    let held_risky = get(&ids[1]).await.json();
    assert_eq!(
        (
            held_note["status"].as_str(),
            get(&ids[2]).await.json()["status"].as_str()
        ),
        (Some("on_hold"), Some("fulfilling"))
    );
    assert!(held_note["hold_reason"].as_str().unwrap().contains("note"));
    let reasons = held_risky["hold_reason"].as_str().unwrap();
    assert!(
        reasons.contains("*******0000") && reasons.contains("Locker"),
        "{reasons}"
    );

    // Bulk approve: each order succeeds or fails on its own.
    let foreign = app
        .place(&other.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    let body = json!({ "order_ids": [ids[0], ids[2], foreign["id"]], "note": "called the buyer" });
    let r = app
        .call_with(
            Method::POST,
            "/api/v1/orders/bulk/approve",
            &shop.owner,
            &[("idempotency-key", "bulk-1")],
            Some(body.clone()),
        )
        .await;
    let result = r.json();
    assert_eq!(
        (result["succeeded"].as_u64(), result["failed"].as_u64()),
        (Some(1), Some(2)),
        "{result}"
    );
    assert_eq!(result["results"][0]["order"]["status"], "fulfilling");
    assert_eq!(
        result["results"][1]["error"]["type"],
        "https://ordo.dev/problems/illegal-transition"
    );
    assert_eq!(
        result["results"][2]["error"]["type"],
        "https://ordo.dev/problems/order-not-found"
    );
    let replay = app
        .call_with(
            Method::POST,
            "/api/v1/orders/bulk/approve",
            &shop.owner,
            &[("idempotency-key", "bulk-1")],
            Some(body),
        )
        .await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(
        app.call(
            Method::GET,
            &format!("/api/v1/orders/{}", foreign["id"].as_str().unwrap()),
            &other.owner,
            None
        )
        .await
        .json()["status"],
        "pending_payment"
    );

    // Reject: cancelled by the seller, refunded, stock released, and the why is on record.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{}/reject", ids[1]),
            &shop.owner,
            Some(json!({ "reason": "" })),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = app
        .call(
            Method::POST,
            "/api/v1/orders/bulk/reject",
            &shop.owner,
            Some(json!({ "order_ids": [ids[1]], "reason": "address is a known fraud drop" })),
        )
        .await;
    let rejected = &r.json()["results"][0]["order"];
    assert_eq!(
        (rejected["status"].as_str(), rejected["cancel_reason"].as_str()),
        (Some("cancelled"), Some("seller"))
    );
    assert_eq!(rejected["refunded_minor"], rejected["paid_minor"]);
    assert_eq!(
        app.stock(&shop.owner, "A").await["reserved"],
        2,
        "the two approved orders still hold one unit each"
    );
    let events = app
        .call(Method::GET, "/api/v1/events?limit=1000", &shop.owner, None)
        .await
        .json();
    let of = |id: &str, kind: &str| {
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["subject"] == json!(id) && e["type"] == kind)
            .cloned()
            .unwrap()
    };
    let approved = of(&ids[0], "order.approved");
    assert_eq!(approved["payload"]["note"], "called the buyer");
    assert!(approved["payload"]["was_held_for"].as_str().unwrap().contains("note"));
    assert!(
        approved["actor"].as_str().unwrap().starts_with("key_"),
        "who approved is recorded"
    );
    assert_eq!(
        of(&ids[1], "order.cancelled")["payload"]["note"],
        "address is a known fraud drop"
    );
}

#[tokio::test]
async fn promotions_and_coupons_price_the_order_and_the_breakdown_is_kept() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let promotions = json!([
        { "id": "满100减10", "kind": { "type": "threshold", "spend_minor": 10000, "off_minor": 1000, "repeating": true }, "stackable": true, "priority": 10 },
        { "id": "WELCOME5", "coupon_code": "WELCOME5", "kind": { "type": "fixed", "amount_minor": 500 }, "stackable": true, "priority": 1 },
        { "id": "包邮", "kind": { "type": "free_shipping", "min_spend_minor": 5000 }, "stackable": true }
    ]);
    let r = app.put_settings(&shop, json!({ "promotions": promotions })).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["promotions"].as_array().unwrap().len(), 3);

    // A: 1999 × 10 = 19,990 → two steps of 满100减10 (-2,000), coupon -500, shipping 800 free.
    let mut body = crate::support::order_body(json!([{ "sku": "A", "quantity": 10 }, { "sku": "B", "quantity": 1 }]));
    body["coupon_codes"] = json!(["WELCOME5"]);
    let order = app
        .call(Method::POST, "/api/v1/orders", &shop.owner, Some(body))
        .await
        .json();
    let p = &order["pricing"];
    assert_eq!(p["items_minor"], 20_490);
    assert_eq!(p["discount_minor"], 2_000 + 500 + 800);
    assert_eq!(p["total_minor"], 20_490 + 800 - 3_300);
    let applied = crate::support::strs(&p["promotions"], "id");
    assert_eq!(applied, ["满100减10", "WELCOME5", "包邮"]);
    let line_discounts: i64 = order["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["discount_minor"].as_i64().unwrap())
        .sum();
    assert_eq!(
        line_discounts, 2_500,
        "the items discount is split over the lines exactly"
    );
    // The gateway must capture the discounted total.
    let paid = app.pay(&shop, &order).await;
    assert_eq!(paid.json()["result"], "captured");

    let mut wrong = crate::support::order_body(json!([{ "sku": "A", "quantity": 1 }]));
    wrong["coupon_codes"] = json!(["NOPE"]);
    let r = app.call(Method::POST, "/api/v1/orders", &shop.owner, Some(wrong)).await;
    assert_eq!(
        (r.status, r.json()["type"].as_str()),
        (422, Some("https://ordo.dev/problems/coupon-not-applicable"))
    );
    let bad = json!({ "promotions": [{ "id": "x", "kind": { "type": "percentage", "percent_bp": 0 } }] });
    let r = app.put_settings(&shop, bad).await;
    assert_eq!(
        (r.status, r.json()["type"].as_str()),
        (422, Some("https://ordo.dev/problems/invalid-promotion"))
    );
}
