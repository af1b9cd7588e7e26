//! Payment gateway notifications (B1). The generic gateway signs
//! `"{timestamp}.{raw body}"` with HMAC-SHA256 under a secret per shop and gateway,
//! sent as `Ordo-Timestamp` (Unix seconds) and `Ordo-Signature` (hex). Other
//! gateways (Alipay RSA2, Stripe) plug in as further verifiers.

use hmac::{Hmac, KeyInit, Mac};
use ordo_core::batch::{Command, Outcome, PaymentResult};
use ordo_core::payment::PaymentNotice;
use ordo_core::{Currency, OrderId, ShopId};
use serde::Deserialize;
use sha2::Sha256;

use crate::{Engine, EngineError, EngineResult};

/// The body a generic gateway posts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericNotice {
    pub shop_id: ShopId,
    pub order_id: OrderId,
    pub transaction_id: String,
    pub status: NoticeStatus,
    pub amount_minor: i64,
    pub currency: Currency,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NoticeStatus {
    Succeeded,
    Failed,
}

pub(crate) fn check_gateway_name(name: &str) -> EngineResult<()> {
    if name.is_empty()
        || name.len() > 32
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(EngineError::invalid(
            "invalid-gateway",
            "gateway names are 1 to 32 lowercase letters, digits or dashes",
        ));
    }
    Ok(())
}

/// Signs a notification the way the generic gateway does (used by tests, the demo
/// and the benchmark to play the gateway).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn verify(secret: &str, timestamp: i64, body: &[u8], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

impl Engine {
    /// Verifies and applies a generic gateway notification. Processing is
    /// idempotent on (shop, gateway, transaction id).
    pub async fn payment_notify(
        &self,
        gateway: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
    ) -> EngineResult<PaymentResult> {
        check_gateway_name(gateway)?;
        let timestamp: i64 = timestamp.trim().parse().map_err(|_| EngineError::BadSignature)?;
        let skew = (self.now().0 / 1000 - timestamp).abs();
        if skew > self.inner.config.notify_tolerance_secs {
            return Err(EngineError::BadSignature);
        }
        // The shop id is read before verification only to pick the secret to verify with.
        let notice: GenericNotice = serde_json::from_slice(body)
            .map_err(|e| EngineError::invalid("invalid-notification", format!("notification body: {e}")))?;
        let secret = self
            .inner
            .store
            .gateway_secret(notice.shop_id, gateway)
            .await?
            .ok_or(EngineError::BadSignature)?;
        if !verify(&secret, timestamp, body, signature) {
            return Err(EngineError::BadSignature);
        }
        if notice.transaction_id.is_empty() || notice.transaction_id.len() > 128 {
            return Err(EngineError::invalid(
                "invalid-notification",
                "transaction_id must have 1 to 128 characters",
            ));
        }
        if !(0..=ordo_core::money::AMOUNT_MINOR_MAX).contains(&notice.amount_minor) {
            return Err(EngineError::invalid("money-out-of-range", "amount_minor out of range"));
        }
        let cmd = Command::PaymentNotice(PaymentNotice {
            shop: notice.shop_id,
            gateway: gateway.to_string(),
            order: notice.order_id,
            transaction_id: notice.transaction_id,
            succeeded: notice.status == NoticeStatus::Succeeded,
            amount_minor: notice.amount_minor,
            currency: notice.currency,
        });
        match self.submit(cmd).await? {
            Outcome::Payment { result, .. } => Ok(result),
            _ => Err(EngineError::Store(ordo_store::StoreError::Backend(
                "unexpected outcome".into(),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_secret_time_and_body() {
        let sig = sign("s3cret-s3cret-s3cret", 1_700_000_000, b"{}");
        assert!(verify("s3cret-s3cret-s3cret", 1_700_000_000, b"{}", &sig));
        assert!(!verify("other-secret-other", 1_700_000_000, b"{}", &sig));
        assert!(!verify("s3cret-s3cret-s3cret", 1_700_000_001, b"{}", &sig));
        assert!(!verify("s3cret-s3cret-s3cret", 1_700_000_000, b"{ }", &sig));
        assert!(!verify("s3cret-s3cret-s3cret", 1_700_000_000, b"{}", "zz"));
    }
}
