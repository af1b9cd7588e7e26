//! Payments and refunds (B1–B4).
//!
//! A payment is created pending with the amount the order expects and resolves
//! exactly once: captured, failed or expired. Refunds are recorded against a captured
//! payment and never exceed what it captured.

use serde::{Deserialize, Serialize};

use crate::auth::Actor;
use crate::{Currency, OrderId, PaymentId, RefundId, ShopId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Captured,
    Failed,
    Expired,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 4] = [
        PaymentStatus::Pending,
        PaymentStatus::Captured,
        PaymentStatus::Failed,
        PaymentStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentEvent {
    Capture,
    Fail,
    Expire,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {} payment has already resolved and cannot take `{event:?}`", from.as_str())]
pub struct PaymentTransitionError {
    pub from: PaymentStatus,
    pub event: PaymentEvent,
}

/// A payment resolves once: only `pending` moves.
pub fn payment_transition(from: PaymentStatus, event: PaymentEvent) -> Result<PaymentStatus, PaymentTransitionError> {
    match (from, event) {
        (PaymentStatus::Pending, PaymentEvent::Capture) => Ok(PaymentStatus::Captured),
        (PaymentStatus::Pending, PaymentEvent::Fail) => Ok(PaymentStatus::Failed),
        (PaymentStatus::Pending, PaymentEvent::Expire) => Ok(PaymentStatus::Expired),
        _ => Err(PaymentTransitionError { from, event }),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: PaymentId,
    pub shop: ShopId,
    pub order: OrderId,
    /// Gateway name, e.g. `generic`; set when a notification arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The gateway's transaction id, unique per (shop, gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    pub status: PaymentStatus,
    /// What the order asked for.
    pub expected_minor: i64,
    pub currency: Currency,
    /// What the gateway says it captured (may differ from expected: B3).
    pub captured_minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_currency: Option<Currency>,
    pub refunded_minor: i64,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
}

impl Payment {
    pub fn refundable_minor(&self) -> i64 {
        if self.status == PaymentStatus::Captured {
            self.captured_minor - self.refunded_minor
        } else {
            0
        }
    }

    pub fn resolve(&mut self, event: PaymentEvent, now: Timestamp) -> Result<(), PaymentTransitionError> {
        self.status = payment_transition(self.status, event)?;
        self.resolved_at = Some(now);
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: RefundId,
    pub shop: ShopId,
    pub order: OrderId,
    pub payment: PaymentId,
    pub amount_minor: i64,
    pub currency: Currency,
    pub reason: String,
    pub actor: Actor,
    pub created_at: Timestamp,
}

/// What a gateway said about a payment, after the shell verified its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentNotice {
    pub shop: ShopId,
    pub gateway: String,
    pub order: OrderId,
    pub transaction_id: String,
    pub succeeded: bool,
    pub amount_minor: i64,
    pub currency: Currency,
}

/// How a captured amount compares with what the order expects (B3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmountCheck {
    Exact,
    Under,
    Over,
    WrongCurrency,
}

pub fn check_amount(expected_minor: i64, currency: Currency, got_minor: i64, got_currency: Currency) -> AmountCheck {
    if got_currency != currency {
        AmountCheck::WrongCurrency
    } else if got_minor < expected_minor {
        AmountCheck::Under
    } else if got_minor > expected_minor {
        AmountCheck::Over
    } else {
        AmountCheck::Exact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payment_resolves_exactly_once() {
        let events = [PaymentEvent::Capture, PaymentEvent::Fail, PaymentEvent::Expire];
        for from in PaymentStatus::ALL {
            for event in events {
                let got = payment_transition(from, event);
                if from == PaymentStatus::Pending {
                    assert!(got.is_ok(), "{from:?} {event:?}");
                } else {
                    assert_eq!(got, Err(PaymentTransitionError { from, event }));
                }
            }
        }
    }

    #[test]
    fn amount_checks_classify_mismatches() {
        let c = Currency::CNY;
        assert_eq!(check_amount(100, c, 100, c), AmountCheck::Exact);
        assert_eq!(check_amount(100, c, 99, c), AmountCheck::Under);
        assert_eq!(check_amount(100, c, 101, c), AmountCheck::Over);
        assert_eq!(check_amount(100, c, 100, Currency::USD), AmountCheck::WrongCurrency);
    }
}
