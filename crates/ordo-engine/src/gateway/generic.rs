//! The generic gateway format: a JSON body naming shop, order and transaction.

use ordo_core::payment::PaymentNotice;
use ordo_core::{Currency, OrderId, ShopId};
use serde::Deserialize;

use super::{Inbound, verify_hmac};
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

pub(super) async fn verify(engine: &Engine, gateway: &str, inbound: Inbound<'_>) -> EngineResult<PaymentNotice> {
    let timestamp: i64 = inbound
        .timestamp
        .and_then(|t| t.trim().parse().ok())
        .ok_or(EngineError::BadSignature)?;
    engine.check_fresh(timestamp)?;
    // The shop id is read before verification only to pick the secret to verify with.
    let notice: GenericNotice = serde_json::from_slice(inbound.body)
        .map_err(|e| EngineError::invalid("invalid-notification", format!("notification body: {e}")))?;
    let secret = engine.gateway_secret_of(notice.shop_id, gateway).await?;
    if !verify_hmac(&secret, timestamp, inbound.body, inbound.signature.unwrap_or_default()) {
        return Err(EngineError::BadSignature);
    }
    Ok(PaymentNotice {
        shop: notice.shop_id,
        gateway: gateway.to_string(),
        order: notice.order_id,
        transaction_id: notice.transaction_id,
        succeeded: notice.status == NoticeStatus::Succeeded,
        amount_minor: notice.amount_minor,
        currency: notice.currency,
    })
}
