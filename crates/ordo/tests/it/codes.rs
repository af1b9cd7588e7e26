//! Virtual goods (G1): codes sealed at rest, assigned in the payment's own
//! transaction, never twice, never shown outside the order's codes endpoint.

use std::collections::HashSet;
use std::sync::Arc;

use hyper::Method;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::{Shop, TestApp, spawn_app};

async fn add_codes(app: &TestApp, shop: &Shop, codes: &[String]) -> Value {
    let r = app
        .call(
            Method::POST,
            "/api/v1/code-pools/V",
            &shop.owner,
            Some(json!({ "codes": codes })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    r.json()
}

async fn get_order(app: &TestApp, shop: &Shop, id: &str) -> Value {
    app.call(Method::GET, &format!("/api/v1/orders/{id}"), &shop.owner, None)
        .await
        .json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_payments_for_five_hundred_codes_deliver_exactly_five_hundred() {
    const ORDERS: usize = 1000;
    const CODES: usize = 500;
    let app = Arc::new(spawn_app().await);
    let shop = Arc::new(app.shop("s").await);
    let codes: Vec<String> = (0..CODES).map(|i| format!("CARD-{i:04}-XYZ")).collect();
    let added = add_codes(&app, &shop, &codes).await;
    assert_eq!(
        (added["added"].as_u64(), added["available"].as_i64()),
        (Some(500), Some(500))
    );
    let again = add_codes(&app, &shop, &codes[..10]).await;
    assert_eq!(
        (again["added"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(10))
    );

    let mut placing = JoinSet::new();
    for _ in 0..ORDERS {
        let (app, shop) = (app.clone(), shop.clone());
        placing.spawn(async move {
            let r = app.place(&shop.owner, json!([{ "sku": "V", "quantity": 1 }])).await;
            assert_eq!(r.status, 201, "{:?}", r.json());
            r.json()
        });
    }
    let orders: Vec<Value> = placing.join_all().await;

    let mut paying = JoinSet::new();
    for order in orders.clone() {
        let (app, shop) = (app.clone(), shop.clone());
        paying.spawn(async move {
            let r = app.pay(&shop, &order).await;
            assert_eq!(r.status, 200, "{:?}", r.json());
            order["id"].as_str().unwrap().to_string()
        });
    }
    let ids = paying.join_all().await;

    let (mut delivered, mut held) = (Vec::new(), Vec::new());
    for id in &ids {
        let o = get_order(&app, &shop, id).await;
        match o["status"].as_str().unwrap() {
            "delivered" => delivered.push(o),
            "on_hold" => {
                assert!(o["hold_reason"].as_str().unwrap().contains("code pool"), "{o:?}");
                held.push(o);
            }
            other => panic!("a paid order for a virtual good is delivered or held, not {other}"),
        }
    }
    assert_eq!((delivered.len(), held.len()), (CODES, ORDERS - CODES), "none lost");

    let mut seen = HashSet::new();
    for o in &delivered {
        let r = app
            .call(
                Method::GET,
                &format!("/api/v1/orders/{}/codes", o["id"].as_str().unwrap()),
                &shop.owner,
                None,
            )
            .await;
        let got = r.json();
        assert_eq!(got.as_array().unwrap().len(), 1, "{got:?}");
        let code = got[0]["code"].as_str().unwrap().to_string();
        assert!(codes.contains(&code));
        assert!(seen.insert(code), "a code was assigned twice");
        assert_eq!(o["lines"][0]["codes_delivered"], 1);
    }
    let pool = app
        .call(Method::GET, "/api/v1/code-pools/V", &shop.owner, None)
        .await
        .json();
    assert_eq!(pool["available"], 0);

    // The codes never leave through lists or events; a low pool raised its alert.
    let mut events_text = String::new();
    let mut after = 0;
    loop {
        let page = app
            .call(
                Method::GET,
                &format!("/api/v1/events?after={after}&limit=1000"),
                &shop.owner,
                None,
            )
            .await;
        let next = page.json()["next_after"].as_i64().unwrap();
        events_text.push_str(&String::from_utf8_lossy(&page.body));
        if next == after {
            break;
        }
        after = next;
    }
    assert!(!events_text.contains("CARD-"), "a code leaked into the event log");
    assert!(events_text.contains("code_pool.low"), "the low pool raised its alert");
    let listed = app
        .call(Method::GET, "/api/v1/orders?limit=200", &shop.owner, None)
        .await;
    assert!(!String::from_utf8_lossy(&listed.body).contains("CARD-"));

    // Refilled, a held order gets its code from a person's retry and is delivered.
    add_codes(&app, &shop, &["CARD-REFILL-1".to_string()]).await;
    let first_held = held[0]["id"].as_str().unwrap();
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{first_held}/deliver-codes"),
            &shop.owner,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (200, Some("delivered")),
        "{:?}",
        r.json()
    );
    let second_held = held[1]["id"].as_str().unwrap();
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/orders/{second_held}/deliver-codes"),
            &shop.owner,
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.json());
}

#[tokio::test]
async fn codes_are_for_virtual_skus_and_for_roles_that_serve_the_buyer() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/code-pools/A",
            &shop.owner,
            Some(json!({ "codes": ["X-1"] })),
        )
        .await;
    assert_eq!(r.status, 422, "A is physical: {:?}", r.json());
    for bad in [
        json!({ "codes": [] }),
        json!({ "codes": [" padded "] }),
        json!({ "codes": [""] }),
    ] {
        let r = app
            .call(Method::POST, "/api/v1/code-pools/V", &shop.owner, Some(bad))
            .await;
        assert_eq!(r.status, 422, "{:?}", r.json());
    }
    add_codes(&app, &shop, &["ONLY-ONE".to_string()]).await;
    let order = app
        .place(&shop.owner, json!([{ "sku": "V", "quantity": 1 }]))
        .await
        .json();
    app.pay(&shop, &order).await;
    let id = order["id"].as_str().unwrap();
    let warehouse = app.key(&shop.id, "warehouse").await;
    let r = app
        .call(Method::GET, &format!("/api/v1/orders/{id}/codes"), &warehouse, None)
        .await;
    assert_eq!(r.status, 403, "{:?}", r.json());
    let other = app.shop("other").await;
    let r = app
        .call(Method::GET, &format!("/api/v1/orders/{id}/codes"), &other.owner, None)
        .await;
    assert_eq!(r.status, 404);
    let r = app
        .call(Method::GET, &format!("/api/v1/orders/{id}/codes"), &shop.owner, None)
        .await;
    assert_eq!(r.json()[0]["code"], "ONLY-ONE");
}

#[tokio::test]
async fn the_cli_adds_codes_the_server_can_deliver() {
    let app = spawn_app().await;
    let shop = app.shop("s").await;
    let file = app.dir.join("codes.txt");
    std::fs::write(
        &file,
        "LINK-https://dl.example.com/a1\n\nLINK-https://dl.example.com/a2\n",
    )
    .unwrap();
    let run = |key: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ordo"))
            .args(["import", "codes"])
            .arg(&file)
            .args(["--shop", &shop.id, "--sku", "V"])
            .args(["--database", &format!("sqlite://{}", app.dir.join("ordo.db").display())])
            .env("ORDO_CODES_KEY", key)
            .env_remove("ORDO_DATABASE_URL")
            .output()
            .expect("ordo runs")
    };
    let out = run(crate::support::CODES_KEY);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("2 codes: 2 added, 0 already in the pool; 2 available"),
        "{stdout}"
    );
    let out = run(crate::support::CODES_KEY);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 added, 2 already"));
    let out = run("not-a-key");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("64 hex digits"));

    let order = app
        .place(&shop.owner, json!([{ "sku": "V", "quantity": 2 }]))
        .await
        .json();
    app.pay(&shop, &order).await;
    let id = order["id"].as_str().unwrap();
    assert_eq!(get_order(&app, &shop, id).await["status"], "delivered");
    let codes = app
        .call(Method::GET, &format!("/api/v1/orders/{id}/codes"), &shop.owner, None)
        .await
        .json();
    let mut got = crate::support::strs(&codes, "code");
    got.sort_unstable();
    assert_eq!(
        got,
        ["LINK-https://dl.example.com/a1", "LINK-https://dl.example.com/a2"]
    );
}
