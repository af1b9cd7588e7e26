//! Payment gateway notifications (B1). Each gateway's verifier turns a signed
//! request into a [`PaymentNotice`]; one path applies it, idempotently on
//! (shop, gateway, transaction id).
//!
//! - `generic`-format gateways (any name but the reserved ones): HMAC-SHA256 of
//!   `"{timestamp}.{raw body}"`, headers `Ordo-Timestamp` and `Ordo-Signature`.
//! - `stripe`: Stripe-style `Stripe-Signature: t=…,v1=…` over `"{t}.{raw body}"`.
//! - `alipay`: Alipay-style form post signed with RSA2 (SHA256withRSA), answered `success`.

mod alipay;
mod generic;
mod stripe;

use hmac::{Hmac, KeyInit, Mac};
use ordo_core::ShopId;
use ordo_core::batch::{Command, Outcome, PaymentResult};
use ordo_core::money::AMOUNT_MINOR_MAX;
use ordo_core::payment::PaymentNotice;
use sha2::Sha256;

pub use alipay::{signing_string as alipay_signing_string, yuan_to_fen};
pub use generic::{GenericNotice, NoticeStatus};
pub use stripe::sign_stripe;

use crate::{Engine, EngineError, EngineResult};

/// Gateway names with a protocol of their own.
pub const STRIPE: &str = "stripe";
pub const ALIPAY: &str = "alipay";

/// What a notification request carries, as the HTTP edge received it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub body: &'a [u8],
    /// `Ordo-Timestamp` and `Ordo-Signature` (generic format).
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    /// `Stripe-Signature`.
    pub stripe_signature: Option<&'a str>,
    /// The shop, when the gateway's notify URL names it (`?shop=`).
    pub shop: Option<ShopId>,
}

/// How the engine answered: the result, or that the event type is not a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Applied(PaymentResult),
    Ignored,
}

pub(crate) fn check_gateway_name(name: &str) -> EngineResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "invalid-gateway",
            "gateway names are 1 to 32 lowercase letters, digits or dashes",
        ))
    }
}

/// Hex HMAC-SHA256 of `"{timestamp}.{body}"`, the scheme both HMAC gateways use.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Constant-time check of a hex HMAC over `"{timestamp}.{body}"`.
fn verify_hmac(secret: &str, timestamp: i64, body: &[u8], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&signature).is_ok()
}

/// A notice's own fields must be sane before it reaches the core.
fn check_notice(n: &PaymentNotice) -> EngineResult<()> {
    if n.transaction_id.is_empty() || n.transaction_id.len() > 128 {
        return Err(EngineError::invalid(
            "invalid-notification",
            "transaction_id must have 1 to 128 characters",
        ));
    }
    if !(0..=AMOUNT_MINOR_MAX).contains(&n.amount_minor) {
        return Err(EngineError::invalid("money-out-of-range", "amount out of range"));
    }
    Ok(())
}

impl Engine {
    /// Verifies a gateway notification with the shop's secret for that gateway and
    /// applies it. A bad or stale signature is `BadSignature` and changes nothing.
    pub async fn payment_notify(&self, gateway: &str, inbound: Inbound<'_>) -> EngineResult<Answer> {
        check_gateway_name(gateway)?;
        let notice = match gateway {
            STRIPE => stripe::verify(self, inbound).await?,
            ALIPAY => alipay::verify(self, inbound).await?,
            _ => Some(generic::verify(self, gateway, inbound).await?),
        };
        let Some(notice) = notice else {
            return Ok(Answer::Ignored);
        };
        check_notice(&notice)?;
        match self.submit(Command::PaymentNotice(notice)).await? {
            Outcome::Payment { result, .. } => Ok(Answer::Applied(result)),
            _ => Err(crate::unexpected()),
        }
    }

    /// The secret a gateway signs with for `shop`; an unknown shop or gateway reads
    /// as a bad signature so nothing is revealed.
    async fn gateway_secret_of(&self, shop: ShopId, gateway: &str) -> EngineResult<String> {
        self.inner
            .store
            .gateway_secret(shop, gateway)
            .await?
            .ok_or(EngineError::BadSignature)
    }

    /// Rejects timestamps outside the allowed clock skew (replayed notifications).
    fn check_fresh(&self, timestamp: i64) -> EngineResult<()> {
        if (self.now().0 / 1000 - timestamp).abs() > self.inner.config.notify_tolerance_secs {
            return Err(EngineError::BadSignature);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_secret_time_and_body() {
        let sig = sign("s3cret-s3cret-s3cret", 1_700_000_000, b"{}");
        assert!(verify_hmac("s3cret-s3cret-s3cret", 1_700_000_000, b"{}", &sig));
        assert!(!verify_hmac("other-secret-other", 1_700_000_000, b"{}", &sig));
        assert!(!verify_hmac("s3cret-s3cret-s3cret", 1_700_000_001, b"{}", &sig));
        assert!(!verify_hmac("s3cret-s3cret-s3cret", 1_700_000_000, b"{ }", &sig));
        assert!(!verify_hmac("s3cret-s3cret-s3cret", 1_700_000_000, b"{}", "zz"));
    }
}
