//! `ordo bench`: the figures BENCHMARKS.md reports. Everything runs on this machine:
//! (a) durable order placement in-process, SQLite and PostgreSQL; (b) a flash sale
//! on one SKU; (c) HTTP end to end with a built-in load generator on loopback;
//! (d) (a) with batching off. Prints one JSON document.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use ordo_core::auth::{Principal, Role};
use ordo_core::batch::{LineRequest, StockChange};
use ordo_core::order::{Address, Buyer};
use ordo_core::{Currency, ShopId};
use ordo_engine::{Engine, EngineConfig, NewOrder, NewProduct, NewWarehouse};
use ordo_store::DynStore;
use ordo_store_sqlite::Durability;
use serde_json::{Value, json};

use crate::anyhow_like::Result;
use crate::client::{Conn, RawConn};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Orders per placement run.
    #[arg(long, default_value_t = 50_000)]
    pub orders: usize,
    /// Most orders per group commit in the batched runs.
    #[arg(long, default_value_t = 1024)]
    pub batch_max: usize,
    /// Concurrent submitting tasks (buyers).
    #[arg(long, default_value_t = 1000)]
    pub concurrency: usize,
    /// Flash-sale attempts and units.
    #[arg(long, default_value_t = 100_000)]
    pub flash_attempts: usize,
    #[arg(long, default_value_t = 10_000)]
    pub flash_units: i64,
    /// PostgreSQL server to benchmark against (a scratch database is created on it).
    #[arg(
        long,
        env = "ORDO_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub postgres: String,
    #[arg(long)]
    pub skip_postgres: bool,
    #[arg(long)]
    pub skip_http: bool,
    /// Seconds per HTTP phase.
    #[arg(long, default_value_t = 10)]
    pub http_seconds: u64,
    /// HTTP connections of the load generator.
    #[arg(long, default_value_t = 128)]
    pub http_connections: usize,
    /// Orders for the batching-off run (it is slow by design).
    #[arg(long, default_value_t = 3_000)]
    pub naive_orders: usize,
    /// Run only one scenario: `placement`, `flash-sale`, `http`, `intake` or `import`.
    #[arg(long, value_enum)]
    pub only: Option<Scenario>,
    /// Shopify webhooks posted in the intake scenario (each a distinct order).
    #[arg(long, default_value_t = 50_000)]
    pub intake_orders: usize,
    /// HTTP connections posting webhooks in the intake scenario.
    #[arg(long, default_value_t = 128)]
    pub intake_connections: usize,
    /// Offer the intake scenario's webhooks at this many per second, as buyers' orders
    /// arrive (latency then counts from each webhook's scheduled time: one that finds
    /// every connection busy waits, and its wait counts); 0 posts them back to back on
    /// every connection.
    #[arg(long, default_value_t = 0.0)]
    pub intake_rate: f64,
    /// CSV rows (one-line orders) in the import scenario.
    #[arg(long, default_value_t = 200_000)]
    pub import_rows: usize,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// (a) and (d): durable placement in-process, batched and unbatched.
    Placement,
    /// (b) the flash sale.
    FlashSale,
    /// (c) HTTP end to end.
    Http,
    /// (e) Shopify webhooks over HTTP, signatures checked.
    Intake,
    /// (f) CSV import (SQLite, and PostgreSQL unless skipped).
    Import,
}

pub async fn run(args: BenchArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("ordo-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut report = serde_json::Map::new();
    report.insert(
        "machine".into(),
        json!({
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "server_worker_threads": tokio::runtime::Handle::current().metrics().num_workers(),
        }),
    );

    // ORDO_BENCH_KEEP=1 leaves the databases behind, to look at what a run wrote.
    let keep = std::env::var_os("ORDO_BENCH_KEEP").is_some();
    let sqlite = |name: &str| format!("sqlite://{}", dir.join(name).display());
    let wants = |x: Scenario| args.only.is_none_or(|o| o == x);
    if wants(Scenario::Placement) {
        let store = crate::open_store(&sqlite("a.db"), Durability::Full).await?;
        report.insert(
            "a_sqlite_placement".into(),
            placement(store, args.batch_max, args.orders, args.concurrency).await?,
        );
        let store = crate::open_store(&sqlite("d.db"), Durability::Full).await?;
        report.insert(
            "d_sqlite_placement_unbatched".into(),
            placement(store, 1, args.naive_orders, args.concurrency).await?,
        );
    }
    if wants(Scenario::FlashSale) {
        let store = crate::open_store(&sqlite("b.db"), Durability::Full).await?;
        report.insert(
            "b_sqlite_flash_sale".into(),
            flash_sale(
                store,
                args.batch_max,
                args.flash_attempts,
                args.flash_units,
                args.concurrency,
            )
            .await?,
        );
    }

    if !args.skip_http && wants(Scenario::Http) {
        report.insert("c_http_sqlite".into(), http(&sqlite("c.db"), &args).await?);
    }
    if wants(Scenario::Intake) {
        report.insert(
            "e_shopify_intake_http_sqlite".into(),
            intake(&sqlite("e.db"), &args).await?,
        );
    }
    if wants(Scenario::Import) {
        report.insert(
            "f_csv_import_sqlite".into(),
            import(&sqlite("f.db"), args.import_rows, args.batch_max).await?,
        );
    }
    // PostgreSQL last: its server goes on working after a run (writing back, vacuuming
    // the imported rows), which would otherwise fall into the SQLite scenarios' figures.
    let on_postgres = [Scenario::Placement, Scenario::FlashSale, Scenario::Import];
    if !args.skip_postgres && on_postgres.into_iter().any(wants) {
        match scratch_postgres(&args.postgres).await {
            Ok((url, name)) => {
                if wants(Scenario::Placement) {
                    let store = crate::open_store(&url, Durability::Full).await?;
                    report.insert(
                        "a_postgres_placement".into(),
                        placement(store, args.batch_max, args.orders, args.concurrency).await?,
                    );
                    let store = crate::open_store(&url, Durability::Full).await?;
                    report.insert(
                        "d_postgres_placement_unbatched".into(),
                        placement(store, 1, args.naive_orders, args.concurrency).await?,
                    );
                }
                if wants(Scenario::FlashSale) {
                    let store = crate::open_store(&url, Durability::Full).await?;
                    report.insert(
                        "b_postgres_flash_sale".into(),
                        flash_sale(
                            store,
                            args.batch_max,
                            args.flash_attempts,
                            args.flash_units,
                            args.concurrency,
                        )
                        .await?,
                    );
                }
                if wants(Scenario::Import) {
                    report.insert(
                        "f_csv_import_postgres".into(),
                        import(&url, args.import_rows, args.batch_max).await?,
                    );
                }
                if !keep {
                    drop_scratch_postgres(&args.postgres, &name).await;
                }
            }
            Err(e) => {
                report.insert("postgres".into(), json!({ "skipped": e.to_string() }));
            }
        }
    }
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("{}", serde_json::to_string_pretty(&Value::Object(report))?);
    Ok(())
}

/// Creates a fresh database on the server and returns its URL and name.
async fn scratch_postgres(url: &str) -> Result<(String, String)> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let name = format!("ordo_bench_{}", std::process::id());
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await?;
    client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    Ok((format!("{base}/{name}"), name))
}

/// Drops the scratch database (a run leaves hundreds of MB in it); pools of the
/// finished scenarios may still hold connections, hence `FORCE`. Best effort.
async fn drop_scratch_postgres(url: &str, name: &str) {
    if let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        if let Err(e) = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
        {
            eprintln!("bench: could not drop the scratch database {name}: {e}");
        }
    }
}

struct Fixture {
    engine: Engine,
    shop: ShopId,
    skus: Vec<String>,
    owner: String,
}

/// The engine every scenario runs: the load generator is one key at full speed, so no rate limit.
fn bench_engine(store: DynStore, batch_max: usize) -> Engine {
    let mut config = EngineConfig::new("bench-admin-token");
    config.batch_max = batch_max;
    config.writers = std::env::var("ORDO_WRITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    config.queue_capacity = 1 << 20;
    config.rate_limit.per_sec = 0; // the load generator is one key at full speed
    Engine::start(store, crate::system_clock(), config)
}

async fn fixture(store: DynStore, batch_max: usize, skus: usize, units: i64) -> Result<Fixture> {
    let engine = bench_engine(store, batch_max);
    let admin = Principal::PlatformAdmin;
    let shop = engine.create_shop(&admin, "bench", Currency::CNY).await?;
    let owner = engine.issue_key(&admin, shop.id, Role::Owner, "bench").await?.secret;
    let w = engine
        .create_warehouse(
            &admin,
            Some(shop.id),
            NewWarehouse {
                code: "W1".into(),
                name: "bench".into(),
                region: "CN-SH".into(),
            },
        )
        .await?;
    let mut names = Vec::new();
    for i in 0..skus {
        let sku = format!("B-{i:04}");
        let p = NewProduct {
            sku: sku.clone(),
            name: format!("bench {i}"),
            kind: ordo_core::catalog::ProductKind::Physical,
            price_minor: 1999,
            weight_g: 300,
            on_sale: true,
            attributes: Default::default(),
            presale_ships_at: None,
        };
        engine.create_product(&admin, Some(shop.id), p).await?;
        engine
            .adjust_stock(&admin, Some(shop.id), &sku, w.id, StockChange::Delta(units), None)
            .await?;
        names.push(sku);
    }
    Ok(Fixture {
        engine,
        shop: shop.id,
        skus: names,
        owner,
    })
}

fn order_for(sku: String, n: usize) -> NewOrder {
    NewOrder {
        channel: "bench".into(),
        external_id: None,
        buyer: Buyer {
            id: format!("b{n}"),
            name: Some("买家".into()),
            phone: Some("13800000000".into()),
            email: None,
        },
        shipping_address: Some(address()),
        lines: vec![LineRequest { sku, quantity: 1 }],
        shipping_minor: 0,
        note: None,
        payment_method: None,
        coupon_codes: vec![],
    }
}

fn address() -> Address {
    Address {
        recipient: "买家".into(),
        phone: "13800000000".into(),
        country: "CN".into(),
        province: "上海市".into(),
        city: "上海市".into(),
        district: Some("浦东新区".into()),
        line1: "世纪大道 100 号".into(),
        line2: None,
        postal_code: None,
    }
}

/// Commands per committed transaction, from the engine's own counters.
fn mean_batch(engine: &Engine) -> f64 {
    let text = engine.metrics_text();
    let counter = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let batches = counter("ordo_batches_committed_total ");
    if batches == 0.0 {
        0.0
    } else {
        (counter("ordo_batch_commands_total ") / batches * 10.0).round() / 10.0
    }
}

fn percentile(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    sorted_us[i] as f64 / 1000.0
}

/// Places `orders` orders from `concurrency` tasks, each awaiting its durable commit.
async fn placement(store: DynStore, batch_max: usize, orders: usize, concurrency: usize) -> Result<Value> {
    let backend = store.backend();
    let f = Arc::new(fixture(store, batch_max, 100, 1_000_000_000).await?);
    let next = Arc::new(AtomicU64::new(0));
    let generator = load_generator()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(generator.spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0u64;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                if n >= orders {
                    return (lat, failed);
                }
                let sku = f.skus[n % f.skus.len()].clone();
                let t = Instant::now();
                match f
                    .engine
                    .place_order(&Principal::PlatformAdmin, Some(f.shop), order_for(sku, n), None)
                    .await
                {
                    Ok(_) => lat.push(t.elapsed().as_micros() as u64),
                    Err(_) => failed += 1,
                }
            }
        }));
    }
    let mut lat = Vec::with_capacity(orders);
    let mut failed = 0;
    for (l, fl) in finish(generator, tasks).await? {
        lat.extend(l);
        failed += fl;
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    Ok(json!({
        "backend": backend, "batch_max": batch_max, "mean_batch": mean_batch(&f.engine), "orders": lat.len(), "failed": failed, "concurrency": concurrency,
        "seconds": secs, "orders_per_sec": (lat.len() as f64 / secs).round(),
        "p50_ms": percentile(&lat, 0.50), "p99_ms": percentile(&lat, 0.99),
    }))
}

/// Many buyers race for one SKU: exactly `units` must succeed.
async fn flash_sale(
    store: DynStore,
    batch_max: usize,
    attempts: usize,
    units: i64,
    concurrency: usize,
) -> Result<Value> {
    let backend = store.backend();
    let f = Arc::new(fixture(store, batch_max, 1, units).await?);
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let generator = load_generator()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (f, next, ok) = (f.clone(), next.clone(), ok.clone());
        tasks.push(generator.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                if n >= attempts {
                    return;
                }
                let order = order_for(f.skus[0].clone(), n);
                if f.engine
                    .place_order(&Principal::PlatformAdmin, Some(f.shop), order, None)
                    .await
                    .is_ok()
                {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    finish(generator, tasks).await?;
    let secs = started.elapsed().as_secs_f64();
    let (_, levels) = f
        .engine
        .stock_of(&Principal::PlatformAdmin, Some(f.shop), &f.skus[0])
        .await?;
    let successes = ok.load(Ordering::Relaxed);
    Ok(json!({
        "backend": backend, "attempts": attempts, "units": units, "successes": successes,
        "exact": successes == units as u64, "reserved_after": levels.iter().map(|l| l.reserved).sum::<i64>(),
        "seconds": secs, "attempts_per_sec": (attempts as f64 / secs).round(),
    }))
}

/// HTTP end to end: closed-loop peak, then a paced run at 80 % of it.
async fn http(database: &str, args: &BenchArgs) -> Result<Value> {
    let store = crate::open_store(database, Durability::Full).await?;
    let f = fixture(store, 1024, 100, 1_000_000_000).await?;
    let router = ordo_api::router(f.engine.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    let f = Arc::new(f);
    let peak = load(
        addr,
        &f,
        args.http_connections,
        Duration::from_secs(args.http_seconds),
        None,
    )
    .await?;
    let peak_rate = peak["orders_per_sec"].as_f64().unwrap_or(0.0);
    let paced = load(
        addr,
        &f,
        args.http_connections,
        Duration::from_secs(args.http_seconds),
        Some(peak_rate * 0.8),
    )
    .await?;
    Ok(json!({ "peak": peak, "at_80_percent": paced, "note": "server and load generator share this machine's cores" }))
}

async fn load(
    addr: std::net::SocketAddr,
    f: &Arc<Fixture>,
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
) -> Result<Value> {
    let deadline = Instant::now() + duration;
    let counter = Arc::new(AtomicU64::new(0));
    let generator = load_generator()?;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (f, counter) = (f.clone(), counter.clone());
        let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r.max(1.0)));
        tasks.push(generator.spawn(async move {
            let mut conn = match Conn::open(addr).await {
                Ok(c) => c,
                Err(_) => return (Vec::new(), 1u64),
            };
            let auth = format!("Bearer {}", f.owner);
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut next_send = Instant::now() + Duration::from_millis((c % 100) as u64);
            while Instant::now() < deadline {
                if let Some(i) = interval {
                    tokio::time::sleep_until(next_send.into()).await;
                    next_send += i;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let key = format!("bench-{n}");
                let body = json!({
                    "buyer": { "id": format!("b{n}"), "name": "买家", "phone": "13800000000" },
                    "shipping_address": { "recipient": "买家", "phone": "13800000000", "country": "CN", "province": "上海市", "city": "上海市", "line1": "世纪大道 100 号" },
                    "lines": [{ "sku": f.skus[n as usize % f.skus.len()], "quantity": 1 }]
                });
                let t = Instant::now();
                let headers = [("authorization", auth.as_str()), ("idempotency-key", key.as_str())];
                match conn.send(hyper::Method::POST, "/api/v1/orders", &headers, Some(body.to_string().into_bytes())).await {
                    Ok(r) if r.status == 201 => lat.push(t.elapsed().as_micros() as u64),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let started = Instant::now();
    let mut lat = Vec::new();
    let mut errors = 0;
    for (l, e) in finish(generator, tasks).await? {
        lat.extend(l);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64().max(duration.as_secs_f64());
    lat.sort_unstable();
    Ok(json!({
        "connections": connections, "target_rate": rate, "orders": lat.len(), "errors": errors, "seconds": secs,
        "orders_per_sec": (lat.len() as f64 / secs).round(), "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99),
    }))
}

/// The load generator's own runtime, one thread: the server's runtime serves only
/// the server, as it would with the clients on other machines.
fn load_generator() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ordo-bench-load")
        .enable_all()
        .build()?)
}

/// Awaits every task, then stops the generator's runtime (dropping it inside async
/// code would panic), and only then reports a task that failed.
async fn finish<T>(generator: tokio::runtime::Runtime, tasks: Vec<tokio::task::JoinHandle<T>>) -> Result<Vec<T>> {
    let mut done = Vec::with_capacity(tasks.len());
    for t in tasks {
        done.push(t.await);
    }
    generator.shutdown_background();
    let done: std::result::Result<Vec<T>, tokio::task::JoinError> = done.into_iter().collect();
    Ok(done?)
}

/// Shopify's documented `orders/create` payload (three lines, paid, US address).
const SHOPIFY_PAID: &str = include_str!("../../ordo-channels/tests/fixtures/shopify-order-paid.json");
const SHOPIFY_SECRET: &str = "bench-shopify-app-secret-0123456789";

/// Shopify webhooks over HTTP: `--intake-orders` distinct paid orders, each signed like
/// Shopify signs them, posted by `--intake-connections` keep-alive connections, back to
/// back or at `--intake-rate` a second. The server verifies every
/// signature, parses the body, maps the lines and durably stores the raw order with the
/// order, its captured payment and events before answering 201.
async fn intake(database: &str, args: &BenchArgs) -> Result<Value> {
    let (orders, connections) = (args.intake_orders, args.intake_connections);
    let rate = (args.intake_rate > 0.0).then_some(args.intake_rate);
    let store = crate::open_store(database, Durability::Full).await?;
    let engine = bench_engine(store, 1024);
    let admin = Principal::PlatformAdmin;
    let shop = engine.create_shop(&admin, "shopify bench", Currency::USD).await?.id;
    let w = engine
        .create_warehouse(
            &admin,
            Some(shop),
            NewWarehouse {
                code: "US1".into(),
                name: "bench".into(),
                region: "US-NY".into(),
            },
        )
        .await?;
    for (sku, price) in [("SWTR-MER-M-NVY", 8900), ("CUP-CELADON-01", 2450), ("GIFT-WRAP", 500)] {
        let p = NewProduct {
            sku: sku.into(),
            name: sku.into(),
            kind: ordo_core::catalog::ProductKind::Physical,
            price_minor: price,
            weight_g: 300,
            on_sale: true,
            attributes: Default::default(),
            presale_ships_at: None,
        };
        engine.create_product(&admin, Some(shop), p).await?;
        engine
            .adjust_stock(&admin, Some(shop), sku, w.id, StockChange::Delta(1_000_000_000), None)
            .await?;
    }
    engine
        .configure_channel(&admin, Some(shop), "shopify", SHOPIFY_SECRET)
        .await?;
    // The fixture's gift-wrap line has no seller SKU: it is mapped by its variant.
    let gift_wrap = ordo_core::channel::SkuMapping {
        channel_key: "variant:43012934664357".into(),
        sku: "GIFT-WRAP".into(),
    };
    engine
        .put_sku_mappings(&admin, Some(shop), "shopify", vec![gift_wrap])
        .await?;
    let router = ordo_api::router(engine.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });

    // Requests as Shopify sends them (compact JSON), a distinct order id each, signed
    // and encoded before the clock starts: the generator's HMAC is not counted, the
    // server's is.
    let path = format!("/api/v1/channels/shopify/orders?shop={shop}");
    let mut template: Value = serde_json::from_str(SHOPIFY_PAID)?;
    let mut requests = Vec::with_capacity(orders);
    let mut body_bytes = 0;
    for n in 0..orders {
        template["id"] = json!(6_000_000_000_000u64 + n as u64);
        template["name"] = json!(format!("#{}", 1001 + n));
        template["order_number"] = json!(1001 + n);
        let body = serde_json::to_vec(&template)?;
        body_bytes = body.len();
        let signature = ordo_channels::sign(SHOPIFY_SECRET.as_bytes(), &body);
        let headers = [
            ("x-shopify-hmac-sha256", signature.as_str()),
            ("x-shopify-topic", "orders/create"),
        ];
        requests.push(RawConn::encode(addr, "POST", &path, &headers, &body));
    }
    let requests = Arc::new(requests);

    let next = Arc::new(AtomicU64::new(0));
    let generator = load_generator()?;
    // The clock starts once every connection is open, so the first webhooks of an
    // open-loop run are not late by the time it took to connect.
    let connected = Arc::new(tokio::sync::Barrier::new(connections.max(1)));
    let start = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let (requests, next, connected, start) = (requests.clone(), next.clone(), connected.clone(), start.clone());
        tasks.push(generator.spawn(async move {
            let mut lat = Vec::new();
            let mut errors: Vec<String> = Vec::new();
            let opened = RawConn::open(addr).await;
            connected.wait().await;
            let started = *start.get_or_init(Instant::now);
            let mut conn = match opened {
                Ok(c) => c,
                Err(e) => return (lat, vec![format!("connect: {e}")]),
            };
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(request) = requests.get(n) else {
                    return (lat, errors);
                };
                // Open loop: a webhook late because every connection was busy counts
                // its wait too.
                let t = match rate {
                    Some(r) => {
                        let due = started + Duration::from_secs_f64(n as f64 / r);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                match conn.roundtrip(request).await {
                    Ok((201, _)) => lat.push(t.elapsed().as_micros() as u64),
                    Ok((status, body)) => errors.push(format!("{status}: {}", String::from_utf8_lossy(&body))),
                    Err(e) => {
                        errors.push(format!("request: {e}"));
                        match RawConn::open(addr).await {
                            Ok(c) => conn = c,
                            Err(_) => return (lat, errors),
                        }
                    }
                }
            }
        }));
    }
    let mut lat = Vec::with_capacity(orders);
    let mut errors = Vec::new();
    let results = finish(generator, tasks).await?;
    let secs = start.get().map_or(0.0, |s| s.elapsed().as_secs_f64());
    for (l, e) in results {
        lat.extend(l);
        errors.extend(e);
    }
    lat.sort_unstable();
    for e in errors.iter().take(5) {
        eprintln!("intake: not 201: {e}");
    }
    Ok(json!({
        "channel": "shopify", "orders": orders, "created_201": lat.len(), "errors": errors.len(),
        "error_samples": errors.iter().take(5).collect::<Vec<_>>(), "connections": connections,
        "offered_per_sec": rate,
        "body_bytes": body_bytes, "mean_batch": mean_batch(&engine), "seconds": secs,
        "orders_per_sec": (lat.len() as f64 / secs).round(),
        "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99),
        "note": "server and load generator share this machine's cores; bodies signed before the clock starts",
    }))
}

/// CSV import through `Engine::import_orders` (what `ordo import orders` and
/// `POST /api/v1/orders/import` run): `rows` one-line orders, then the same file again.
async fn import(database: &str, rows: usize, batch_max: usize) -> Result<Value> {
    let store = crate::open_store(database, Durability::Full).await?;
    let f = fixture(store, batch_max, 100, 1_000_000_000).await?;
    let mut csv = String::with_capacity(rows * 120);
    csv.push_str(
        "external_id,buyer_id,buyer_name,recipient,phone,province,city,district,line1,sku,quantity,shipping_minor,note\n",
    );
    for n in 0..rows {
        let (province, city, district) = if n % 2 == 0 {
            ("广东省", "深圳市", "南山区")
        } else {
            ("上海市", "上海市", "浦东新区")
        };
        let sku = &f.skus[n % f.skus.len()];
        csv.push_str(&format!(
            "IMP-{n},b{n},张三,张三,13812345678,{province},{city},{district},科技园路 {n} 号,{sku},1,0,\n"
        ));
    }
    let admin = Principal::PlatformAdmin;
    let mut runs = Vec::new();
    for pass in ["first", "again"] {
        let started = Instant::now();
        let report = f
            .engine
            .import_orders(&admin, Some(f.shop), "csv", csv.as_bytes(), |_, _| {})
            .await?;
        let secs = started.elapsed().as_secs_f64();
        let rejected: Vec<_> = report
            .results
            .iter()
            .filter_map(|r| r.error.as_ref().map(|e| format!("line {}: {e}", r.line)))
            .take(5)
            .collect();
        for e in &rejected {
            eprintln!("import: rejected {e}");
        }
        runs.push(json!({
            "pass": pass, "rows": report.rows, "orders_created": report.orders_created,
            "orders_duplicate": report.orders_duplicate, "rows_rejected": report.rows_rejected,
            "rejected_samples": rejected, "seconds": secs, "rows_per_sec": (report.rows as f64 / secs).round(),
        }));
    }
    Ok(json!({ "csv_bytes": csv.len(), "batch_max": batch_max, "mean_batch": mean_batch(&f.engine), "runs": runs }))
}
