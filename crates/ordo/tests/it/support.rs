//! `spawn_app()`: the real server on 127.0.0.1:0 over a fresh SQLite file, with a
//! manual clock, plus helpers that set up a shop the way an integrator would.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::Method;
use ordo::client::{self, Response};
use ordo_core::Timestamp;
use ordo_engine::{Engine, ManualClock};
use serde_json::{Value, json};

pub const ADMIN: &str = "test-admin-token";
pub const GATEWAY_SECRET: &str = "test-gateway-secret-0123456789";
pub const CODES_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

pub struct TestApp {
    pub addr: SocketAddr,
    pub engine: Engine,
    pub clock: Arc<ManualClock>,
    pub dir: PathBuf,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn scratch_dir(name: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ordo-it-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Now, in real time, so signed notifications' timestamps line up with the clock.
pub fn real_now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

pub async fn spawn_app() -> TestApp {
    spawn_app_limited(ordo_engine::RateLimit::default()).await
}

pub async fn spawn_app_limited(rate_limit: ordo_engine::RateLimit) -> TestApp {
    let dir = scratch_dir("app");
    let clock = Arc::new(ManualClock::starting_at(real_now()));
    let opts = ordo::ServerOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: format!("sqlite://{}", dir.join("ordo.db").display()),
        admin_token: ADMIN.into(),
        durability: ordo_store_sqlite::Durability::Normal,
        batch_max: 1024,
        writers: 1,
        rate_limit,
        codes_key: Some(ordo_engine::codes::CodesKey::from_hex(CODES_KEY).unwrap()),
    };
    let running = ordo::start(opts, clock.clone()).await.expect("server starts");
    TestApp {
        addr: running.addr,
        engine: running.engine,
        clock,
        dir,
    }
}

/// A shop with an owner key, one warehouse, and SKUs `A` (¥19.99, 100 units),
/// `B` (¥5.00, 10 units) and virtual `V` (¥30.00).
pub struct Shop {
    pub id: String,
    pub owner: String,
    pub warehouse: String,
}

impl TestApp {
    pub async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Response {
        self.call_with(method, path, token, &[], body).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: &str,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> Response {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend_from_slice(extra);
        client::request(
            self.addr,
            method,
            path,
            &headers,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
        .expect("request")
    }

    pub async fn key(&self, shop: &str, role: &str) -> String {
        let r = self
            .call(
                Method::POST,
                &format!("/api/v1/shops/{shop}/keys"),
                ADMIN,
                Some(json!({ "role": role, "name": role })),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.json());
        r.json()["secret"].as_str().unwrap().to_string()
    }

    pub async fn shop(&self, name: &str) -> Shop {
        let r = self
            .call(Method::POST, "/api/v1/shops", ADMIN, Some(json!({ "name": name })))
            .await;
        assert_eq!(r.status, 201, "{:?}", r.json());
        let id = r.json()["id"].as_str().unwrap().to_string();
        let owner = self.key(&id, "owner").await;
        let r = self
            .call(
                Method::PUT,
                &format!("/api/v1/shops/{id}/gateways/generic"),
                &owner,
                Some(json!({ "secret": GATEWAY_SECRET })),
            )
            .await;
        assert_eq!(r.status, 204);
        let r = self
            .call(
                Method::POST,
                "/api/v1/warehouses",
                &owner,
                Some(json!({ "code": "SH", "name": "上海仓", "region": "CN-SH" })),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.json());
        let warehouse = r.json()["id"].as_str().unwrap().to_string();
        for (sku, price, units, kind) in [
            ("A", 1999, 100, "physical"),
            ("B", 500, 10, "physical"),
            ("V", 3000, 0, "virtual"),
        ] {
            let r = self
                .call(
                    Method::POST,
                    "/api/v1/products",
                    &owner,
                    Some(json!({ "sku": sku, "name": format!("商品 {sku}"), "price_minor": price, "kind": kind })),
                )
                .await;
            assert_eq!(r.status, 201, "{:?}", r.json());
            if units > 0 {
                let r = self
                    .call(
                        Method::POST,
                        &format!("/api/v1/stock/{sku}/adjustments"),
                        &owner,
                        Some(json!({ "warehouse_id": warehouse, "delta": units })),
                    )
                    .await;
                assert_eq!(r.status, 200, "{:?}", r.json());
            }
        }
        Shop { id, owner, warehouse }
    }

    /// Changes a shop's settings as its owner (`PUT /api/v1/shops/{id}/settings`).
    pub async fn put_settings(&self, shop: &Shop, settings: Value) -> Response {
        let path = format!("/api/v1/shops/{}/settings", shop.id);
        self.call(Method::PUT, &path, &shop.owner, Some(settings)).await
    }

    pub async fn place(&self, token: &str, lines: Value) -> Response {
        self.call(Method::POST, "/api/v1/orders", token, Some(order_body(lines)))
            .await
    }

    /// Posts a generic-gateway notification signed with the test secret.
    pub async fn notify(&self, body: &Value) -> Response {
        self.notify_signed(body, GATEWAY_SECRET, real_now().0 / 1000).await
    }

    pub async fn notify_signed(&self, body: &Value, secret: &str, ts: i64) -> Response {
        let raw = body.to_string();
        let sig = ordo_engine::gateway::sign(secret, ts, raw.as_bytes());
        let ts = ts.to_string();
        let headers = [("ordo-timestamp", ts.as_str()), ("ordo-signature", sig.as_str())];
        client::request(
            self.addr,
            Method::POST,
            "/api/v1/payments/generic/notify",
            &headers,
            Some(raw.into_bytes()),
        )
        .await
        .expect("request")
    }

    pub async fn pay(&self, shop: &Shop, order: &Value) -> Response {
        self.notify(&payment(
            shop,
            order,
            order["pricing"]["total_minor"].as_i64().unwrap(),
            "CNY",
            &format!("txn-{}", order["id"].as_str().unwrap()),
        ))
        .await
    }

    /// The test clock, in Unix seconds (for signing notifications after advancing it).
    pub fn clock_secs(&self) -> i64 {
        use ordo_engine::Clock;
        self.clock.now().0 / 1000
    }

    /// The shop's events of one type, oldest first (the first 1,000 events).
    pub async fn events_of(&self, token: &str, kind: &str) -> Vec<Value> {
        let r = self.call(Method::GET, "/api/v1/events?limit=1000", token, None).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        let items = r.json()["items"].as_array().expect("items").clone();
        items.into_iter().filter(|e| e["type"] == kind).collect()
    }

    pub async fn stock(&self, token: &str, sku: &str) -> Value {
        let r = self
            .call(Method::GET, &format!("/api/v1/stock/{sku}"), token, None)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        r.json()
    }
}

pub fn payment(shop: &Shop, order: &Value, amount: i64, currency: &str, txn: &str) -> Value {
    json!({ "shop_id": shop.id, "order_id": order["id"], "transaction_id": txn, "status": "succeeded", "amount_minor": amount, "currency": currency })
}

pub fn order_body(lines: Value) -> Value {
    json!({
        "buyer": { "id": "buyer-1", "name": "张三", "phone": "13812345678", "email": "zhang@example.com" },
        "shipping_address": {
            "recipient": "张三", "phone": "13812345678", "country": "CN", "province": "上海市", "city": "上海市",
            "district": "浦东新区", "line1": "世纪大道 100 号", "postal_code": "200120"
        },
        "lines": lines,
        "shipping_minor": 800
    })
}

/// The code a problem+json body names (the last segment of its `type`).
pub fn problem_type(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("").rsplit('/').next().unwrap_or("")
}

/// The string `field` of every item of a JSON array, in order (e.g. the SKUs of an
/// order's `lines`).
pub fn strs<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|item| item[field].as_str().expect("a string field"))
        .collect()
}

/// Unix milliseconds of an RFC 3339 time as the API renders it.
pub fn parse_ms(v: &Value) -> i64 {
    ordo_api::dto::parse_time(v.as_str().expect("a time"))
        .expect("RFC 3339")
        .0
}

/// Edits `order` as its shop's owner (`PATCH /api/v1/orders/{id}`).
pub async fn edit(app: &TestApp, shop: &Shop, order: &Value, body: Value) -> (u16, Value) {
    let id = order["id"].as_str().unwrap();
    let r = app
        .call(Method::PATCH, &format!("/api/v1/orders/{id}"), &shop.owner, Some(body))
        .await;
    (r.status, r.json())
}
