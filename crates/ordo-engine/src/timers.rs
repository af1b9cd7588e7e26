//! Durable timers. A payment deadline is a column of the order, so it survives
//! restarts; the worker asks the store what is due by the injected clock and
//! feeds expiry commands through the writer like any other write.

use std::time::Duration;

use ordo_core::batch::{Command, Outcome};

use crate::metrics::Metrics;
use crate::{Engine, EngineResult};

const DUE_PER_ROUND: u32 = 1000;

impl Engine {
    /// Cancels every unpaid order whose deadline has passed; returns how many.
    /// Tests call this after advancing a manual clock.
    pub async fn run_due_timers(&self) -> EngineResult<usize> {
        let mut expired = 0;
        loop {
            let due = self.inner.store.due_unpaid(self.now(), DUE_PER_ROUND).await?;
            let round = due.len();
            let waits: Vec<_> = due
                .into_iter()
                .map(|(shop, order)| self.submit(Command::ExpireUnpaid { shop, order }))
                .collect();
            for result in futures_util::future::join_all(waits).await {
                if let Ok(Outcome::Order { .. }) = result {
                    expired += 1;
                }
            }
            if round < DUE_PER_ROUND as usize {
                break;
            }
        }
        Metrics::add(&self.inner.metrics.payments_timed_out, expired as u64);
        Ok(expired)
    }

    /// Fires every payment reminder that is due; returns how many were sent.
    pub async fn run_due_reminders(&self) -> EngineResult<usize> {
        let mut sent = 0;
        loop {
            let due = self.inner.store.due_reminders(self.now(), DUE_PER_ROUND).await?;
            let round = due.len();
            let waits: Vec<_> = due
                .into_iter()
                .map(|(shop, order)| self.submit(Command::RemindUnpaid { shop, order }))
                .collect();
            sent += futures_util::future::join_all(waits)
                .await
                .into_iter()
                .filter(|r| matches!(r, Ok(Outcome::Order { .. })))
                .count();
            if round < DUE_PER_ROUND as usize {
                return Ok(sent);
            }
        }
    }

    /// Runs the timers every `every` until the engine is dropped.
    pub fn spawn_timer_worker(&self, every: Duration) {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = engine.run_due_reminders().await {
                    tracing::warn!(error = %e, "payment reminder round failed");
                }
                if let Err(e) = engine.run_due_timers().await {
                    tracing::warn!(error = %e, "payment timeout round failed");
                }
            }
        });
    }
}
