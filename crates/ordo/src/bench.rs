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
use crate::client::Conn;

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
}

pub async fn run(args: BenchArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("ordo-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut report = serde_json::Map::new();
    report.insert(
        "machine".into(),
        json!({ "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) }),
    );

    let sqlite = |name: &str| format!("sqlite://{}", dir.join(name).display());
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

    if !args.skip_postgres {
        match scratch_postgres(&args.postgres).await {
            Ok(url) => {
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
            Err(e) => {
                report.insert("postgres".into(), json!({ "skipped": e.to_string() }));
            }
        }
    }
    if !args.skip_http {
        report.insert("c_http_sqlite".into(), http(&sqlite("c.db"), &args).await?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", serde_json::to_string_pretty(&Value::Object(report))?);
    Ok(())
}

/// Creates a fresh database on the server and returns its URL.
async fn scratch_postgres(url: &str) -> Result<String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let name = format!("ordo_bench_{}", std::process::id());
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await?;
    client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

struct Fixture {
    engine: Engine,
    shop: ShopId,
    skus: Vec<String>,
    owner: String,
}

async fn fixture(store: DynStore, batch_max: usize, skus: usize, units: i64) -> Result<Fixture> {
    let mut config = EngineConfig::new("bench-admin-token");
    config.batch_max = batch_max;
    config.writers = std::env::var("ORDO_WRITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    config.queue_capacity = 1 << 20;
    config.rate_limit.per_sec = 0; // the load generator is one key at full speed
    let engine = Engine::start(store, crate::system_clock(), config);
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
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
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
    for t in tasks {
        let (l, fl) = t.await?;
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
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (f, next, ok) = (f.clone(), next.clone(), ok.clone());
        tasks.push(tokio::spawn(async move {
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
    for t in tasks {
        t.await?;
    }
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
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (f, counter) = (f.clone(), counter.clone());
        let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r.max(1.0)));
        tasks.push(tokio::spawn(async move {
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
    for t in tasks {
        let (l, e) = t.await?;
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
