//! Buyer notifications (K1), the imperative shell around `ordo_core::notify`.
//!
//! The [`Notifier`] follows the event log: it plans what each new event tells the
//! buyer, records that in the store's delivery log (idempotently per event and
//! channel) and advances its cursor; then it sends what is due through the
//! [`Provider`] configured for the channel, records every attempt, and retries
//! failures on the core's backoff schedule until they are sent or `failed`.
//! It only reads orders: a notification failure never blocks or changes one.

mod file;
mod provider;
mod sms;
mod smtp;
mod tls;
mod worker;

pub use file::FileProvider;
pub use provider::{Provider, ProviderError, ProviderReceipt};
pub use sms::HttpSmsProvider;
pub use smtp::SmtpProvider;
pub use worker::{CodeSource, Notifier, Providers, RoundReport};
