//! Ordo's use cases: the imperative shell around the pure core.
//!
//! The engine authenticates callers, checks their role, turns requests into core
//! commands, queues writes for the group-commit [`writer`], and reads through the
//! store. It owns the clock and the id source the core is handed.

pub mod auth;
mod catalog;
pub mod channels;
pub mod clock;
pub mod codes;
mod error;
mod events;
pub mod gateway;
pub mod ids;
pub mod import;
pub mod metrics;
pub mod orders;
mod rate;
mod timers;
mod writer;

use std::sync::Arc;

use ordo_core::batch::{Command, Outcome};
use ordo_store::DynStore;
use tokio::sync::{Notify, mpsc, oneshot};

pub use auth::{IssuedKey, hash_secret};
pub use catalog::{NewProduct, NewWarehouse, ProductPatch};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{EngineError, EngineResult};
pub use orders::{NewOrder, OrderEdit, OrderPage, RefundOf};
pub use rate::RateLimit;

use crate::metrics::Metrics;
use crate::writer::{Submission, Writer};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most commands one group-commit transaction carries; 1 turns batching off.
    pub batch_max: usize,
    /// Batches in flight at once; 0 (the default) lets the store choose
    /// ([`ordo_store::Store::batches_in_flight`]): on SQLite one batch is decided
    /// while the last one is written and the one before is fsynced; on PostgreSQL a
    /// second overlaps one batch's commit with the next one's work.
    pub writers: usize,
    /// Commands that may wait for the writer before new ones are refused (back-pressure).
    pub queue_capacity: usize,
    /// SHA-256 of the platform admin token.
    pub admin_token_hash: String,
    /// Allowed clock skew for signed payment notifications.
    pub notify_tolerance_secs: i64,
    /// Fault injection for crash tests: abort the process right after the N-th
    /// batch commits, before any caller is answered. Never set in production.
    pub crash_after_commits: Option<u64>,
    pub rate_limit: RateLimit,
    /// Seals virtual goods' codes at rest; without it, codes cannot be added.
    pub codes_key: Option<codes::CodesKey>,
}

impl EngineConfig {
    pub fn new(admin_token: &str) -> Self {
        EngineConfig {
            batch_max: 1024,
            writers: 0,
            queue_capacity: 65_536,
            admin_token_hash: hash_secret(admin_token),
            notify_tolerance_secs: 300,
            crash_after_commits: None,
            rate_limit: RateLimit::default(),
            codes_key: None,
        }
    }
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: DynStore,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    queue: mpsc::Sender<Submission>,
    new_events: Arc<Notify>,
    metrics: Arc<Metrics>,
    keys: auth::KeyCache,
    channels: channels::ChannelCache,
    buckets: rate::Buckets,
    in_flight: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
}

impl Engine {
    /// Builds the engine and starts its writer task on the current tokio runtime.
    pub fn start(store: DynStore, clock: Arc<dyn Clock>, config: EngineConfig) -> Engine {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let metrics = Arc::new(Metrics::default());
        let new_events = Arc::new(Notify::new());
        let writer = Writer {
            store: store.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            new_events: new_events.clone(),
            batch_max: config.batch_max.max(1),
            crash_after_commits: config.crash_after_commits,
        };
        let (writer, rx) = (Arc::new(writer), Arc::new(tokio::sync::Mutex::new(rx)));
        let writers = match config.writers {
            0 => store.batches_in_flight(),
            n => n,
        };
        for _ in 0..writers.max(1) {
            tokio::spawn(writer.clone().run(rx.clone()));
        }
        Engine {
            inner: Arc::new(Inner {
                store,
                clock,
                config,
                queue: tx,
                new_events,
                metrics,
                keys: auth::KeyCache::default(),
                channels: channels::ChannelCache::default(),
                buckets: rate::Buckets::default(),
                in_flight: Default::default(),
            }),
        }
    }

    pub fn store(&self) -> &DynStore {
        &self.inner.store
    }

    pub fn now(&self) -> ordo_core::Timestamp {
        self.inner.clock.now()
    }

    pub fn metrics_text(&self) -> String {
        let depth = self.inner.queue.max_capacity() - self.inner.queue.capacity();
        self.inner.metrics.render(depth, &self.inner.store.gauges())
    }

    pub fn count_http(&self, server_error: bool) {
        Metrics::add(&self.inner.metrics.http_requests, 1);
        if server_error {
            Metrics::add(&self.inner.metrics.http_errors, 1);
        }
    }

    /// Queues a write and waits until it is durably committed (or rejected).
    /// A full queue is refused at once: callers get back-pressure, not a pile-up.
    pub(crate) async fn submit(&self, command: Command) -> EngineResult<Outcome> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .queue
            .try_send(Submission { command, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    Metrics::add(&self.inner.metrics.overloaded, 1);
                    EngineError::Overloaded
                }
                mpsc::error::TrySendError::Closed(_) => EngineError::Overloaded,
            })?;
        rx.await.map_err(|_| EngineError::Overloaded)?
    }
}

/// A command answered with an outcome of another kind: a bug, reported as a storage fault.
pub(crate) fn unexpected() -> EngineError {
    EngineError::Store(ordo_store::StoreError::Backend("unexpected outcome for command".into()))
}

/// The event a person's or integration's change outside the batch path appends
/// (shops, keys, catalogue): who did what to which subject, when.
pub(crate) fn audit_event(
    who: &ordo_core::auth::Principal,
    shop: ordo_core::ShopId,
    subject: impl ToString,
    kind: &'static str,
    payload: serde_json::Value,
    at: ordo_core::Timestamp,
) -> ordo_core::event::NewEvent {
    ordo_core::event::NewEvent {
        shop: Some(shop),
        subject: subject.to_string(),
        kind,
        payload: payload.into(),
        actor: ordo_core::auth::Actor::of(who),
        at,
    }
}
