//! Alipay-style asynchronous notifications: a form-encoded POST whose `sign` is
//! SHA256withRSA (PKCS#1 v1.5, `sign_type=RSA2`) over every other non-empty
//! parameter except `sign_type`, sorted by name and joined as `k=v&k=v`. It is
//! verified with the gateway's public key (stored as the shop's `alipay` secret,
//! PEM or bare base64 DER). The gateway expects the plain answer `success`.
//!
//! `out_trade_no` is the Ordo order id, `trade_no` the transaction, `total_amount`
//! yuan with up to two decimals; the shop comes from the notify URL (`?shop=`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ordo_core::payment::PaymentNotice;
use ordo_core::{Currency, OrderId};
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::sha2::Sha256;
use rsa::signature::Verifier;

use super::{ALIPAY, Inbound};
use crate::{Engine, EngineError, EngineResult};

/// The string Alipay signs: sorted, non-empty parameters but `sign` and `sign_type`.
pub fn signing_string(params: &[(String, String)]) -> String {
    let mut kept: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| k != "sign" && k != "sign_type" && !v.is_empty())
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    kept.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Reads a public key given as PEM or as the bare base64 DER Alipay's console shows.
fn public_key(text: &str) -> Option<RsaPublicKey> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return RsaPublicKey::from_public_key_pem(text).ok();
    }
    let der = BASE64.decode(text.split_whitespace().collect::<String>()).ok()?;
    RsaPublicKey::from_public_key_der(&der).ok()
}

fn verify_signature(key: &RsaPublicKey, message: &str, sign_b64: &str) -> bool {
    let Ok(raw) = BASE64.decode(sign_b64.trim()) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(raw.as_slice()) else {
        return false;
    };
    VerifyingKey::<Sha256>::new(key.clone())
        .verify(message.as_bytes(), &signature)
        .is_ok()
}

/// `"88.8"` yuan → 8880 fen; more than two decimals or anything else is refused.
pub fn yuan_to_fen(amount: &str) -> Option<i64> {
    let (whole, frac) = amount.trim().split_once('.').unwrap_or((amount.trim(), ""));
    if whole.is_empty() || frac.len() > 2 || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fen: i64 = format!("{frac:0<2}").parse().ok()?;
    whole.parse::<i64>().ok()?.checked_mul(100)?.checked_add(fen)
}

fn invalid(detail: impl Into<String>) -> EngineError {
    EngineError::invalid("invalid-notification", detail)
}

pub(super) async fn verify(engine: &Engine, inbound: Inbound<'_>) -> EngineResult<Option<PaymentNotice>> {
    let params: Vec<(String, String)> = form_urlencoded::parse(inbound.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let shop = inbound.shop.ok_or(EngineError::BadSignature)?;
    if get("sign_type") != Some("RSA2") {
        return Err(EngineError::BadSignature);
    }
    let key = public_key(&engine.gateway_secret_of(shop, ALIPAY).await?)
        .ok_or_else(|| invalid("the shop's alipay public key cannot be read"))?;
    if !verify_signature(&key, &signing_string(&params), get("sign").unwrap_or_default()) {
        return Err(EngineError::BadSignature);
    }
    let succeeded = match get("trade_status") {
        Some("TRADE_SUCCESS" | "TRADE_FINISHED") => true,
        Some("TRADE_CLOSED") => false,
        _ => return Ok(None),
    };
    let order: OrderId = get("out_trade_no")
        .ok_or_else(|| invalid("out_trade_no is missing"))?
        .parse()
        .map_err(|e: ordo_core::ids::ParseIdError| invalid(e.to_string()))?;
    let amount_minor = get("total_amount")
        .and_then(yuan_to_fen)
        .ok_or_else(|| invalid("total_amount is not yuan"))?;
    Ok(Some(PaymentNotice {
        shop,
        gateway: ALIPAY.to_string(),
        order,
        transaction_id: get("trade_no").unwrap_or_default().to_string(),
        succeeded,
        amount_minor,
        currency: Currency::CNY,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_string_sorts_and_drops_sign_fields_and_empty_values() {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        let params = vec![
            p("total_amount", "1.00"),
            p("sign", "x"),
            p("app_id", "1"),
            p("sign_type", "RSA2"),
            p("body", ""),
        ];
        assert_eq!(signing_string(&params), "app_id=1&total_amount=1.00");
    }

    #[test]
    fn yuan_amounts_become_fen_exactly() {
        for (text, fen) in [
            ("88.88", Some(8888)),
            ("88.8", Some(8880)),
            ("88", Some(8800)),
            ("0.01", Some(1)),
        ] {
            assert_eq!(yuan_to_fen(text), fen, "{text}");
        }
        for bad in ["1.001", "-1", "1e3", "", ".5", "abc"] {
            assert_eq!(yuan_to_fen(bad), None, "{bad}");
        }
    }
}
