//! The notification worker end to end: orders placed and paid through the engine
//! on a SQLite store, messages delivered to a local SMTP sink, a local SMS gateway
//! and a file, failures retried on the backoff schedule by moving a manual clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use ordo_core::auth::{Actor, Principal};
use ordo_core::batch::LineRequest;
use ordo_core::catalog::ProductKind;
use ordo_core::event::{NewEvent, kinds};
use ordo_core::notify::{DeliveryStatus, Locale, MAX_ATTEMPTS, RETRY_BACKOFF_SECS};
use ordo_core::order::{Buyer, Order, OrderStatus};
use ordo_core::{Currency, OrderId, ShopId, Timestamp};
use ordo_engine::gateway::{Inbound, sign};
use ordo_engine::{Clock, Engine, EngineConfig, ManualClock, NewOrder, NewProduct};
use ordo_notify::{CodeSource, FileProvider, HttpSmsProvider, Notifier, Providers, SmtpProvider};
use ordo_store::{DynStore, NotificationFilter, NotificationRecord};
use ordo_store_sqlite::{Durability, SqliteStore};
use tokio::net::TcpListener;

mod sink;

use sink::{Mail, SmtpSink};

const SECRET: &str = "test-gateway-secret-0123456789";
const PRICE: i64 = 12850;

// ---------------------------------------------------------------------------
// A world: a SQLite store, the engine on a manual clock, shops and orders.

struct World {
    dir: PathBuf,
    store: DynStore,
    engine: Engine,
    clock: Arc<ManualClock>,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl World {
    async fn new() -> World {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ordo-notify-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store: DynStore = Arc::new(SqliteStore::open(dir.join("ordo.db"), Durability::Normal).expect("open"));
        let clock = Arc::new(ManualClock::starting_at(Timestamp(1_800_000_000_000)));
        let engine = Engine::start(store.clone(), clock.clone(), EngineConfig::new("admin-token"));
        World {
            dir,
            store,
            engine,
            clock,
        }
    }

    /// A CNY shop with a virtual SKU `V` at ¥128.50, notifying in `locale` on the
    /// channels asked for.
    async fn shop(&self, locale: Locale, email: bool, sms: bool) -> ShopId {
        let admin = Principal::PlatformAdmin;
        let shop = self
            .engine
            .create_shop(&admin, "Test shop", Currency::CNY)
            .await
            .expect("shop");
        let mut settings = shop.settings.clone();
        settings.notifications.locale = locale;
        settings.notifications.email = email;
        settings.notifications.sms = sms;
        self.engine
            .update_settings(&admin, shop.id, settings)
            .await
            .expect("settings");
        let product = NewProduct {
            sku: "V".into(),
            name: "Gift card".into(),
            kind: ProductKind::Virtual,
            price_minor: PRICE,
            weight_g: 0,
            on_sale: true,
            attributes: Default::default(),
            presale_ships_at: None,
        };
        self.engine
            .create_product(&admin, Some(shop.id), product)
            .await
            .expect("product");
        self.engine
            .set_gateway_secret(&admin, shop.id, "testpay", SECRET)
            .await
            .expect("gateway secret");
        shop.id
    }

    async fn place(&self, shop: ShopId, external_id: &str) -> Order {
        let order = NewOrder {
            channel: "web".into(),
            external_id: Some(external_id.into()),
            buyer: Buyer {
                id: "buyer-1".into(),
                name: Some("Han Meimei".into()),
                phone: Some("13800000001".into()),
                email: Some("meimei@example.com".into()),
            },
            shipping_address: None,
            lines: vec![LineRequest {
                sku: "V".into(),
                quantity: 1,
            }],
            shipping_minor: 0,
            note: None,
            payment_method: None,
            coupon_codes: Vec::new(),
        };
        let (order, _) = self
            .engine
            .place_order(&Principal::PlatformAdmin, Some(shop), order, None)
            .await
            .expect("order placed");
        order
    }

    async fn pay(&self, order: &Order) {
        let body = serde_json::json!({
            "shop_id": order.shop, "order_id": order.id, "transaction_id": format!("tx-{}", order.id),
            "status": "succeeded", "amount_minor": order.pricing.total_minor, "currency": "CNY",
        })
        .to_string();
        let ts = self.clock.now().0 / 1000;
        let signature = sign(SECRET, ts, body.as_bytes());
        let ts = ts.to_string();
        let inbound = Inbound {
            body: body.as_bytes(),
            timestamp: Some(&ts),
            signature: Some(&signature),
            stripe_signature: None,
            shop: None,
        };
        self.engine.payment_notify("testpay", inbound).await.expect("paid");
    }

    fn notifier(&self, providers: Providers) -> Notifier {
        Notifier::new(self.store.clone(), self.clock.clone(), providers)
    }

    async fn log(&self, shop: ShopId) -> Vec<NotificationRecord> {
        let filter = NotificationFilter {
            limit: 100,
            ..Default::default()
        };
        let mut log = self.store.list_notifications(shop, &filter).await.expect("log");
        log.reverse();
        log
    }
}

fn email_only(provider: impl ordo_notify::Provider) -> Providers {
    Providers {
        email: Some(Arc::new(provider)),
        sms: None,
    }
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placed_and_paid_orders_mail_the_buyer_in_the_shop_language() {
    let w = World::new().await;
    let sink = SmtpSink::start().await;
    let zh = w.shop(Locale::ZhCn, true, false).await;
    let en = w.shop(Locale::En, true, false).await;
    let zh_order = w.place(zh, "WEB-ZH").await;
    w.pay(&zh_order).await;
    let en_order = w.place(en, "WEB-EN").await;
    w.pay(&en_order).await;

    let smtp = SmtpProvider::new("127.0.0.1", sink.port, "Ordo Shop <shop@example.com>").unwrap();
    let report = w.notifier(email_only(smtp)).run_once().await.expect("round");
    assert_eq!((report.planned, report.sent, report.failed), (4, 4, 0));

    let mails = sink.mails();
    let got: Vec<(String, Vec<String>)> = mails.iter().map(|m| (m.subject(), m.rcpt.clone())).collect();
    let to = vec!["meimei@example.com".to_string()];
    assert_eq!(
        got,
        vec![
            ("订单已提交：WEB-ZH".to_string(), to.clone()),
            ("订单 WEB-ZH 支付成功".to_string(), to.clone()),
            ("Order WEB-EN received".to_string(), to.clone()),
            ("Payment received for order WEB-EN".to_string(), to.clone()),
        ]
    );
    assert!(mails[0].body().contains("应付金额 ¥128.50"), "{}", mails[0].body());
    assert!(
        mails[1].body().contains("我们已收到您的付款 ¥128.50"),
        "{}",
        mails[1].body()
    );
    assert!(
        mails[2].body().contains("Amount due: CNY 128.50"),
        "{}",
        mails[2].body()
    );
    assert!(mails[3].body().contains("payment of CNY 128.50"), "{}", mails[3].body());
    assert!(mails[0].header("From").contains("shop@example.com"));
    assert!(mails[0].header("To").contains("meimei@example.com"));

    let log = w.log(zh).await;
    assert_eq!(log.len(), 2);
    for n in &log {
        assert_eq!(
            (n.status, n.attempts, n.recipient.as_str()),
            (DeliveryStatus::Sent, 1, "meimei@example.com")
        );
        assert_eq!(n.sent_at, Some(w.clock.now()));
        let attempts = w.store.notification_attempts(zh, &[n.id]).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert!(
            attempts[0].ok && attempts[0].detail.starts_with("250"),
            "{:?}",
            attempts[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sms_gateway_gets_the_documented_json() {
    use axum::http::HeaderMap;

    let w = World::new().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(HeaderMap, String)>();
    let app = axum::Router::new().route(
        "/v1/sms",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                r#"{"id":"msg-1"}"#
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let shop = w.shop(Locale::ZhCn, false, true).await;
    let order = w.place(shop, "WEB-SMS").await;
    w.pay(&order).await;
    let sms = HttpSmsProvider::new(&format!("http://127.0.0.1:{port}/v1/sms"), "key-123", "OrdoShop").unwrap();
    let providers = Providers {
        email: None,
        sms: Some(Arc::new(sms)),
    };
    let report = w.notifier(providers).run_once().await.expect("round");
    // The order confirmation goes by e-mail only; payment goes by SMS too.
    assert_eq!((report.planned, report.sent), (1, 1));

    let (headers, body) = rx.try_recv().expect("the gateway was called");
    assert_eq!(headers["authorization"], "Bearer key-123");
    assert_eq!(headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["to"], "13800000001");
    assert_eq!(json["sender"], "OrdoShop");
    assert!(
        json["text"].as_str().unwrap().contains("我们已收到您的付款 ¥128.50"),
        "{json}"
    );
    assert_eq!(json.as_object().unwrap().len(), 3);
    assert!(rx.try_recv().is_err(), "one message only");

    let log = w.log(shop).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].status, log[0].template.as_str()),
        (DeliveryStatus::Sent, kinds::ORDER_PAID)
    );
    let attempts = w.store.notification_attempts(shop, &[log[0].id]).await.unwrap();
    assert_eq!(attempts[0].detail, r#"HTTP 200: {"id":"msg-1"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_is_retried_on_the_schedule_then_gives_up_and_the_order_goes_on() {
    let w = World::new().await;
    // A port nothing listens on: connections are refused at once.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let shop = w.shop(Locale::En, true, false).await;
    let order = w.place(shop, "WEB-FAIL").await;
    let smtp = SmtpProvider::new("127.0.0.1", port, "shop@example.com").unwrap();
    let notifier = w.notifier(email_only(smtp));

    let mut expected_next = None;
    for attempt in 1..=MAX_ATTEMPTS {
        if let Some(next) = expected_next {
            // Not due a millisecond early…
            w.clock.set(Timestamp(next - 1));
            let early = notifier.run_once().await.expect("round");
            assert_eq!((early.retrying, early.failed), (0, 0), "attempt {attempt} ran early");
            // …and due exactly on time.
            w.clock.set(Timestamp(next));
        }
        let now = w.clock.now();
        let report = notifier.run_once().await.expect("round");
        let n = w.log(shop).await.remove(0);
        assert_eq!(n.attempts, attempt);
        assert!(n.last_error.as_deref().unwrap_or_default().contains("refused"), "{n:?}");
        if attempt < MAX_ATTEMPTS {
            assert_eq!(report.retrying, 1);
            let wait = RETRY_BACKOFF_SECS[attempt as usize - 1];
            assert_eq!(n.status, DeliveryStatus::Pending);
            assert_eq!(n.next_attempt_at, Some(now.plus_secs(wait)));
            expected_next = n.next_attempt_at.map(|t| t.0);
        } else {
            assert_eq!(report.failed, 1);
            assert_eq!((n.status, n.next_attempt_at), (DeliveryStatus::Failed, None));
        }
    }
    let n = w.log(shop).await.remove(0);
    let attempts = w.store.notification_attempts(shop, &[n.id]).await.unwrap();
    assert_eq!(attempts.len(), MAX_ATTEMPTS as usize);
    assert!(attempts.iter().all(|a| !a.ok && a.detail.contains("refused")));

    // Nothing more happens, however late it gets.
    w.clock.advance_secs(7 * 24 * 3600);
    let report = notifier.run_once().await.expect("round");
    assert_eq!((report.sent, report.retrying, report.failed), (0, 0, 0));

    // The order was never touched, and can still be paid.
    let now = w
        .engine
        .get_order(&Principal::PlatformAdmin, Some(shop), order.id)
        .await
        .unwrap();
    assert_eq!((now.status, now.version), (order.status, order.version));
    // Payment notices are checked against the clock; pay "now".
    w.pay(&order).await;
    let paid = w
        .engine
        .get_order(&Principal::PlatformAdmin, Some(shop), order.id)
        .await
        .unwrap();
    assert_ne!(paid.status, OrderStatus::PendingPayment);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_again_over_the_same_events_sends_nothing_twice() {
    let w = World::new().await;
    let sink = SmtpSink::start().await;
    let shop = w.shop(Locale::ZhCn, true, true).await;
    let order = w.place(shop, "WEB-DUP").await;
    w.pay(&order).await;
    let providers = Providers {
        email: Some(Arc::new(
            SmtpProvider::new("127.0.0.1", sink.port, "shop@example.com").unwrap(),
        )),
        sms: Some(Arc::new(FileProvider::new(w.dir.join("sms.jsonl")))),
    };
    let notifier = w.notifier(providers.clone());
    let first = notifier.run_once().await.unwrap();
    // placed: e-mail; paid: e-mail and SMS.
    assert_eq!((first.planned, first.sent), (3, 3));

    let again = notifier.run_once().await.unwrap();
    assert_eq!((again.planned, again.sent), (0, 0));

    // A worker that lost its place (cursor back at the start) plans the same events
    // again: nothing new is recorded or sent.
    {
        let conn = rusqlite::Connection::open(w.dir.join("ordo.db")).unwrap();
        conn.execute("UPDATE notification_cursor SET last_seq = 0", []).unwrap();
    }
    let replay = w.notifier(providers).run_once().await.unwrap();
    assert_eq!((replay.planned, replay.sent), (0, 0));
    assert_eq!(w.log(shop).await.len(), 3);
    assert_eq!(sink.mails().len(), 2);
    let sms = std::fs::read_to_string(w.dir.join("sms.jsonl")).unwrap();
    assert_eq!(sms.lines().count(), 1);
}

struct Codes(Vec<String>);

#[async_trait]
impl CodeSource for Codes {
    async fn delivered_codes(&self, _shop: ShopId, _order: OrderId) -> Result<Vec<String>, String> {
        Ok(self.0.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_codes_are_listed_when_a_code_source_is_given() {
    let w = World::new().await;
    let shop = w.shop(Locale::En, true, false).await;
    let with = w.place(shop, "WEB-CODES").await;
    let without = w.place(shop, "WEB-NOCODES").await;
    let file = w.dir.join("mail.jsonl");
    // Only the codes event: skip the order confirmations.
    w.notifier(email_only(FileProvider::new(w.dir.join("ignored.jsonl"))))
        .plan_new_events()
        .await
        .unwrap();
    let delivered = |order: &Order| NewEvent {
        shop: Some(shop),
        subject: order.id.to_string(),
        kind: kinds::ORDER_CODES_DELIVERED,
        payload: serde_json::json!({ "codes": 2 }).into(),
        actor: Actor::system("codes"),
        at: w.clock.now(),
    };
    w.store.append_events(vec![delivered(&with)]).await.unwrap();
    let mut ids = vec![];
    for n in w.log(shop).await {
        ids.push(n.id);
    }

    let codes = Arc::new(Codes(vec!["AAAA-1111".into(), "BBBB-2222".into()]));
    let notifier = w.notifier(email_only(FileProvider::new(&file)));
    // Deliver only the codes message: mark the confirmations handled first.
    for id in ids {
        let attempt = ordo_store::NotificationAttempt {
            notification: id,
            at: w.clock.now(),
            ok: true,
            detail: "skipped by the test".into(),
        };
        w.store
            .record_notification_attempt(id, &attempt, ordo_store::AttemptOutcome::Sent)
            .await
            .unwrap();
    }
    notifier.clone().with_code_source(codes).run_once().await.unwrap();
    w.store.append_events(vec![delivered(&without)]).await.unwrap();
    notifier.run_once().await.unwrap();

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}\n{:#?}", w.log(shop).await);
    assert_eq!(lines[0]["to"], "meimei@example.com");
    assert_eq!(lines[0]["subject"], "Your codes for order WEB-CODES");
    let body = lines[0]["body"].as_str().unwrap();
    assert!(body.contains("AAAA-1111") && body.contains("BBBB-2222"), "{body}");
    let body = lines[1]["body"].as_str().unwrap();
    assert!(body.contains("your codes are available in your order page"), "{body}");
    // The codes never reach the delivery log.
    for n in w.log(shop).await {
        assert!(!n.data.to_string().contains("AAAA"), "{n:?}");
    }
}

#[tokio::test]
async fn a_reminder_that_comes_after_payment_is_not_sent() {
    let w = World::new().await;
    let sink = SmtpSink::start().await;
    let shop = w.shop(Locale::En, true, false).await;
    let order = w.place(shop, "WEB-LATE").await;
    // The reminder fires (25 minutes in, by default), then the buyer pays before
    // the notifier's next round.
    w.clock.advance_secs(26 * 60);
    assert_eq!(w.engine.run_due_reminders().await.unwrap(), 1);
    w.pay(&order).await;
    let notifier = w.notifier(email_only(
        SmtpProvider::new("127.0.0.1", sink.port, "shop@example.com").unwrap(),
    ));
    notifier.run_once().await.unwrap();
    let log = w.log(shop).await;
    let reminder = log
        .iter()
        .find(|n| n.template == "order.payment_reminder")
        .expect("planned");
    assert_eq!(reminder.status, ordo_core::notify::DeliveryStatus::Failed);
    assert!(
        reminder
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("no longer awaits payment")
    );
    let subjects: Vec<String> = sink.mails().iter().map(Mail::subject).collect();
    assert!(
        subjects.iter().all(|s| !s.to_lowercase().contains("remind")),
        "{subjects:?}"
    );
    assert_eq!(subjects.len(), 2, "placed and paid: {subjects:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_running_at_once_send_each_notification_once() {
    let w = World::new().await;
    let sink = SmtpSink::start().await;
    let shop = w.shop(Locale::En, true, false).await;
    for n in 0..10 {
        let order = w.place(shop, &format!("WEB-RACE-{n}")).await;
        w.pay(&order).await;
    }
    let providers = || email_only(SmtpProvider::new("127.0.0.1", sink.port, "shop@example.com").unwrap());
    // One plans; then four workers (as four `ordo serve` processes would) deliver at once.
    let planned = w.notifier(providers()).plan_new_events().await.unwrap();
    assert_eq!(planned, 20, "placed and paid, for ten orders");
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let notifier = w.notifier(providers());
            tokio::spawn(async move { notifier.deliver_due().await.unwrap() })
        })
        .collect();
    let mut sent = 0;
    for worker in workers {
        sent += worker.await.unwrap().sent;
    }
    assert_eq!(sent, 20);
    assert_eq!(sink.mails().len(), 20, "no e-mail twice");
    assert!(w.log(shop).await.iter().all(|n| n.attempts == 1));
}
