//! Stripe-style webhooks: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`, where each
//! `v1` is HMAC-SHA256 of `"{t}.{raw body}"` under the endpoint secret. The event
//! is a `payment_intent.succeeded` or `payment_intent.payment_failed`; the order
//! and shop travel in the intent's metadata (`ordo_order_id`, `ordo_shop_id`).
//! Other event types are acknowledged and ignored, as Stripe expects.

use ordo_core::payment::PaymentNotice;
use ordo_core::{Currency, OrderId, ShopId};
use serde::Deserialize;

use super::{Inbound, STRIPE, sign, verify_hmac};
use crate::{Engine, EngineError, EngineResult};

/// The `Stripe-Signature` header value a Stripe endpoint would send (for tests and demos).
pub fn sign_stripe(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: PaymentIntent,
}

#[derive(Deserialize)]
struct PaymentIntent {
    id: String,
    amount: i64,
    #[serde(default)]
    amount_received: Option<i64>,
    currency: String,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Deserialize, Default)]
struct Metadata {
    ordo_shop_id: Option<String>,
    ordo_order_id: Option<String>,
}

/// `t` and every `v1` of the header; other schemes (`v0`) are ignored.
fn parse_header(header: &str) -> Option<(i64, Vec<&str>)> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse().ok(),
            Some(("v1", s)) => signatures.push(s),
            _ => {}
        }
    }
    Some((timestamp?, signatures))
}

fn invalid(detail: impl Into<String>) -> EngineError {
    EngineError::invalid("invalid-notification", detail)
}

pub(super) async fn verify(engine: &Engine, inbound: Inbound<'_>) -> EngineResult<Option<PaymentNotice>> {
    let (timestamp, signatures) = inbound
        .stripe_signature
        .and_then(parse_header)
        .ok_or(EngineError::BadSignature)?;
    engine.check_fresh(timestamp)?;
    let event: Event = serde_json::from_slice(inbound.body).map_err(|e| invalid(format!("Stripe event body: {e}")))?;
    let intent = &event.data.object;
    let shop: ShopId = match (inbound.shop, intent.metadata.ordo_shop_id.as_deref()) {
        (Some(shop), _) => shop,
        (None, Some(s)) => s.parse().map_err(|_| EngineError::BadSignature)?,
        (None, None) => return Err(EngineError::BadSignature),
    };
    let secret = engine.gateway_secret_of(shop, STRIPE).await?;
    if !signatures
        .iter()
        .any(|s| verify_hmac(&secret, timestamp, inbound.body, s))
    {
        return Err(EngineError::BadSignature);
    }
    let succeeded = match event.kind.as_str() {
        "payment_intent.succeeded" => true,
        "payment_intent.payment_failed" => false,
        _ => return Ok(None),
    };
    let order: OrderId = intent
        .metadata
        .ordo_order_id
        .as_deref()
        .ok_or_else(|| invalid("metadata.ordo_order_id is missing"))?
        .parse()
        .map_err(|e: ordo_core::ids::ParseIdError| invalid(e.to_string()))?;
    let currency: Currency = intent
        .currency
        .to_ascii_uppercase()
        .parse()
        .map_err(|e: ordo_core::MoneyError| invalid(e.to_string()))?;
    let amount_minor = if succeeded {
        intent.amount_received.unwrap_or(intent.amount)
    } else {
        intent.amount
    };
    Ok(Some(PaymentNotice {
        shop,
        gateway: STRIPE.to_string(),
        order,
        transaction_id: intent.id.clone(),
        succeeded,
        amount_minor,
        currency,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_yields_the_timestamp_and_every_v1_signature() {
        assert_eq!(parse_header("t=12,v1=aa,v0=bb,v1=cc"), Some((12, vec!["aa", "cc"])));
        assert_eq!(parse_header("v1=aa"), None);
        assert_eq!(parse_header("t=x,v1=aa"), None);
    }
}
