//! The `ordo` binary's library half: opening a store from a URL, starting the
//! server, seeding the demo and running the benchmarks. Integration tests use it
//! to start the real thing.

pub mod bench;
pub mod client;
pub mod demo;
pub mod notify;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ordo_engine::{Clock, Engine, EngineConfig, SystemClock};
use ordo_store::{DynStore, StoreError};
use ordo_store_sqlite::{Durability, SqliteStore};

/// Opens the store a URL names: `sqlite://PATH` (or a bare path) or `postgres://…`.
/// Both create or migrate their schema.
pub async fn open_store(url: &str, durability: Durability) -> Result<DynStore, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = ordo_store_postgres::PgStore::connect(url).await?;
        store.migrate().await?;
        return Ok(Arc::new(store));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.to_string();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(path, durability))
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
    Ok(Arc::new(store))
}

pub struct ServerOptions {
    pub listen: SocketAddr,
    pub database: String,
    pub admin_token: String,
    pub durability: Durability,
    pub batch_max: usize,
    pub writers: usize,
    pub rate_limit: ordo_engine::RateLimit,
    /// Seals virtual goods' codes at rest (64 hex digits); without it codes cannot be added.
    pub codes_key: Option<ordo_engine::codes::CodesKey>,
}

pub struct Running {
    pub addr: SocketAddr,
    pub engine: Engine,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Opens the store, starts the engine, its timer worker and the HTTP server.
pub async fn start(opts: ServerOptions, clock: Arc<dyn Clock>) -> anyhow_like::Result<Running> {
    let store = open_store(&opts.database, opts.durability).await?;
    let mut config = EngineConfig::new(&opts.admin_token);
    config.batch_max = opts.batch_max;
    config.writers = opts.writers;
    config.rate_limit = opts.rate_limit;
    config.codes_key = opts.codes_key;
    // Fault injection for the crash-safety tests only.
    config.crash_after_commits = std::env::var("ORDO_FAILPOINT_CRASH_AFTER_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok());
    let engine = Engine::start(store, clock, config);
    engine.spawn_timer_worker(Duration::from_secs(1));
    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    let addr = listener.local_addr()?;
    let app = ordo_api::router(engine.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
    });
    Ok(Running { addr, engine, server })
}

/// The request runtime's worker threads when none are asked for: one core fewer than
/// the machine has (at least one). The store commits on threads of its own (on
/// SQLite the decider and the writer, every request's serial path); with a worker
/// on every core too, they and the workers crowd the same cores and hand work across
/// more of them. On this project's 2-core machine one worker took Shopify intake
/// ~7 % further on average (BENCHMARKS.md, eleventh pass).
pub fn default_worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .saturating_sub(1)
        .max(1)
}

/// The multi-threaded tokio runtime the server (and every command) runs on;
/// `workers` 0 means [`default_worker_threads`].
pub fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let workers = match workers {
        0 => default_worker_threads(),
        n => n,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
}

pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// A tiny boxed error for the binary's top level (no extra dependency).
pub mod anyhow_like {
    pub type Error = Box<dyn std::error::Error + Send + Sync>;
    pub type Result<T> = std::result::Result<T, Error>;
}
