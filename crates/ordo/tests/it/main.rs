//! Ordo's integration tests: one binary that starts the real server (in-process on
//! port 0, or as `ordo serve` child processes) against real databases.

mod api;
mod channels;
mod codes;
mod fulfilment;
mod limits;
mod notifications;
mod payments;
mod process;
mod refunds;
mod support;
