//! Counters exported at `/metrics` in Prometheus text format. Plain atomics: the
//! hot path pays one relaxed add per count.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct Metrics {
    pub orders_placed: AtomicU64,
    pub commands_ok: AtomicU64,
    pub commands_rejected: AtomicU64,
    pub batches_committed: AtomicU64,
    pub batch_commands: AtomicU64,
    pub batch_retries: AtomicU64,
    pub batch_failures: AtomicU64,
    pub overloaded: AtomicU64,
    pub payments_timed_out: AtomicU64,
    pub http_requests: AtomicU64,
    pub http_errors: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn render(&self, queue_depth: usize, store: &[ordo_store::Gauge]) -> String {
        let mut out = String::new();
        let counters = [
            ("ordo_orders_placed_total", "Orders placed", &self.orders_placed),
            ("ordo_commands_ok_total", "Write commands applied", &self.commands_ok),
            (
                "ordo_commands_rejected_total",
                "Write commands rejected by a business rule",
                &self.commands_rejected,
            ),
            (
                "ordo_batches_committed_total",
                "Group-commit transactions committed",
                &self.batches_committed,
            ),
            (
                "ordo_batch_commands_total",
                "Commands carried by committed batches",
                &self.batch_commands,
            ),
            (
                "ordo_batch_retries_total",
                "Batches retried after a transient storage error",
                &self.batch_retries,
            ),
            (
                "ordo_batch_failures_total",
                "Batches that failed for good",
                &self.batch_failures,
            ),
            (
                "ordo_overloaded_total",
                "Commands refused because the queue was full",
                &self.overloaded,
            ),
            (
                "ordo_payments_timed_out_total",
                "Unpaid orders cancelled by the timeout",
                &self.payments_timed_out,
            ),
            ("ordo_http_requests_total", "HTTP requests served", &self.http_requests),
            (
                "ordo_http_errors_total",
                "HTTP responses with status >= 500",
                &self.http_errors,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Relaxed)
            );
        }
        let queue = ordo_store::Gauge {
            name: "ordo_write_queue_depth",
            help: "Commands waiting for the writer",
            value: queue_depth as u64,
        };
        for g in std::iter::once(&queue).chain(store) {
            let (name, help, value) = (g.name, g.help, g.value);
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        out
    }
}
