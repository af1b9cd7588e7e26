//! Code pools of virtual SKUs (G1): codes are sealed (XChaCha20-Poly1305, key from
//! configuration) before they reach the store, and opened only to deliver them to
//! the buyer. They never appear in lists, logs or events; a keyed fingerprint keeps
//! the same code from entering a pool twice.

use chacha20poly1305::aead::Aead;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use ordo_core::auth::{Action, Principal};
use ordo_core::catalog::ProductKind;
use ordo_core::event::kinds;
use ordo_core::{CodeId, OrderId, ShopId};
use ordo_store::NewCode;
use sha2::Sha256;

use crate::{Engine, EngineError, EngineResult, audit_event};

/// Codes one request may add.
pub const CODES_PER_REQUEST_MAX: usize = 10_000;
const CODE_CHARS_MAX: usize = 1024;
const NONCE_BYTES: usize = 24;

/// The key codes are sealed with (32 bytes).
#[derive(Clone)]
pub struct CodesKey([u8; 32]);

impl std::fmt::Debug for CodesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodesKey(…)")
    }
}

impl CodesKey {
    /// From 64 hex digits.
    pub fn from_hex(hex_key: &str) -> Result<CodesKey, String> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| "the codes key must be 64 hex digits".to_string())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the codes key must be 64 hex digits (32 bytes)".to_string())?;
        Ok(CodesKey(key))
    }

    /// A new random key, as hex.
    pub fn generate_hex() -> String {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS has randomness");
        hex::encode(key)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new_from_slice(&self.0).expect("the key has 32 bytes")
    }

    fn seal(&self, code: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).expect("the OS has randomness");
        let sealed = self
            .cipher()
            .encrypt(&XNonce::from(nonce), code.as_bytes())
            .expect("encryption of a short message cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        hex::encode(out)
    }

    fn open(&self, sealed: &str) -> Result<String, String> {
        let bytes = hex::decode(sealed).map_err(|_| "a stored code is not hex".to_string())?;
        if bytes.len() < NONCE_BYTES {
            return Err("a stored code is too short".into());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().expect("split at the nonce length");
        let plain = self
            .cipher()
            .decrypt(&XNonce::from(nonce), ciphertext)
            .map_err(|_| "a stored code does not open with the configured key".to_string())?;
        String::from_utf8(plain).map_err(|_| "a stored code is not text".to_string())
    }

    /// Keyed, so the fingerprints say nothing about the codes without the key.
    fn fingerprint(&self, sku: &str, code: &str) -> String {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(sku.as_bytes());
        mac.update(&[0]);
        mac.update(code.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// What adding codes to a pool did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodesAdded {
    pub added: u64,
    /// Codes given that the pool held already (or given twice).
    pub duplicates: u64,
    /// Unassigned codes in the pool now.
    pub available: i64,
}

/// A delivered code, opened for the buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredCode {
    pub id: CodeId,
    pub sku: String,
    pub code: String,
}

impl Engine {
    fn codes_key(&self) -> EngineResult<&CodesKey> {
        self.inner.config.codes_key.as_ref().ok_or_else(|| {
            EngineError::invalid(
                "codes-key-missing",
                "virtual-goods codes need a key: start Ordo with ORDO_CODES_KEY (64 hex digits)",
            )
        })
    }

    /// Adds codes (or links) to a virtual SKU's pool.
    pub async fn add_codes(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        sku: &str,
        codes: Vec<String>,
    ) -> EngineResult<CodesAdded> {
        let shop = self.scope(who, shop, Action::WriteStock)?;
        let key = self.codes_key()?;
        let product = self.product_by_sku(shop, sku).await?;
        if product.kind != ProductKind::Virtual {
            return Err(EngineError::invalid(
                "not-virtual",
                format!("SKU `{sku}` is physical; codes belong to virtual SKUs"),
            ));
        }
        if codes.is_empty() || codes.len() > CODES_PER_REQUEST_MAX {
            return Err(EngineError::invalid(
                "invalid-codes",
                format!("give 1 to {CODES_PER_REQUEST_MAX} codes at a time"),
            ));
        }
        if let Some(i) = codes
            .iter()
            .position(|c| c.trim().is_empty() || c.len() > CODE_CHARS_MAX || c.trim() != c)
        {
            return Err(EngineError::invalid(
                "invalid-codes",
                format!(
                    "code {} is empty, longer than {CODE_CHARS_MAX} bytes or has surrounding spaces",
                    i + 1
                ),
            ));
        }
        let now = self.now();
        let given = codes.len() as u64;
        let sealed: Vec<NewCode> = codes
            .iter()
            .map(|code| NewCode {
                id: CodeId(crate::ids::new_id()),
                fingerprint: key.fingerprint(&product.id.to_string(), code),
                sealed: key.seal(code),
                created_at: now,
            })
            .collect();
        let event = audit_event(
            who,
            shop,
            product.id,
            kinds::CODES_IMPORTED,
            serde_json::json!({ "sku": sku, "given": given }),
            now,
        );
        let (added, available) = self.inner.store.add_codes(shop, product.id, &sealed, event).await?;
        Ok(CodesAdded {
            added,
            duplicates: given - added,
            available,
        })
    }

    /// Unassigned codes of a virtual SKU.
    pub async fn codes_available(&self, who: &Principal, shop: Option<ShopId>, sku: &str) -> EngineResult<i64> {
        let shop = self.scope(who, shop, Action::ReadStock)?;
        let product = self.product_by_sku(shop, sku).await?;
        Ok(self.inner.store.codes_available(shop, product.id).await?)
    }

    /// The codes delivered to an order, opened: for people who serve the buyer.
    pub async fn order_codes(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        order: OrderId,
    ) -> EngineResult<Vec<DeliveredCode>> {
        let shop = self.scope(who, shop, Action::ManageOrders)?;
        if !who.sees_buyer_contact() {
            return Err(EngineError::Forbidden);
        }
        self.delivered_codes(shop, order).await
    }

    /// The codes delivered to an order, opened, for the buyer's delivery
    /// notification (the shell calls this; there is no caller to check).
    pub async fn delivered_codes(&self, shop: ShopId, order: OrderId) -> EngineResult<Vec<DeliveredCode>> {
        let key = self.codes_key()?;
        let placed = self.inner.store.get_order(shop, order).await?;
        let sealed = self.inner.store.codes_of_order(shop, order).await?;
        sealed
            .into_iter()
            .map(|c| {
                let sku = placed
                    .lines
                    .iter()
                    .find(|l| l.sku_id == c.sku)
                    .map(|l| l.sku.clone())
                    .unwrap_or_default();
                let code = key
                    .open(&c.sealed)
                    .map_err(|e| EngineError::Store(ordo_store::StoreError::Corrupt(format!("code {}: {e}", c.id))))?;
                Ok(DeliveredCode { id: c.id, sku, code })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_codes_open_only_with_their_key_and_never_show_in_the_clear() {
        let key = CodesKey::from_hex(&CodesKey::generate_hex()).unwrap();
        let other = CodesKey::from_hex(&CodesKey::generate_hex()).unwrap();
        let sealed = key.seal("GIFT-1234-ABCD");
        assert!(!sealed.contains("GIFT"));
        assert_ne!(sealed, key.seal("GIFT-1234-ABCD"), "a fresh nonce every time");
        assert_eq!(key.open(&sealed).unwrap(), "GIFT-1234-ABCD");
        assert!(other.open(&sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.replace_range(60..62, if &sealed[60..62] == "00" { "01" } else { "00" });
        assert!(key.open(&tampered).is_err());
        assert_eq!(key.fingerprint("sku_1", "A"), key.fingerprint("sku_1", "A"));
        assert_ne!(key.fingerprint("sku_1", "A"), other.fingerprint("sku_1", "A"));
        assert_ne!(key.fingerprint("sku_1", "A"), key.fingerprint("sku_2", "A"));
        assert!(CodesKey::from_hex("abc").is_err());
    }
}
