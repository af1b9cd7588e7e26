//! The API as an integrator meets it: orders, stock, errors, scoping, roles,
//! idempotency, pagination, events.

use hyper::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN, problem_type, spawn_app};

#[tokio::test]
async fn placing_an_order_prices_it_from_the_catalogue_and_reserves_stock() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let r = app
        .place(
            &shop.owner,
            json!([{ "sku": "A", "quantity": 2 }, { "sku": "B", "quantity": 1 }]),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let o = r.json();
    assert_eq!(o["status"], "pending_payment");
    assert_eq!(
        o["pricing"],
        json!({ "currency": "CNY", "items_minor": 4498, "shipping_minor": 800, "tax_minor": 0, "discount_minor": 0, "total_minor": 5298, "promotions": [] })
    );
    assert_eq!(o["lines"][0]["warehouse_id"], json!(shop.warehouse));
    let a = app.stock(&shop.owner, "A").await;
    assert_eq!(
        (a["on_hand"].as_i64(), a["reserved"].as_i64(), a["available"].as_i64()),
        (Some(100), Some(2), Some(98))
    );
    let ledger = app
        .call(Method::GET, "/api/v1/stock/A/ledger", &shop.owner, None)
        .await
        .json();
    let last = ledger.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["reason"].as_str(), last["reserved_delta"].as_i64()),
        (Some("reserve"), Some(2))
    );
    assert_eq!(last["order_id"], o["id"]);
}

#[tokio::test]
async fn bad_input_is_rejected_with_a_problem_and_changes_nothing() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let cases = [
        (json!([{ "sku": "A", "quantity": 0 }]), 422, "quantity-out-of-range"),
        (json!([{ "sku": "A", "quantity": 10001 }]), 422, "quantity-out-of-range"),
        (json!([{ "sku": "NOPE", "quantity": 1 }]), 422, "unknown-sku"),
        (json!([{ "sku": "B", "quantity": 11 }]), 422, "insufficient-stock"),
        (json!([]), 422, "line-count"),
        (
            json!([{ "sku": "A", "quantity": 1, "colour": "red" }]),
            422,
            "invalid-body",
        ),
    ];
    for (lines, status, kind) in cases {
        let r = app.place(&shop.owner, lines.clone()).await;
        assert_eq!(r.status, status, "{lines}: {:?}", r.json());
        assert_eq!(r.headers["content-type"], "application/problem+json");
        assert_eq!(problem_type(&r.json()), kind, "{lines}");
    }
    let no_address = json!({ "buyer": { "id": "b" }, "lines": [{ "sku": "A", "quantity": 1 }] });
    let r = app
        .call(Method::POST, "/api/v1/orders", &shop.owner, Some(no_address))
        .await;
    assert_eq!(problem_type(&r.json()), "address-required");
    let huge = json!({ "buyer": { "id": "b" }, "lines": [], "note": "x".repeat(300 * 1024) });
    let r = app.call(Method::POST, "/api/v1/orders", &shop.owner, Some(huge)).await;
    assert_eq!(r.status, 413);
    let r = app.call(Method::GET, "/api/v1/orders", "wrong-token", None).await;
    assert_eq!((r.status, problem_type(&r.json())), (401, "unauthenticated"));
    // Nothing above reserved or created anything.
    assert_eq!(app.stock(&shop.owner, "A").await["reserved"], 0);
    assert_eq!(app.stock(&shop.owner, "B").await["reserved"], 0);
    let list = app.call(Method::GET, "/api/v1/orders", &shop.owner, None).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn one_shop_can_neither_read_nor_change_another_shops_data() {
    let app = spawn_app().await;
    let a = app.shop("a").await;
    let b = app.shop("b").await;
    let order = app.place(&a.owner, json!([{ "sku": "A", "quantity": 1 }])).await.json();
    let id = order["id"].as_str().unwrap();
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/orders/{id}"), None),
        (Method::GET, format!("/api/v1/orders/{id}/payments"), None),
        (Method::GET, format!("/api/v1/orders/{id}/refunds"), None),
        (Method::POST, format!("/api/v1/orders/{id}/cancel"), Some(json!({}))),
        (
            Method::POST,
            format!("/api/v1/orders/{id}/ship"),
            Some(json!({ "carrier": "SF", "tracking_number": "1" })),
        ),
        (
            Method::POST,
            format!("/api/v1/orders/{id}/refunds"),
            Some(json!({ "amount_minor": 1, "reason": "x" })),
        ),
        (
            Method::POST,
            "/api/v1/stock/A/adjustments".to_string(),
            Some(json!({ "warehouse_id": a.warehouse, "delta": 5 })),
        ),
        (Method::GET, format!("/api/v1/shops/{}", a.id), None),
        (Method::GET, format!("/api/v1/shops/{}/keys", a.id), None),
    ] {
        let r = app.call(method.clone(), &path, &b.owner, body).await;
        assert_eq!(r.status, 404, "{method} {path}: {:?}", r.json());
    }
    // The admin header cannot be used by a shop key to reach another shop.
    let r = app
        .call_with(
            Method::GET,
            &format!("/api/v1/orders/{id}"),
            &b.owner,
            &[("x-ordo-shop", &a.id)],
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let list = app.call(Method::GET, "/api/v1/orders", &b.owner, None).await.json();
    assert!(list["items"].as_array().unwrap().is_empty());
    let events = app
        .call(Method::GET, "/api/v1/events?limit=1000", &b.owner, None)
        .await
        .json();
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["shop_id"] == json!(b.id))
    );
    // Shop A's order and stock are untouched.
    assert_eq!(
        app.call(Method::GET, &format!("/api/v1/orders/{id}"), &a.owner, None)
            .await
            .json()["status"],
        "pending_payment"
    );
    assert_eq!(app.stock(&a.owner, "A").await["on_hand"], 100);
}

#[tokio::test]
async fn roles_limit_what_a_key_can_do_and_see() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let viewer = app.key(&shop.id, "viewer").await;
    let warehouse = app.key(&shop.id, "warehouse").await;
    let order = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    let id = order["id"].as_str().unwrap();
    assert_eq!(
        app.place(&viewer, json!([{ "sku": "A", "quantity": 1 }])).await.status,
        403
    );
    let seen = app
        .call(Method::GET, &format!("/api/v1/orders/{id}"), &viewer, None)
        .await
        .json();
    assert_eq!(seen["buyer"]["phone"], "*******5678");
    assert_eq!(seen["shipping_address"]["line1"], "**********");
    let seen = app
        .call(Method::GET, &format!("/api/v1/orders/{id}"), &warehouse, None)
        .await
        .json();
    assert_eq!(seen["shipping_address"]["line1"], "世纪大道 100 号");
    let email = seen["buyer"]["email"].as_str().unwrap();
    assert!(email.starts_with("*****") && email.ends_with(".com"), "{email}");
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{id}/refunds"),
            &warehouse,
            Some(json!({ "amount_minor": 1, "reason": "x" })),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = app
        .call(
            Method::POST,
            "/api/v1/shops",
            &shop.owner,
            Some(json!({ "name": "mine" })),
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn a_revoked_key_stops_working() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/shops/{}/keys", shop.id),
            ADMIN,
            Some(json!({ "role": "operator" })),
        )
        .await;
    let (key_id, secret) = (
        r.json()["id"].as_str().unwrap().to_string(),
        r.json()["secret"].as_str().unwrap().to_string(),
    );
    assert_eq!(app.call(Method::GET, "/api/v1/orders", &secret, None).await.status, 200);
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/shops/{}/keys/{key_id}", shop.id),
            &shop.owner,
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(app.call(Method::GET, "/api/v1/orders", &secret, None).await.status, 401);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_result_and_refuses_a_different_body() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let body = crate::support::order_body(json!([{ "sku": "A", "quantity": 3 }]));
    let key = [("idempotency-key", "order-123")];
    let first = app
        .call_with(Method::POST, "/api/v1/orders", &shop.owner, &key, Some(body.clone()))
        .await;
    let again = app
        .call_with(Method::POST, "/api/v1/orders", &shop.owner, &key, Some(body.clone()))
        .await;
    assert_eq!((first.status, again.status), (201, 201));
    assert_eq!(first.json()["id"], again.json()["id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(app.stock(&shop.owner, "A").await["reserved"], 3);
    let other = crate::support::order_body(json!([{ "sku": "A", "quantity": 4 }]));
    let r = app
        .call_with(Method::POST, "/api/v1/orders", &shop.owner, &key, Some(other))
        .await;
    assert_eq!((r.status, problem_type(&r.json())), (422, "idempotency-key-reused"));
    // While a request holds the key, a concurrent one gets 409.
    let scope = app.engine.authenticate(&shop.owner).await.unwrap();
    let scope = match scope {
        ordo_core::auth::Principal::ShopKey { key, .. } => key.to_string(),
        _ => unreachable!(),
    };
    let _held = app.engine.claim_in_flight(&scope, "busy-key").unwrap();
    let r = app
        .call_with(
            Method::POST,
            "/api/v1/orders",
            &shop.owner,
            &[("idempotency-key", "busy-key")],
            Some(body),
        )
        .await;
    assert_eq!((r.status, problem_type(&r.json())), (409, "idempotency-key-in-flight"));
    // Other POSTs replay too.
    let product = json!({ "sku": "NEW", "name": "new", "price_minor": 100 });
    let p1 = app
        .call_with(
            Method::POST,
            "/api/v1/products",
            &shop.owner,
            &[("idempotency-key", "p")],
            Some(product.clone()),
        )
        .await;
    let p2 = app
        .call_with(
            Method::POST,
            "/api/v1/products",
            &shop.owner,
            &[("idempotency-key", "p")],
            Some(product),
        )
        .await;
    assert_eq!((p1.status, p2.status), (201, 201));
    assert_eq!(p1.json()["id"], p2.json()["id"]);
}

#[tokio::test]
async fn a_channel_order_id_never_makes_two_orders() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let mut body = crate::support::order_body(json!([{ "sku": "A", "quantity": 1 }]));
    body["channel"] = json!("xianyu");
    body["external_id"] = json!("XY-0001");
    let first = app
        .call(Method::POST, "/api/v1/orders", &shop.owner, Some(body.clone()))
        .await;
    let second = app.call(Method::POST, "/api/v1/orders", &shop.owner, Some(body)).await;
    assert_eq!(first.json()["id"], second.json()["id"]);
    assert_eq!(app.stock(&shop.owner, "A").await["reserved"], 1);
}

#[tokio::test]
async fn the_order_lifecycle_moves_stock_and_records_every_event() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let order = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 2 }]))
        .await
        .json();
    let id = order["id"].as_str().unwrap().to_string();
    let paid = app.pay(&shop, &order).await;
    assert_eq!((paid.status, paid.json()["result"].as_str()), (200, Some("captured")));
    let o = app
        .call(Method::GET, &format!("/api/v1/orders/{id}"), &shop.owner, None)
        .await
        .json();
    assert_eq!(o["status"], "fulfilling");
    // Illegal moves are typed conflicts.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{id}/complete"),
            &shop.owner,
            Some(json!({})),
        )
        .await;
    assert_eq!((r.status, problem_type(&r.json())), (409, "illegal-transition"));
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{id}/ship"),
            &shop.owner,
            Some(json!({ "carrier": "SF", "tracking_number": "SF123" })),
        )
        .await;
    assert_eq!(r.json()["status"], "shipped");
    let a = app.stock(&shop.owner, "A").await;
    assert_eq!((a["on_hand"].as_i64(), a["reserved"].as_i64()), (Some(98), Some(0)));
    for (step, status) in [("deliver", "delivered"), ("complete", "completed")] {
        let r = app
            .call(Method::POST, &format!("/api/v1/orders/{id}/{step}"), &shop.owner, None)
            .await;
        assert_eq!(r.json()["status"], status);
    }
    let events = app
        .call(Method::GET, "/api/v1/events?limit=1000", &shop.owner, None)
        .await
        .json();
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["subject"] == json!(id))
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "order.placed",
            "order.paid",
            "order.approved",
            "order.shipped",
            "order.delivered",
            "order.completed"
        ]
    );
    let seqs: Vec<i64> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn orders_list_newest_first_with_cursor_and_status_filter() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            app.place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
                .await
                .json()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let cancelled = &ids[1];
    app.call(
        Method::POST,
        &format!("/api/v1/orders/{cancelled}/cancel"),
        &shop.owner,
        Some(json!({ "reason": "buyer" })),
    )
    .await;
    let mut seen = Vec::new();
    let mut path = "/api/v1/orders?limit=2".to_string();
    loop {
        let page = app.call(Method::GET, &path, &shop.owner, None).await.json();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/orders?limit=2&cursor={c}"),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let page = app
        .call(Method::GET, "/api/v1/orders?status=cancelled", &shop.owner, None)
        .await
        .json();
    let only: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(only, vec![cancelled.clone()]);
    let r = app
        .call(Method::GET, "/api/v1/orders?status=lost", &shop.owner, None)
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn a_thousand_buyers_racing_for_a_hundred_units_get_exactly_a_hundred_orders() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/products",
            &shop.owner,
            Some(json!({ "sku": "HOT", "name": "hot", "price_minor": 100 })),
        )
        .await;
    assert_eq!(r.status, 201);
    app.call(
        Method::POST,
        "/api/v1/stock/HOT/adjustments",
        &shop.owner,
        Some(json!({ "warehouse_id": shop.warehouse, "delta": 100 })),
    )
    .await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (app, token) = (app.clone(), shop.owner.clone());
        tasks.push(tokio::spawn(async move {
            app.place(&token, json!([{ "sku": "HOT", "quantity": 1 }])).await
        }));
    }
    let mut created = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => created += 1,
            422 => assert_eq!(problem_type(&r.json()), "insufficient-stock"),
            other => panic!("unexpected {other}: {:?}", r.json()),
        }
    }
    assert_eq!(created, 100);
    let hot = app.stock(&shop.owner, "HOT").await;
    assert_eq!(
        (
            hot["on_hand"].as_i64(),
            hot["reserved"].as_i64(),
            hot["available"].as_i64()
        ),
        (Some(100), Some(100), Some(0))
    );
    let ledger = app
        .call(Method::GET, "/api/v1/stock/HOT/ledger?limit=1000", &shop.owner, None)
        .await
        .json();
    let entries = ledger.as_array().unwrap();
    let on_hand: i64 = entries.iter().map(|e| e["on_hand_delta"].as_i64().unwrap()).sum();
    let reserved: i64 = entries.iter().map(|e| e["reserved_delta"].as_i64().unwrap()).sum();
    assert_eq!((on_hand, reserved), (100, 100));
}

#[tokio::test]
async fn health_metrics_and_openapi_are_served() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    app.place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }])).await;
    let r = ordo::client::request(app.addr, Method::GET, "/healthz", &[], None)
        .await
        .unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]));
    let r = ordo::client::request(app.addr, Method::GET, "/metrics", &[], None)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("ordo_orders_placed_total 1"), "{text}");
    // Setup made one stock adjustment per physical SKU (2) and one order: three commands, all committed.
    assert!(text.contains("ordo_batch_commands_total 3"), "{text}");
    // The embedded store reports how long its WAL is (it has commits in it).
    let wal_frames = text
        .lines()
        .find_map(|l| l.strip_prefix("ordo_sqlite_wal_frames "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(wal_frames.is_some_and(|n| n > 0), "{text}");
    let r = ordo::client::request(app.addr, Method::GET, "/api/openapi.json", &[], None)
        .await
        .unwrap();
    let spec: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/orders",
        "/api/v1/orders/{id}/refunds",
        "/api/v1/payments/{gateway}/notify",
        "/api/v1/events/stream",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} missing from OpenAPI");
    }
}

#[tokio::test]
async fn the_event_stream_delivers_new_events_as_server_sent_events() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let req = format!(
        "GET /api/v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        shop.owner
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let order = app
        .place(&shop.owner, json!([{ "sku": "A", "quantity": 1 }]))
        .await
        .json();
    let id = order["id"].as_str().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !(seen.contains("event: order.placed") && seen.contains(id)) {
        let n = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read(&mut buf))
            .await
            .expect("stream answers")
            .unwrap();
        assert!(n > 0, "stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream"));
}

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_429_until_its_bucket_refills() {
    let app = crate::support::spawn_app_limited(ordo_engine::RateLimit { per_sec: 10, burst: 20 }).await;
    let shop = app.shop("s").await; // spends some of the owner's burst
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(app.call(Method::GET, "/api/v1/orders", &shop.owner, None).await.status);
    }
    assert!(statuses.contains(&200));
    let limited = app.call(Method::GET, "/api/v1/orders", &shop.owner, None).await;
    assert_eq!((limited.status, problem_type(&limited.json())), (429, "rate-limited"));
    assert_eq!(limited.headers["retry-after"], "1");
    // Other keys and the platform admin are not affected.
    let other = app.key(&shop.id, "viewer").await;
    assert_eq!(app.call(Method::GET, "/api/v1/orders", &other, None).await.status, 200);
    app.clock.advance_secs(1);
    assert_eq!(
        app.call(Method::GET, "/api/v1/orders", &shop.owner, None).await.status,
        200
    );
}

#[tokio::test]
async fn malformed_queries_unknown_routes_and_bad_settings_are_problems_too() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let r = app
        .call(Method::GET, "/api/v1/orders?colour=red", &shop.owner, None)
        .await;
    assert_eq!((r.status, problem_type(&r.json())), (400, "invalid-query"));
    assert_eq!(r.headers["content-type"], "application/problem+json");
    let r = app
        .call(Method::GET, "/api/v1/orders?limit=many", &shop.owner, None)
        .await;
    assert_eq!((r.status, problem_type(&r.json())), (400, "invalid-query"));
    let r = app.call(Method::DELETE, "/api/v1/orders", &shop.owner, None).await;
    assert_eq!((r.status, problem_type(&r.json())), (405, "method-not-allowed"));
    let r = app.call(Method::GET, "/api/v1/nothing-here", &shop.owner, None).await;
    assert_eq!((r.status, problem_type(&r.json())), (404, "no-such-route"));
    let settings = format!("/api/v1/shops/{}/settings", shop.id);
    for body in [
        json!({ "payment_timeout_secs": 5 }),
        json!({ "review_above_minor": -1 }),
        json!({ "currency": "USD" }),
    ] {
        let r = app.call(Method::PUT, &settings, &shop.owner, Some(body.clone())).await;
        assert_eq!(r.status, 422, "{body}: {:?}", r.json());
    }
    let huge = json!({ "secret": "x".repeat(300 * 1024) });
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/shops/{}/gateways/generic", shop.id),
            &shop.owner,
            Some(huge),
        )
        .await;
    assert_eq!(
        (r.status, r.headers["content-type"].to_str().unwrap()),
        (413, "application/problem+json")
    );
    let shop_now = app
        .call(Method::GET, &format!("/api/v1/shops/{}", shop.id), &shop.owner, None)
        .await
        .json();
    assert_eq!(
        (
            shop_now["payment_timeout_secs"].as_i64(),
            shop_now["review_above_minor"].clone()
        ),
        (Some(1800), Value::Null)
    );
}

#[tokio::test]
async fn addresses_are_checked_against_chinas_divisions_and_phone_formats() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let with = |field: &str, value: Value| {
        let mut body = crate::support::order_body(json!([{ "sku": "A", "quantity": 1 }]));
        body["shipping_address"][field] = value;
        body
    };
    let cases = [
        (with("city", json!("杭州市")), "city"),
        (with("district", json!("西湖区")), "district"),
        (with("province", json!("Shanghai")), "province"),
        (with("phone", json!("12345")), "phone"),
        (with("postal_code", json!("2001")), "postal_code"),
    ];
    for (body, field) in cases {
        let r = app.call(Method::POST, "/api/v1/orders", &shop.owner, Some(body)).await;
        assert_eq!((r.status, problem_type(&r.json())), (422, "invalid-address"), "{field}");
        assert!(
            r.json()["detail"]
                .as_str()
                .unwrap()
                .starts_with(&format!("address {field}")),
            "{:?}",
            r.json()
        );
    }
    // Short forms are fine: 上海 / 市辖区 / 浦东新区, a +86 mobile.
    let mut body = with("province", json!("上海"));
    body["shipping_address"]["city"] = json!("市辖区");
    body["shipping_address"]["phone"] = json!("+86 138 1234 5678");
    assert_eq!(
        app.call(Method::POST, "/api/v1/orders", &shop.owner, Some(body))
            .await
            .status,
        201
    );
    assert_eq!(
        app.stock(&shop.owner, "A").await["reserved"],
        1,
        "only the valid order reserved stock"
    );
}

const CSV_HEADER: &str =
    "external_id,buyer_id,buyer_name,recipient,phone,province,city,district,line1,sku,quantity,shipping_minor,note\n";

async fn import(app: &crate::support::TestApp, token: &str, csv: &str) -> ordo::client::Response {
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str()), ("content-type", "text/csv")];
    ordo::client::request(
        app.addr,
        Method::POST,
        "/api/v1/orders/import",
        &headers,
        Some(csv.as_bytes().to_vec()),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_csv_import_reports_every_row_and_importing_it_again_creates_nothing() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let csv = format!(
        "{CSV_HEADER}\
         XY-1,b1,张三,张三,13812345678,广东省,深圳市,南山区,科技园路 1 号,A,2,800,\n\
         XY-1,b1,张三,张三,13812345678,广东省,深圳市,南山区,科技园路 1 号,B,1,800,\n\
         XY-2,b2,李四,李四,13912345678,浙江,杭州,西湖区,文三路 2 号,A,1,0,请周末送\n\
         XY-3,b3,王五,王五,13712345678,广东省,杭州市,,某路 3 号,A,1,0,\n\
         XY-4,b4,赵六,赵六,13612345678,上海,上海,浦东新区,世纪大道 4 号,NOPE,1,0,\n\
         XY-5,b5,钱七,钱七,13512345678,上海,上海,浦东新区,世纪大道 5 号,A,many,0,\n"
    );
    let r = import(&app, &shop.owner, &csv).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let report = r.json();
    assert_eq!(
        (
            report["rows"].as_u64(),
            report["orders_created"].as_u64(),
            report["rows_rejected"].as_u64()
        ),
        (Some(6), Some(2), Some(3))
    );
    let status = |line: u64| {
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["line"] == line)
            .unwrap()
            .clone()
    };
    assert_eq!(status(2)["status"], "created");
    assert_eq!(
        status(2)["order_id"],
        status(3)["order_id"],
        "rows of one external_id make one order"
    );
    assert_eq!(status(5)["error_code"], "invalid-address");
    assert_eq!(status(6)["error_code"], "unknown-sku");
    assert_eq!(status(7)["error_code"], "invalid-row");
    let order = app
        .call(
            Method::GET,
            &format!("/api/v1/orders/{}", status(2)["order_id"].as_str().unwrap()),
            &shop.owner,
            None,
        )
        .await
        .json();
    assert_eq!(
        (order["channel"].as_str(), order["lines"].as_array().unwrap().len()),
        (Some("csv"), 2)
    );
    assert_eq!(app.stock(&shop.owner, "A").await["reserved"], 3);

    let again = import(&app, &shop.owner, &csv).await.json();
    assert_eq!(
        (again["orders_created"].as_u64(), again["orders_duplicate"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(
        app.stock(&shop.owner, "A").await["reserved"],
        3,
        "a re-import reserves nothing more"
    );

    // Files beyond the ordinary 256 KiB body limit are accepted here.
    let mut big = CSV_HEADER.to_string();
    for i in 0..3000 {
        big.push_str(&format!(
            "BIG-{i},b,张三,张三,13812345678,广东省,深圳市,南山区,科技园路 1 号 很长的地址描述用来占位,NOPE,1,0,\n"
        ));
    }
    assert!(big.len() > 256 * 1024);
    let r = import(&app, &shop.owner, &big).await;
    assert_eq!((r.status, r.json()["rows_rejected"].as_u64()), (200, Some(3000)));
    let viewer = app.key(&shop.id, "viewer").await;
    assert_eq!(import(&app, &viewer, &csv).await.status, 403);
}

#[tokio::test]
async fn an_imported_order_takes_its_rows_from_anywhere_in_the_file() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    // N-1's rows stand apart and its last one is rejected: it is still one order, of its
    // two valid rows, placed once.
    let csv = "external_id,buyer_id,recipient,phone,province,city,district,line1,sku,quantity\n\
               N-1,b1,张三,13812345678,广东省,深圳市,南山区,科技园路 1 号,A,2\n\
               N-2,b2,李四,13912345678,浙江,杭州,西湖区,文三路 2 号,A,1\n\
               N-1,b1,张三,13812345678,广东省,深圳市,南山区,科技园路 1 号,B,1\n\
               N-3,b3,王五,13712345678,上海,上海,浦东新区,世纪大道 3 号,B,1\n\
               N-1,b1,张三,13812345678,广东省,深圳市,南山区,科技园路 1 号,A,many\n";
    let report = import(&app, &shop.owner, csv).await.json();
    assert_eq!(
        (
            report["rows"].as_u64(),
            report["orders_created"].as_u64(),
            report["rows_rejected"].as_u64()
        ),
        (Some(5), Some(3), Some(1)),
        "{report}"
    );
    let results = report["results"].as_array().unwrap();
    let lines: Vec<u64> = results.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6], "one result per row, in file order");
    assert_eq!(results[0]["order_id"], results[2]["order_id"]);
    assert_eq!(results[4]["error_code"], "invalid-row");
    let order = app
        .call(
            Method::GET,
            &format!("/api/v1/orders/{}", results[0]["order_id"].as_str().unwrap()),
            &shop.owner,
            None,
        )
        .await
        .json();
    let skus = crate::support::strs(&order["lines"], "sku");
    assert_eq!(skus, ["A", "B"], "{order}");
    assert_eq!(app.stock(&shop.owner, "A").await["reserved"], 3);
    assert_eq!(app.stock(&shop.owner, "B").await["reserved"], 2);
}

#[tokio::test]
async fn a_large_import_creates_every_order_whole() {
    // Enough orders that the writer's batches are big (their documents are then
    // encoded on a second thread): every order must come back whole.
    const ORDERS: usize = 1500;
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/stock/A/adjustments",
            &shop.owner,
            Some(json!({ "warehouse_id": shop.warehouse, "delta": ORDERS })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let mut csv = CSV_HEADER.to_string();
    for i in 0..ORDERS {
        csv.push_str(&format!(
            "L-{i},b{i},张三,张三,13812345678,广东省,深圳市,南山区,科技园路 {i} 号,A,1,0,第 {i} 单\n"
        ));
    }
    let report = import(&app, &shop.owner, &csv).await.json();
    assert_eq!(report["orders_created"].as_u64(), Some(ORDERS as u64), "{report:?}");
    assert_eq!(app.stock(&shop.owner, "A").await["reserved"], ORDERS);
    for i in [0, ORDERS / 2, ORDERS - 1] {
        let row = &report["results"][i];
        let order = app
            .call(
                Method::GET,
                &format!("/api/v1/orders/{}", row["order_id"].as_str().unwrap()),
                &shop.owner,
                None,
            )
            .await
            .json();
        assert_eq!(
            (order["external_id"].as_str(), order["note"].as_str()),
            (Some(format!("L-{i}").as_str()), Some(format!("第 {i} 单").as_str()))
        );
    }
}

#[tokio::test]
async fn the_cli_imports_a_csv_file_into_the_database() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let file = app.dir.join("orders.csv");
    std::fs::write(
        &file,
        format!("{CSV_HEADER}CLI-1,b1,张三,张三,13812345678,广东省,深圳市,南山区,科技园路 1 号,A,1,0,\n"),
    )
    .unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ordo"))
            .args(["import", "orders"])
            .arg(&file)
            .args([
                "--shop",
                &shop.id,
                "--database",
                &format!("sqlite://{}", app.dir.join("ordo.db").display()),
            ])
            .env_remove("ORDO_DATABASE_URL")
            .output()
            .expect("ordo runs")
    };
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 orders created"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 orders created, 1 already imported"));
    let list = app.call(Method::GET, "/api/v1/orders", &shop.owner, None).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["external_id"], "CLI-1");
}

#[tokio::test]
async fn an_order_must_use_a_payment_method_the_shop_offers() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let order = |method: &str| {
        let mut body = crate::support::order_body(json!([{ "sku": "A", "quantity": 1 }]));
        body["payment_method"] = json!(method);
        body
    };
    assert_eq!(
        app.call(Method::POST, "/api/v1/orders", &shop.owner, Some(order("cod")))
            .await
            .status,
        201,
        "any method until the shop lists some"
    );
    let settings = json!({ "payment_methods": ["alipay", "wechat"] });
    let r = app.put_settings(&shop, settings).await;
    assert_eq!(r.json()["payment_methods"], json!(["alipay", "wechat"]));
    let r = app
        .call(Method::POST, "/api/v1/orders", &shop.owner, Some(order("cod")))
        .await;
    assert_eq!((r.status, problem_type(&r.json())), (422, "payment-method-not-allowed"));
    let r = app
        .call(Method::POST, "/api/v1/orders", &shop.owner, Some(order("alipay")))
        .await;
    assert_eq!((r.status, r.json()["payment_method"].as_str()), (201, Some("alipay")));
}

#[tokio::test]
async fn imported_rows_with_a_paid_reference_are_paid_once() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let csv = "external_id,buyer_id,recipient,phone,province,city,district,line1,sku,quantity,paid_reference\n\
               P-1,b1,张三,13812345678,广东省,深圳市,南山区,科技园路 1 号,A,2,\n\
               P-1,b1,张三,13812345678,广东省,深圳市,南山区,科技园路 1 号,B,1,BANK-2026-0001\n\
               P-2,b2,李四,13912345678,浙江,杭州,西湖区,文三路 2 号,A,1,\n";
    for pass in ["first", "again"] {
        let report = import(&app, &shop.owner, csv).await.json();
        assert_eq!(report["rows_rejected"], 0, "{pass}: {report}");
        let order_of = |line: u64| {
            let row = report["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["line"] == line)
                .unwrap()
                .clone();
            row["order_id"].as_str().unwrap().to_string()
        };
        let get = |id: String| {
            let app = &app;
            let token = shop.owner.clone();
            async move {
                app.call(Method::GET, &format!("/api/v1/orders/{id}"), &token, None)
                    .await
                    .json()
            }
        };
        let paid = get(order_of(2)).await;
        assert_eq!(paid["status"], "fulfilling", "{pass}: {paid}");
        assert_eq!(
            paid["paid_minor"], paid["pricing"]["total_minor"],
            "{pass}: paid in full, once"
        );
        let unpaid = get(order_of(4)).await;
        assert_eq!(
            (unpaid["status"].as_str(), unpaid["paid_minor"].as_i64()),
            (Some("pending_payment"), Some(0))
        );
        let payments = app
            .call(
                Method::GET,
                &format!("/api/v1/orders/{}/payments", order_of(2)),
                &shop.owner,
                None,
            )
            .await
            .json();
        let captured: Vec<&Value> = payments
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["status"] == "captured")
            .collect();
        assert_eq!(captured.len(), 1, "{pass}: {payments}");
        assert_eq!(captured[0]["gateway"], "import");
    }
}
