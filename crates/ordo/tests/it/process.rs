//! Tests that run `ordo serve` as child processes: crash safety and the
//! two-process race on PostgreSQL.
//!
//! Every server here is a real `ordo serve` on a free loopback port, with its
//! output in a log file next to the database; a failing assertion quotes the tail
//! of the relevant log. Children are killed (SIGKILL) when their guard drops.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hyper::Method;
use ordo::client::{self, Conn, Response};
use serde_json::{Value, json};

use crate::support::{ADMIN, CODES_KEY, GATEWAY_SECRET, order_body, scratch_dir};

/// How often readiness and exit are polled.
const POLL: Duration = Duration::from_millis(50);
/// Polls before a server that has not answered `/healthz` is given up on (30 s).
const HEALTH_TRIES: u32 = 600;
/// Polls before a child that should be exiting is given up on (30 s).
const EXIT_TRIES: u32 = 600;

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// A scratch directory that is removed at the end, unless the test failed (then
/// the databases and server logs are kept for a post-mortem).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch(scratch_dir(name))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// One `ordo serve` child; killed with SIGKILL when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// Starts `ordo serve` on a free port against `database` and waits until
    /// `/healthz` answers. `env` is added to a clean set of ORDO_* variables.
    async fn start(database: &str, dir: &Path, name: &str, env: &[(&str, &str)]) -> Server {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ordo"));
        cmd.args(["serve", "--listen", &addr.to_string(), "--database", database])
            .env("ORDO_ADMIN_TOKEN", ADMIN)
            .env_remove("ORDO_DATABASE_URL")
            .env_remove("ORDO_SQLITE_SYNC")
            .env_remove("ORDO_BATCH_MAX")
            .env_remove("ORDO_FAILPOINT_CRASH_AFTER_COMMITS")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn ordo serve");
        let mut server = Server { child, addr, log };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&mut self) {
        for _ in 0..HEALTH_TRIES {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "`ordo serve` on {} exited during start-up ({status}):\n{}",
                    self.addr,
                    self.log_tail()
                );
            }
            if let Ok(r) = client::request(self.addr, Method::GET, "/healthz", &[], None).await
                && r.status == 200
            {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "`ordo serve` on {} never answered /healthz:\n{}",
            self.addr,
            self.log_tail()
        );
    }

    /// SIGKILL: no shutdown hooks, no flushing; whatever is not durable is lost.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for the child to exit on its own.
    async fn wait_exit(&mut self) -> ExitStatus {
        for _ in 0..EXIT_TRIES {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("`ordo serve` on {} did not exit:\n{}", self.addr, self.log_tail());
    }

    fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- {} (last lines) ---\n{}",
            self.log.display(),
            lines[from..].join("\n")
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// API helpers
// ---------------------------------------------------------------------------

fn body_text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn problem_type(r: &Response) -> String {
    r.json()["type"].as_str().unwrap_or("").to_string()
}

fn replayed(r: &Response) -> bool {
    r.headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()) == Some("true")
}

async fn call(addr: SocketAddr, method: Method, path: &str, token: &str, body: Option<&Value>) -> Response {
    let auth = format!("Bearer {token}");
    client::request(
        addr,
        method.clone(),
        path,
        &[("authorization", auth.as_str())],
        body.map(|b| b.to_string().into_bytes()),
    )
    .await
    .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// A shop with an owner key, one warehouse and one physical SKU with `units` on hand.
struct ShopSetup {
    id: String,
    owner: String,
}

async fn setup_shop(addr: SocketAddr, sku: &str, units: i64) -> ShopSetup {
    let r = call(
        addr,
        Method::POST,
        "/api/v1/shops",
        ADMIN,
        Some(&json!({ "name": "进程测试店" })),
    )
    .await;
    assert_eq!(r.status, 201, "create shop: {}", body_text(&r));
    let shop = r.json()["id"].as_str().unwrap().to_string();
    let r = call(
        addr,
        Method::POST,
        &format!("/api/v1/shops/{shop}/keys"),
        ADMIN,
        Some(&json!({ "role": "owner", "name": "owner" })),
    )
    .await;
    assert_eq!(r.status, 201, "create key: {}", body_text(&r));
    let owner = r.json()["secret"].as_str().unwrap().to_string();
    let r = call(
        addr,
        Method::POST,
        "/api/v1/warehouses",
        &owner,
        Some(&json!({ "code": "SH", "name": "上海仓", "region": "CN-SH" })),
    )
    .await;
    assert_eq!(r.status, 201, "create warehouse: {}", body_text(&r));
    let warehouse = r.json()["id"].as_str().unwrap().to_string();
    let r = call(
        addr,
        Method::POST,
        "/api/v1/products",
        &owner,
        Some(&json!({ "sku": sku, "name": format!("商品 {sku}"), "price_minor": 1999, "kind": "physical" })),
    )
    .await;
    assert_eq!(r.status, 201, "create product: {}", body_text(&r));
    let r = call(
        addr,
        Method::POST,
        &format!("/api/v1/stock/{sku}/adjustments"),
        &owner,
        Some(&json!({ "warehouse_id": warehouse, "delta": units })),
    )
    .await;
    assert_eq!(r.status, 200, "receive stock: {}", body_text(&r));
    ShopSetup { id: shop, owner }
}

/// The serialized body of a one-line order; `note` carries a tag (the
/// Idempotency-Key) so the orders in the database can be traced back to requests.
fn one_line_order(sku: &str, quantity: i64, buyer: &str, note: &str) -> String {
    let mut body = order_body(json!([{ "sku": sku, "quantity": quantity }]));
    body["buyer"]["id"] = json!(buyer);
    body["note"] = json!(note);
    body.to_string()
}

async fn post_order(conn: &mut Conn, token: &str, key: &str, body: &str) -> Result<Response, client::Error> {
    let auth = format!("Bearer {token}");
    conn.send(
        Method::POST,
        "/api/v1/orders",
        &[("authorization", auth.as_str()), ("idempotency-key", key)],
        Some(body.as_bytes().to_vec()),
    )
    .await
}

/// Every order of the caller's shop, following `next_cursor` to the end.
async fn all_orders(addr: SocketAddr, token: &str) -> Vec<Value> {
    let mut orders = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen_cursors = HashSet::new();
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/orders?limit=500&cursor={c}"),
            None => "/api/v1/orders?limit=500".to_string(),
        };
        let r = call(addr, Method::GET, &path, token, None).await;
        assert_eq!(r.status, 200, "{path}: {}", body_text(&r));
        let page = r.json();
        orders.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert!(
                    seen_cursors.insert(next.to_string()),
                    "order pagination loops at cursor {next}"
                );
                cursor = Some(next.to_string());
            }
            None => return orders,
        }
    }
}

/// The SKU's whole stock ledger, following `after` to the end.
async fn ledger(addr: SocketAddr, token: &str, sku: &str) -> Vec<Value> {
    let mut entries: Vec<Value> = Vec::new();
    let mut after = 0i64;
    loop {
        let path = format!("/api/v1/stock/{sku}/ledger?after={after}&limit=1000");
        let r = call(addr, Method::GET, &path, token, None).await;
        assert_eq!(r.status, 200, "{path}: {}", body_text(&r));
        let page = r.json().as_array().expect("ledger page").clone();
        let Some(last) = page.last() else { return entries };
        let last_seq = last["seq"].as_i64().expect("seq");
        assert!(last_seq > after, "ledger pagination does not advance past {after}");
        let full = page.len() == 1000;
        entries.extend(page);
        if !full {
            return entries;
        }
        after = last_seq;
    }
}

/// `(on_hand, reserved, available)` of a SKU over all warehouses.
async fn stock(addr: SocketAddr, token: &str, sku: &str) -> (i64, i64, i64) {
    let r = call(addr, Method::GET, &format!("/api/v1/stock/{sku}"), token, None).await;
    assert_eq!(r.status, 200, "stock of {sku}: {}", body_text(&r));
    let v = r.json();
    (
        v["on_hand"].as_i64().unwrap(),
        v["reserved"].as_i64().unwrap(),
        v["available"].as_i64().unwrap(),
    )
}

fn quantity_of(order: &Value, sku: &str) -> i64 {
    order["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter(|l| l["sku"] == sku)
        .map(|l| l["quantity"].as_i64().unwrap())
        .sum()
}

/// Checks the stock invariants against the orders present: reserved equals the
/// units of the orders still awaiting payment; the ledger's reserved deltas sum
/// to the same figure; each order's reservation was written exactly once.
async fn assert_stock_consistent(addr: SocketAddr, token: &str, sku: &str, on_hand: i64, orders: &[Value]) {
    let pending: i64 = orders
        .iter()
        .filter(|o| o["status"] == "pending_payment")
        .map(|o| quantity_of(o, sku))
        .sum();
    let (stock_on_hand, reserved, available) = stock(addr, token, sku).await;
    assert_eq!(stock_on_hand, on_hand, "on hand of {sku}");
    assert_eq!(
        reserved,
        pending,
        "reserved of {sku} vs units of the {} orders present awaiting payment",
        orders.len()
    );
    assert_eq!(available, on_hand - reserved, "available of {sku}");
    let entries = ledger(addr, token, sku).await;
    let ledger_reserved: i64 = entries.iter().map(|e| e["reserved_delta"].as_i64().unwrap()).sum();
    assert_eq!(
        ledger_reserved, reserved,
        "the ledger's reserved deltas vs reserved of {sku}"
    );
    let mut reserved_by_order: HashMap<String, (usize, i64)> = HashMap::new();
    for e in entries.iter().filter(|e| e["reason"] == "reserve") {
        let id = e["order_id"]
            .as_str()
            .expect("a reservation names its order")
            .to_string();
        let slot = reserved_by_order.entry(id).or_default();
        slot.0 += 1;
        slot.1 += e["reserved_delta"].as_i64().unwrap();
    }
    for o in orders {
        let id = o["id"].as_str().unwrap();
        assert_eq!(
            reserved_by_order.remove(id),
            Some((1, quantity_of(o, sku))),
            "order {id} should have exactly one reservation of its units in the ledger"
        );
    }
    assert!(
        reserved_by_order.is_empty(),
        "ledger reservations for orders that do not exist: {reserved_by_order:?}"
    );
}

// ---------------------------------------------------------------------------
// 1. SIGKILL mid-stream
// ---------------------------------------------------------------------------

/// An order request sent under an Idempotency-Key.
#[derive(Clone)]
struct Sent {
    key: String,
    body: String,
    quantity: i64,
}

/// What one load task saw: orders acknowledged with 201 (and their ids), the one
/// request whose connection died without an answer, and any other answer.
#[derive(Default)]
struct StreamReport {
    acked: Vec<(Sent, String)>,
    unanswered: Vec<Sent>,
    unexpected: Vec<String>,
}

const SIGKILL_SKU: &str = "HOT";
const SIGKILL_UNITS: i64 = 100_000;
const STREAM_TASKS: usize = 32;
/// Orders acknowledged before the kill.
const ACKED_BEFORE_KILL: usize = 300;
/// A bound on each task's stream in case the kill never comes.
const PER_TASK_MAX: usize = 1_000;

async fn order_stream(
    addr: SocketAddr,
    token: String,
    task: usize,
    acked_total: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> StreamReport {
    let mut report = StreamReport::default();
    let Ok(mut conn) = Conn::open(addr).await else {
        return report;
    };
    for i in 0..PER_TASK_MAX {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let key = format!("sigkill-{task}-{i}");
        let quantity = 1 + (i % 3) as i64;
        let sent = Sent {
            body: one_line_order(SIGKILL_SKU, quantity, &format!("buyer-{task}"), &key),
            key,
            quantity,
        };
        match post_order(&mut conn, &token, &sent.key, &sent.body).await {
            Ok(r) if r.status == 201 => {
                let id = r.json()["id"].as_str().expect("order id").to_string();
                report.acked.push((sent, id));
                acked_total.fetch_add(1, Ordering::SeqCst);
            }
            Ok(r) => {
                report
                    .unexpected
                    .push(format!("{}: {} {}", sent.key, r.status, body_text(&r)));
                break;
            }
            Err(_) => {
                report.unanswered.push(sent);
                break;
            }
        }
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_acknowledged_order_survives_sigkill() {
    let dir = Scratch::new("sigkill");
    let db = format!("sqlite://{}", dir.0.join("ordo.db").display());
    let mut first = Server::start(&db, &dir.0, "first", &[]).await;
    let shop = setup_shop(first.addr, SIGKILL_SKU, SIGKILL_UNITS).await;

    let acked_total = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..STREAM_TASKS)
        .map(|t| {
            tokio::spawn(order_stream(
                first.addr,
                shop.owner.clone(),
                t,
                acked_total.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let mut tries = 0;
    while acked_total.load(Ordering::SeqCst) < ACKED_BEFORE_KILL {
        tries += 1;
        assert!(
            tries < 2_400 && tasks.iter().any(|t| !t.is_finished()),
            "only {} orders acknowledged before the stream stopped:\n{}",
            acked_total.load(Ordering::SeqCst),
            first.log_tail()
        );
        tokio::time::sleep(POLL).await;
    }
    first.kill();
    stop.store(true, Ordering::SeqCst);
    let mut acked: Vec<(Sent, String)> = Vec::new();
    let mut unanswered: Vec<Sent> = Vec::new();
    let mut unexpected: Vec<String> = Vec::new();
    for t in tasks {
        let report = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("a load task hung after the server was killed")
            .expect("load task panicked");
        acked.extend(report.acked);
        unanswered.extend(report.unanswered);
        unexpected.extend(report.unexpected);
    }
    assert!(
        unexpected.is_empty(),
        "answers other than 201 before the kill: {unexpected:?}\n{}",
        first.log_tail()
    );
    assert!(acked.len() >= ACKED_BEFORE_KILL);
    eprintln!(
        "killed after {} acknowledged orders, {} requests unanswered",
        acked.len(),
        unanswered.len()
    );

    let second = Server::start(&db, &dir.0, "second", &[]).await;
    let addr = second.addr;
    let token = shop.owner.as_str();

    // Every acknowledged order is there, as acknowledged.
    let mut conn = Conn::open(addr).await.expect("connect");
    let auth = format!("Bearer {token}");
    for (sent, id) in &acked {
        let r = conn
            .send(
                Method::GET,
                &format!("/api/v1/orders/{id}"),
                &[("authorization", auth.as_str())],
                None,
            )
            .await
            .expect("get order");
        assert_eq!(
            r.status,
            200,
            "acknowledged order {id} ({}) lost by SIGKILL: {}",
            sent.key,
            body_text(&r)
        );
        let o = r.json();
        assert_eq!(o["note"], json!(sent.key));
        assert_eq!(quantity_of(&o, SIGKILL_SKU), sent.quantity);
    }

    // No request made two orders, and the stock matches the orders present.
    let before = all_orders(addr, token).await;
    let mut by_key: HashMap<String, String> = HashMap::new();
    for o in &before {
        let key = o["note"].as_str().expect("every order carries its key").to_string();
        let id = o["id"].as_str().unwrap().to_string();
        if let Some(other) = by_key.insert(key.clone(), id.clone()) {
            panic!("two orders for Idempotency-Key {key}: {other} and {id}");
        }
    }
    assert!(
        before.len() <= acked.len() + unanswered.len(),
        "{} orders present but only {} were acknowledged or unanswered",
        before.len(),
        acked.len() + unanswered.len()
    );
    assert_stock_consistent(addr, token, SIGKILL_SKU, SIGKILL_UNITS, &before).await;

    // Retrying an acknowledged request replays it.
    for (sent, id) in &acked {
        let r = post_order(&mut conn, token, &sent.key, &sent.body)
            .await
            .expect("retry");
        assert_eq!(r.status, 201, "retry of {}: {}", sent.key, body_text(&r));
        assert!(replayed(&r), "retry of acknowledged {} was not a replay", sent.key);
        assert_eq!(
            r.json()["id"].as_str(),
            Some(id.as_str()),
            "retry of {} returned another order",
            sent.key
        );
    }
    // Retrying an unanswered request replays it if it committed, places it if not.
    for sent in &unanswered {
        let r = post_order(&mut conn, token, &sent.key, &sent.body)
            .await
            .expect("retry");
        assert_eq!(r.status, 201, "retry of {}: {}", sent.key, body_text(&r));
        let id = r.json()["id"].as_str().unwrap().to_string();
        match by_key.get(&sent.key) {
            Some(committed) => {
                assert!(
                    replayed(&r),
                    "{} committed before the kill but its retry was not a replay",
                    sent.key
                );
                assert_eq!(&id, committed, "retry of {} returned another order", sent.key);
            }
            None => assert!(
                !replayed(&r),
                "{} never committed but its retry claims to be a replay",
                sent.key
            ),
        }
    }

    // Now every request sent has exactly one order.
    let after = all_orders(addr, token).await;
    let keys: HashSet<&str> = after.iter().map(|o| o["note"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), after.len(), "some Idempotency-Key has two orders");
    let sent_keys: HashSet<&str> = acked
        .iter()
        .map(|(s, _)| s.key.as_str())
        .chain(unanswered.iter().map(|s| s.key.as_str()))
        .collect();
    assert_eq!(keys, sent_keys, "orders present vs requests sent");
    assert_stock_consistent(addr, token, SIGKILL_SKU, SIGKILL_UNITS, &after).await;
}

// ---------------------------------------------------------------------------
// 2. Crash between commit and reply
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_between_commit_and_reply_is_answered_by_the_retry() {
    const SKU: &str = "ONE";
    let dir = Scratch::new("failpoint");
    let db = format!("sqlite://{}", dir.0.join("ordo.db").display());

    // Set up with a plain server (its stock receipt is one group commit), then stop it.
    let mut setup = Server::start(&db, &dir.0, "setup", &[]).await;
    let shop = setup_shop(setup.addr, SKU, 10).await;
    assert_eq!(stock(setup.addr, &shop.owner, SKU).await, (10, 0, 10));
    setup.kill();
    drop(setup);

    // The next server aborts right after its first commit: the order's.
    let mut crashy = Server::start(&db, &dir.0, "crashy", &[("ORDO_FAILPOINT_CRASH_AFTER_COMMITS", "1")]).await;
    let key = "crash-between-commit-and-reply";
    let body = one_line_order(SKU, 2, "buyer-1", key);
    let mut conn = Conn::open(crashy.addr).await.expect("connect");
    match post_order(&mut conn, &shop.owner, key, &body).await {
        Err(_) => {}
        Ok(r) => panic!(
            "the failpoint should have cut the reply off, got {} {}\n{}",
            r.status,
            body_text(&r),
            crashy.log_tail()
        ),
    }
    let status = crashy.wait_exit().await;
    assert!(!status.success(), "the crashing server exited cleanly ({status})");
    assert!(
        crashy.log_text().contains("failpoint crash_after_commits=1 reached"),
        "the server died, but not at the failpoint:\n{}",
        crashy.log_tail()
    );
    drop(crashy);

    let after = Server::start(&db, &dir.0, "after", &[]).await;
    let token = shop.owner.as_str();
    // The commit was durable before the crash.
    let orders = all_orders(after.addr, token).await;
    assert_eq!(
        orders.len(),
        1,
        "the committed order should be there exactly once: {orders:?}"
    );
    let committed = orders[0]["id"].as_str().unwrap().to_string();
    assert_eq!(orders[0]["note"], json!(key));

    // The retry gets the answer the crash swallowed.
    let mut conn = Conn::open(after.addr).await.expect("connect");
    let r = post_order(&mut conn, token, key, &body).await.expect("retry");
    assert_eq!(r.status, 201, "retry: {}", body_text(&r));
    assert!(replayed(&r), "the retry should be answered as a replay");
    assert_eq!(r.json()["id"].as_str(), Some(committed.as_str()));
    assert_eq!(r.json()["status"], "pending_payment");
    assert_eq!(quantity_of(&r.json(), SKU), 2);

    let orders = all_orders(after.addr, token).await;
    assert_eq!(orders.len(), 1, "the retry made a second order: {orders:?}");
    assert_eq!(orders[0]["id"].as_str(), Some(committed.as_str()));
    assert_eq!(
        stock(after.addr, token, SKU).await,
        (10, 2, 8),
        "the order's units should be reserved once"
    );
    assert_stock_consistent(after.addr, token, SKU, 10, &orders).await;
}

// ---------------------------------------------------------------------------
// 3. Two processes, one PostgreSQL database
// ---------------------------------------------------------------------------

const POSTGRES_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

static DB_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `base` with its database name replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let (scheme, rest) = base.split_once("://").expect("a postgres:// URL");
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let query = tail.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

/// A PostgreSQL error with the server's message (its `Display` alone says only "db error").
fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => format!("{e:?}"),
    }
}

async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let connecting = tokio_postgres::connect(url, tokio_postgres::NoTls);
    let (client, connection) = match tokio::time::timeout(Duration::from_secs(10), connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!(
            "PostgreSQL at {url} is unreachable: {}. Start a server or point ORDO_TEST_POSTGRES_URL at one where databases may be created.",
            pg_error(&e)
        ),
        Err(_) => panic!(
            "PostgreSQL at {url} did not answer within 10 s. Start a server or point ORDO_TEST_POSTGRES_URL at one where databases may be created."
        ),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A fresh database, dropped (with any sessions still on it) at the end.
struct PgDb {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDb {
    async fn create() -> PgDb {
        let admin_url = std::env::var("ORDO_TEST_POSTGRES_URL").unwrap_or_else(|_| POSTGRES_DEFAULT.to_string());
        let name = format!(
            "ordo_it_{}_{}",
            std::process::id(),
            DB_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let client = pg_connect(&admin_url).await;
        // Two calls: CREATE DATABASE cannot run inside the implicit transaction of a multi-statement batch.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("`{sql}` on {admin_url}: {}", pg_error(&e)));
        }
        let url = with_database(&admin_url, &name);
        PgDb { admin_url, name, url }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on; use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// What one buyer got.
enum Bought {
    Created(String),
    SoldOut,
    Overloaded,
    Other(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_oversell_across_two_processes_on_postgres() {
    let pg = PgDb::create().await;
    let dir = Scratch::new("postgres");
    no_oversell_across_two_processes(&pg.url, &dir).await;
}

/// Two processes on one SQLite file: each decides its batches on a read snapshot
/// while writing the last one, so this is what shows a decision is never written
/// over a state the other process changed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_oversell_across_two_processes_on_sqlite() {
    let dir = Scratch::new("sqlite-shared");
    let db = format!("sqlite://{}", dir.0.join("ordo.db").display());
    no_oversell_across_two_processes(&db, &dir).await;
}

async fn no_oversell_across_two_processes(database: &str, dir: &Scratch) {
    const SKU: &str = "LIMITED";
    const UNITS: i64 = 100;
    const BUYERS: usize = 1_000;

    // One after the other, so each migrates (or finds migrated) a quiet database.
    let one = Server::start(database, &dir.0, "one", &[]).await;
    let two = Server::start(database, &dir.0, "two", &[]).await;
    let shop = setup_shop(one.addr, SKU, UNITS).await;
    assert_eq!(
        stock(two.addr, &shop.owner, SKU).await,
        (UNITS, 0, UNITS),
        "process two sees process one's stock"
    );

    // Every buyer connects first, then all send at once, half to each process.
    let gate = Arc::new(tokio::sync::Barrier::new(BUYERS));
    let buyers: Vec<_> = (0..BUYERS)
        .map(|i| {
            let addr = if i % 2 == 0 { one.addr } else { two.addr };
            let (gate, token) = (gate.clone(), shop.owner.clone());
            tokio::spawn(async move {
                let conn = Conn::open(addr).await;
                gate.wait().await;
                let mut conn = match conn {
                    Ok(c) => c,
                    Err(e) => return Bought::Other(format!("buyer {i}: connect to {addr}: {e}")),
                };
                let key = format!("buyer-{i}");
                let body = one_line_order(SKU, 1, &key, &key);
                match post_order(&mut conn, &token, &key, &body).await {
                    Ok(r) if r.status == 201 => Bought::Created(r.json()["id"].as_str().unwrap_or("").to_string()),
                    Ok(r) if r.status == 422 && problem_type(&r).ends_with("/insufficient-stock") => Bought::SoldOut,
                    Ok(r) if r.status == 503 => Bought::Overloaded,
                    Ok(r) => Bought::Other(format!("buyer {i} at {addr}: {} {}", r.status, body_text(&r))),
                    Err(e) => Bought::Other(format!("buyer {i} at {addr}: no answer: {e}")),
                }
            })
        })
        .collect();
    let mut created: Vec<String> = Vec::new();
    let (mut sold_out, mut overloaded, mut other) = (0, 0, Vec::new());
    for b in buyers {
        let bought = tokio::time::timeout(Duration::from_secs(120), b)
            .await
            .expect("a buyer got no answer within 120 s")
            .expect("buyer task panicked");
        match bought {
            Bought::Created(id) => created.push(id),
            Bought::SoldOut => sold_out += 1,
            Bought::Overloaded => overloaded += 1,
            Bought::Other(what) => other.push(what),
        }
    }
    let logs = format!("{}\n{}", one.log_tail(), two.log_tail());
    assert!(
        other.is_empty(),
        "{} unexpected answers, e.g. {:?}\n{logs}",
        other.len(),
        &other[..other.len().min(5)]
    );
    assert_eq!(overloaded, 0, "503 overloaded answers");
    assert_eq!(created.len(), UNITS as usize, "orders placed for {UNITS} units\n{logs}");
    assert_eq!(sold_out, BUYERS - UNITS as usize);

    // Both processes see the same, consistent state.
    for addr in [one.addr, two.addr] {
        assert_eq!(
            stock(addr, &shop.owner, SKU).await,
            (UNITS, UNITS, 0),
            "stock as seen by {addr}"
        );
        let orders = all_orders(addr, &shop.owner).await;
        let ids: HashSet<&str> = orders.iter().map(|o| o["id"].as_str().unwrap()).collect();
        let placed: HashSet<&str> = created.iter().map(String::as_str).collect();
        assert_eq!(ids.len(), orders.len(), "an order is listed twice");
        assert_eq!(ids, placed, "orders listed vs orders acknowledged");
        assert_stock_consistent(addr, &shop.owner, SKU, UNITS, &orders).await;
    }
    drop((one, two));
}

/// Runs `tasks` at once, half against each address, and returns their results in order.
async fn race<T: Send + 'static, F>(addrs: [SocketAddr; 2], tasks: usize, task: F) -> Vec<T>
where
    F: Fn(usize, SocketAddr) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>,
{
    let gate = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let gate = gate.clone();
            let work = task(i, addrs[i % 2]);
            tokio::spawn(async move {
                gate.wait().await;
                work.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks);
    for h in handles {
        out.push(
            tokio::time::timeout(Duration::from_secs(120), h)
                .await
                .expect("an answer within 120 s")
                .expect("task panicked"),
        );
    }
    out
}

/// A coupon's uses and a code pool are counted once across two processes on one
/// PostgreSQL database: the counter and pool rows are locked by the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coupons_and_code_pools_hold_across_two_processes_on_postgres() {
    const BUYERS: usize = 200;
    const USES: usize = 20;
    const CARDS: usize = 100;
    const CODES: usize = 30;
    let pg = PgDb::create().await;
    let dir = Scratch::new("pg-limits");
    let env = [("ORDO_CODES_KEY", CODES_KEY)];
    let one = Server::start(&pg.url, &dir.0, "one", &env).await;
    let two = Server::start(&pg.url, &dir.0, "two", &env).await;
    let shop = setup_shop(one.addr, "TEA", 10_000).await;
    let owner = shop.owner.clone();
    let settings = json!({ "promotions": [{
        "id": "twenty", "coupon_code": "TWENTY", "kind": { "type": "fixed", "amount_minor": 100 }, "usage_limit": USES
    }] });
    let r = call(
        one.addr,
        Method::PUT,
        &format!("/api/v1/shops/{}/settings", shop.id),
        &owner,
        Some(&settings),
    )
    .await;
    assert_eq!(r.status, 200, "{}", body_text(&r));
    let r = call(
        one.addr,
        Method::PUT,
        &format!("/api/v1/shops/{}/gateways/generic", shop.id),
        &owner,
        Some(&json!({ "secret": GATEWAY_SECRET })),
    )
    .await;
    assert_eq!(r.status, 204, "{}", body_text(&r));
    let card = json!({ "sku": "CARD", "name": "礼品卡", "price_minor": 3000, "kind": "virtual" });
    assert_eq!(
        call(one.addr, Method::POST, "/api/v1/products", &owner, Some(&card))
            .await
            .status,
        201
    );
    let codes: Vec<String> = (0..CODES).map(|i| format!("PG-CARD-{i:03}")).collect();
    let r = call(
        one.addr,
        Method::POST,
        "/api/v1/code-pools/CARD",
        &owner,
        Some(&json!({ "codes": codes })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", body_text(&r));

    // Coupon: every buyer tries, half through each process.
    let answers = race([one.addr, two.addr], BUYERS, |i, addr| {
        let owner = owner.clone();
        Box::pin(async move {
            let mut body = order_body(json!([{ "sku": "TEA", "quantity": 1 }]));
            body["buyer"]["id"] = json!(format!("coupon-buyer-{i}"));
            body["coupon_codes"] = json!(["TWENTY"]);
            let r = call(addr, Method::POST, "/api/v1/orders", &owner, Some(&body)).await;
            (r.status, problem_type(&r))
        })
    })
    .await;
    let granted = answers.iter().filter(|(s, _)| *s == 201).count();
    let refused = answers
        .iter()
        .filter(|(s, t)| *s == 422 && t.ends_with("/coupon-used-up"))
        .count();
    assert_eq!((granted, refused), (USES, BUYERS - USES), "{answers:?}");

    // Codes: orders placed, then all paid at once, half through each process.
    let mut cards = Vec::new();
    for i in 0..CARDS {
        let mut body = order_body(json!([{ "sku": "CARD", "quantity": 1 }]));
        body["buyer"]["id"] = json!(format!("card-buyer-{i}"));
        let r = call(one.addr, Method::POST, "/api/v1/orders", &owner, Some(&body)).await;
        assert_eq!(r.status, 201, "{}", body_text(&r));
        cards.push(r.json());
    }
    let cards = Arc::new(cards);
    let paid = race([one.addr, two.addr], CARDS, |i, addr| {
        let (cards, shop_id) = (cards.clone(), shop.id.clone());
        Box::pin(async move {
            let order = &cards[i];
            let body = json!({
                "shop_id": shop_id, "order_id": order["id"], "transaction_id": format!("pg-tx-{i}"),
                "status": "succeeded", "amount_minor": order["pricing"]["total_minor"], "currency": "CNY",
            })
            .to_string();
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let sig = ordo_engine::gateway::sign(GATEWAY_SECRET, ts, body.as_bytes());
            let ts = ts.to_string();
            let headers = [("ordo-timestamp", ts.as_str()), ("ordo-signature", sig.as_str())];
            let r = client::request(
                addr,
                Method::POST,
                "/api/v1/payments/generic/notify",
                &headers,
                Some(body.into_bytes()),
            )
            .await
            .expect("notify");
            r.status
        })
    })
    .await;
    assert!(paid.iter().all(|s| *s == 200), "{paid:?}");
    let mut delivered = HashSet::new();
    let mut held = 0;
    for order in cards.iter() {
        let id = order["id"].as_str().unwrap();
        let now = call(two.addr, Method::GET, &format!("/api/v1/orders/{id}"), &owner, None)
            .await
            .json();
        match now["status"].as_str().unwrap() {
            "delivered" => {
                let codes = call(
                    two.addr,
                    Method::GET,
                    &format!("/api/v1/orders/{id}/codes"),
                    &owner,
                    None,
                )
                .await
                .json();
                let code = codes[0]["code"].as_str().unwrap().to_string();
                assert!(delivered.insert(code), "a code went to two orders");
            }
            "on_hold" => held += 1,
            other => panic!("a paid card order is delivered or held, not {other}"),
        }
    }
    assert_eq!((delivered.len(), held), (CODES, CARDS - CODES));
    drop((one, two));
}
