//! Ordo's domain core: orders, inventory, payments and their state machines.
//!
//! Invariant: this crate does no I/O, spawns nothing, reads no clock and draws no
//! randomness. Time and new identifiers are handed in by the caller (see [`Context`]);
//! every function takes facts and returns decisions, events or typed errors.

pub mod address;
pub mod allocation;
pub mod auth;
pub mod batch;
pub mod catalog;
pub mod channel;
pub mod consolidation;
pub mod error;
pub mod event;
#[cfg(test)]
mod fixtures;
pub mod ids;
pub mod inventory;
pub mod limits;
pub mod money;
pub mod notify;
pub mod order;
pub mod payment;
pub mod promotion;
pub mod time;

pub use batch::{Command, Context, IdSource, Outcome, WorkingSet};
pub use error::CommandError;
pub use ids::*;
pub use money::{Currency, Money, MoneyError};
pub use time::Timestamp;
