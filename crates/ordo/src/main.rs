use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the write path allocates many small, short-lived values (ids, JSON);
/// measured faster than glibc malloc here. Its v2 line (the `v2` feature): values
/// made on the decider thread are freed on others, and v3 spent ~8 % of the decider
/// collecting those frees; v2 made the CSV import ~9 % faster (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use ordo::anyhow_like::Result;
use ordo::{ServerOptions, open_store, system_clock};
use ordo_store_sqlite::Durability;

#[derive(Parser)]
#[command(
    name = "ordo",
    version,
    about = "Ordo — order processing engine",
    propagate_version = true
)]
struct Cli {
    /// Worker threads of the async runtime that serves requests and runs imports (at most
    /// 1024); 0 means one fewer than the machine's cores, leaving a core to the store's
    /// commit threads.
    #[arg(
        long,
        global = true,
        env = "ORDO_WORKER_THREADS",
        default_value_t = 0,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1024)
    )]
    worker_threads: usize,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the HTTP API server (creates and migrates the database itself).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// `sqlite://PATH` (default `./ordo.db`) or `postgres://USER@HOST/DB`.
        #[arg(long, env = "ORDO_DATABASE_URL", default_value = "sqlite://ordo.db")]
        database: String,
        /// SQLite durability: `full` (fsync every commit; default) or `normal`.
        #[arg(long, env = "ORDO_SQLITE_SYNC", default_value = "full")]
        sqlite_sync: String,
        /// Most commands per group commit; 1 turns batching off.
        #[arg(long, env = "ORDO_BATCH_MAX", default_value_t = 1024)]
        batch_max: usize,
        /// Group commits in flight at once; 0 lets the store choose (on SQLite 3: one is decided
        /// while one is written and one fsynced; on PostgreSQL 2, whose transactions overlap).
        #[arg(long, env = "ORDO_WRITERS", default_value_t = 0)]
        writers: usize,
        /// Requests per second each API key may sustain (0 = unlimited); bursts up to 2.5× that.
        #[arg(long, env = "ORDO_RATE_LIMIT_PER_KEY", default_value_t = 2000)]
        rate_limit_per_key: u32,
        /// Seed a demo platform and keep a gentle stream of orders flowing.
        #[arg(long)]
        demo: bool,
        /// Key that seals virtual goods' codes at rest: 64 hex digits (`--demo` makes one up).
        #[arg(long, env = "ORDO_CODES_KEY", hide_env_values = true)]
        codes_key: Option<String>,
        #[command(flatten)]
        notify: NotifyArgs,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate {
        #[arg(long, env = "ORDO_DATABASE_URL", default_value = "sqlite://ordo.db")]
        database: String,
    },
    /// Measure throughput and latency; prints JSON (see BENCHMARKS.md).
    Bench(ordo::bench::BenchArgs),
    /// Bulk-import data from a file.
    #[command(subcommand)]
    Import(ImportCmd),
}

/// Buyer notifications (see README, "Notifications").
#[derive(clap::Args)]
struct NotifyArgs {
    /// Send e-mails through this SMTP server: `smtps://USER:PASSWORD@HOST[:465]`,
    /// `smtp://USER:PASSWORD@HOST[:587]?tls=required` (STARTTLS), or `HOST:PORT` (plain SMTP,
    /// no login: a local relay). Prefer the environment variable: it holds the password.
    #[arg(long, env = "ORDO_NOTIFY_SMTP", value_name = "URL", hide_env_values = true)]
    notify_smtp: Option<String>,
    /// The From address of e-mails, e.g. `Shop <shop@example.com>`.
    #[arg(long, env = "ORDO_NOTIFY_SMTP_FROM", value_name = "ADDR")]
    notify_smtp_from: Option<String>,
    /// Send text messages through this SMS gateway (https:// or http://); its key comes from
    /// ORDO_NOTIFY_SMS_KEY.
    #[arg(long, env = "ORDO_NOTIFY_SMS_URL", value_name = "URL")]
    notify_sms_url: Option<String>,
    /// Sender name of text messages.
    #[arg(long, env = "ORDO_NOTIFY_SMS_SENDER", default_value = "Ordo")]
    notify_sms_sender: String,
    /// Append messages to this file as JSON lines (for channels without SMTP / SMS gateway).
    /// `serve --demo` defaults to ./ordo-notifications.jsonl.
    #[arg(long, env = "ORDO_NOTIFY_FILE", value_name = "PATH")]
    notify_file: Option<std::path::PathBuf>,
    /// A PEM file of CA certificates to trust besides the public roots, for an SMTP server or
    /// SMS gateway whose certificate a private CA signed.
    #[arg(long, env = "ORDO_NOTIFY_CA", value_name = "PEM")]
    notify_ca: Option<std::path::PathBuf>,
}

impl NotifyArgs {
    fn options(self) -> ordo::notify::NotifyOptions {
        ordo::notify::NotifyOptions {
            smtp: self.notify_smtp,
            smtp_from: self.notify_smtp_from,
            sms_url: self.notify_sms_url,
            sms_key: std::env::var("ORDO_NOTIFY_SMS_KEY").ok(),
            sms_sender: self.notify_sms_sender,
            file: self.notify_file,
            trusted_ca: self.notify_ca,
        }
    }
}

#[derive(Subcommand)]
enum ImportCmd {
    /// Import orders from a CSV file (one row per order line; rows sharing an external_id
    /// make one order). Importing the same file again creates nothing new.
    Orders {
        /// The CSV file.
        file: std::path::PathBuf,
        /// The shop the orders belong to (`shop_…`).
        #[arg(long)]
        shop: String,
        /// Channel the orders are recorded under.
        #[arg(long, default_value = "csv")]
        channel: String,
        #[arg(long, env = "ORDO_DATABASE_URL", default_value = "sqlite://ordo.db")]
        database: String,
        /// Print the full per-row report as JSON instead of the rejected rows.
        #[arg(long)]
        json: bool,
    },
    /// Add codes (or links) to a virtual SKU's pool from a file, one per line; codes
    /// the pool holds already are skipped.
    Codes {
        /// The file: one code per line (blank lines are ignored).
        file: std::path::PathBuf,
        /// The shop (`shop_…`).
        #[arg(long)]
        shop: String,
        /// The virtual SKU whose pool takes the codes.
        #[arg(long)]
        sku: String,
        #[arg(long, env = "ORDO_DATABASE_URL", default_value = "sqlite://ordo.db")]
        database: String,
        /// The key codes are sealed with; must be the server's (64 hex digits).
        #[arg(long, env = "ORDO_CODES_KEY", hide_env_values = true)]
        codes_key: String,
    },
}

/// Draws `[#####-----]  512/1024 orders` on stderr.
fn progress_bar(done: usize, total: usize) {
    const WIDTH: usize = 30;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    eprint!(
        "\r[{}{}] {done:>7}/{total} orders",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled)
    );
}

fn durability(s: &str) -> Result<Durability> {
    match s {
        "full" => Ok(Durability::Full),
        "normal" => Ok(Durability::Normal),
        _ => Err("--sqlite-sync must be `full` or `normal`".into()),
    }
}

fn main() -> ExitCode {
    // ORDO_LOG: `info` (default), `debug` (every batch and request), or per target, e.g. `ordo_engine=debug`.
    let filter: tracing_subscriber::filter::Targets = std::env::var("ORDO_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| "info".parse().expect("valid filter"));
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .with(filter)
        .init();
    let cli = Cli::parse();
    let result = match ordo::runtime(cli.worker_threads) {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => Err(format!("cannot start the runtime: {e}").into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ordo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Serve {
            listen,
            database,
            sqlite_sync,
            batch_max,
            rate_limit_per_key,
            writers,
            demo,
            codes_key,
            notify,
        } => {
            let codes_key = match codes_key {
                Some(hex) => Some(ordo_engine::codes::CodesKey::from_hex(&hex)?),
                None if demo => Some(ordo::demo::codes_key(&database)?),
                None => None,
            };
            let providers = notify.options().providers(demo)?;
            let admin_token = match std::env::var("ORDO_ADMIN_TOKEN") {
                Ok(t) if !t.is_empty() => t,
                _ => {
                    let t = ordo_engine::auth::new_secret();
                    println!("admin token (shown once; set ORDO_ADMIN_TOKEN to choose your own): {t}");
                    t
                }
            };
            let opts = ServerOptions {
                listen,
                database,
                admin_token,
                durability: durability(&sqlite_sync)?,
                batch_max,
                writers,
                rate_limit: ordo_engine::RateLimit {
                    per_sec: rate_limit_per_key,
                    burst: rate_limit_per_key.saturating_mul(5) / 2,
                },
                codes_key,
            };
            let running = ordo::start(opts, system_clock()).await?;
            println!("ordo listening on http://{}", running.addr);
            ordo::notify::spawn(&running.engine, system_clock(), providers);
            if demo {
                let seeded = ordo::demo::seed(&running.engine).await?;
                seeded.print();
                ordo::demo::spawn_traffic(running.engine.clone(), seeded);
            }
            running.server.await??;
            Ok(())
        }
        Cmd::Migrate { database } => {
            let store = open_store(&database, Durability::Full).await?;
            println!("{} database is up to date", store.backend());
            Ok(())
        }
        Cmd::Bench(args) => ordo::bench::run(args).await,
        Cmd::Import(ImportCmd::Codes {
            file,
            shop,
            sku,
            database,
            codes_key,
        }) => {
            let shop: ordo_core::ShopId = shop.parse().map_err(|e| format!("--shop: {e}"))?;
            let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let codes: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            let store = open_store(&database, Durability::Full).await?;
            let mut config = ordo_engine::EngineConfig::new(&ordo_engine::auth::new_secret());
            config.codes_key = Some(ordo_engine::codes::CodesKey::from_hex(&codes_key)?);
            let engine = ordo_engine::Engine::start(store, system_clock(), config);
            let admin = ordo_core::auth::Principal::PlatformAdmin;
            let (mut added, mut duplicates, mut available) = (0, 0, 0);
            let chunks = codes.chunks(ordo_engine::codes::CODES_PER_REQUEST_MAX);
            let total = codes.len();
            for (i, chunk) in chunks.enumerate() {
                let done = engine.add_codes(&admin, Some(shop), &sku, chunk.to_vec()).await?;
                (added, duplicates, available) = (added + done.added, duplicates + done.duplicates, done.available);
                progress_bar(
                    (i * ordo_engine::codes::CODES_PER_REQUEST_MAX + chunk.len()).min(total),
                    total,
                );
            }
            eprintln!();
            println!("{total} codes: {added} added, {duplicates} already in the pool; {available} available");
            Ok(())
        }
        Cmd::Import(ImportCmd::Orders {
            file,
            shop,
            channel,
            database,
            json,
        }) => {
            let shop: ordo_core::ShopId = shop.parse().map_err(|e| format!("--shop: {e}"))?;
            let text = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let store = open_store(&database, Durability::Full).await?;
            let engine = ordo_engine::Engine::start(
                store,
                system_clock(),
                ordo_engine::EngineConfig::new(&ordo_engine::auth::new_secret()),
            );
            let admin = ordo_core::auth::Principal::PlatformAdmin;
            let report = engine
                .import_orders(&admin, Some(shop), &channel, &text, progress_bar)
                .await?;
            eprintln!();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for r in report.results.iter().filter(|r| r.error.is_some()) {
                    println!(
                        "line {}: {} ({})",
                        r.line,
                        r.error.as_deref().unwrap_or(""),
                        r.error_code.as_deref().unwrap_or("")
                    );
                }
                println!(
                    "{} rows: {} orders created, {} already imported, {} rows rejected",
                    report.rows, report.orders_created, report.orders_duplicate, report.rows_rejected
                );
            }
            Ok(())
        }
    }
}
