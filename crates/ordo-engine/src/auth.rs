//! Authentication (bearer tokens), shops and API keys.
//!
//! Secrets are random 160-bit tokens; only their SHA-256 is stored. A slow hash
//! (argon2) would add nothing for high-entropy random tokens and cost every request.

use std::collections::HashMap;
use std::sync::RwLock;

use ordo_core::auth::{Action, Principal, Role};
use ordo_core::catalog::{Shop, ShopSettings};
use ordo_core::event::kinds;
use ordo_core::{ApiKeyId, Currency, ShopId, Timestamp};
use ordo_store::ApiKeyRecord;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::audit_event;
use crate::ids::new_id;
use crate::{Engine, EngineError, EngineResult};

/// How long a verified key stays cached; a revoked key stops working within this.
const KEY_CACHE_MS: i64 = 10_000;

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh random secret: `ordo_` and 40 hex digits.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    format!("ordo_{}", hex::encode(bytes))
}

#[derive(Default)]
pub(crate) struct KeyCache(RwLock<HashMap<String, (Principal, Timestamp)>>);

/// A key as shown once, right after it is created.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub record: ApiKeyRecord,
    pub secret: String,
}

impl Engine {
    /// Resolves a bearer token to a principal, or fails.
    pub async fn authenticate(&self, token: &str) -> EngineResult<Principal> {
        let hash = hash_secret(token);
        if hash == self.inner.config.admin_token_hash {
            return Ok(Principal::PlatformAdmin);
        }
        let now = self.now();
        if let Some((p, at)) = self.inner.keys.0.read().ok().and_then(|m| m.get(&hash).copied())
            && now.0 - at.0 < KEY_CACHE_MS
        {
            return Ok(p);
        }
        let key = self
            .inner
            .store
            .find_api_key(&hash)
            .await?
            .ok_or(EngineError::Unauthenticated)?;
        if key.revoked_at.is_some() {
            return Err(EngineError::Unauthenticated);
        }
        let principal = Principal::ShopKey {
            shop: key.shop,
            key: key.id,
            role: key.role,
        };
        if let Ok(mut m) = self.inner.keys.0.write() {
            if m.len() > 100_000 {
                m.clear();
            }
            m.insert(hash, (principal, now));
        }
        Ok(principal)
    }

    pub(crate) fn require(&self, who: &Principal, action: Action) -> EngineResult<()> {
        if who.may(action) {
            Ok(())
        } else {
            Err(EngineError::Forbidden)
        }
    }

    /// The shop a call acts on, once the caller's role allows `action` (see [`Engine::shop_of`]).
    pub(crate) fn scope(&self, who: &Principal, named: Option<ShopId>, action: Action) -> EngineResult<ShopId> {
        let shop = self.shop_of(who, named)?;
        self.require(who, action)?;
        Ok(shop)
    }

    /// The shop a shop-level call acts on: a key's own shop, or for the platform
    /// admin the shop it names.
    pub fn shop_of(&self, who: &Principal, named: Option<ShopId>) -> EngineResult<ShopId> {
        match (who, named) {
            (Principal::ShopKey { shop, .. }, None) => Ok(*shop),
            (Principal::ShopKey { shop, .. }, Some(n)) if *shop == n => Ok(n),
            (Principal::ShopKey { .. }, Some(_)) => Err(EngineError::NotFound),
            (Principal::PlatformAdmin, Some(n)) => Ok(n),
            (Principal::PlatformAdmin, None) => Err(EngineError::invalid(
                "shop-required",
                "the platform admin must name a shop (X-Ordo-Shop header)",
            )),
        }
    }

    pub async fn create_shop(&self, who: &Principal, name: &str, currency: Currency) -> EngineResult<Shop> {
        self.require(who, Action::ManageShops)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(EngineError::invalid(
                "invalid-name",
                "a shop name has 1 to 200 characters",
            ));
        }
        let shop = Shop {
            id: ShopId(new_id()),
            name: name.to_string(),
            settings: ShopSettings::new(currency),
            created_at: self.now(),
        };
        let event = audit_event(
            who,
            shop.id,
            shop.id.to_string(),
            kinds::SHOP_CREATED,
            json!({ "name": shop.name, "currency": currency }),
            shop.created_at,
        );
        self.inner.store.create_shop(&shop, event).await?;
        Ok(shop)
    }

    pub async fn list_shops(&self, who: &Principal) -> EngineResult<Vec<Shop>> {
        match who.shop() {
            None => Ok(self.inner.store.list_shops().await?),
            Some(shop) => Ok(vec![self.inner.store.get_shop(shop).await?]),
        }
    }

    pub async fn get_shop(&self, who: &Principal, shop: ShopId) -> EngineResult<Shop> {
        let shop = self.shop_of(who, Some(shop))?;
        Ok(self.inner.store.get_shop(shop).await?)
    }

    pub async fn update_settings(&self, who: &Principal, shop: ShopId, settings: ShopSettings) -> EngineResult<Shop> {
        let shop = self.scope(who, Some(shop), Action::ManageSettings)?;
        if !(60..=7 * 24 * 3600).contains(&settings.payment_timeout_secs) {
            return Err(EngineError::invalid(
                "invalid-setting",
                "payment_timeout_secs must be between 60 and 604800",
            ));
        }
        if !(0..settings.payment_timeout_secs).contains(&settings.payment_reminder_secs) {
            return Err(EngineError::invalid(
                "invalid-setting",
                "payment_reminder_secs must be at least 0 and less than payment_timeout_secs",
            ));
        }
        if settings
            .review_above_minor
            .is_some_and(|v| !(0..=ordo_core::money::AMOUNT_MINOR_MAX).contains(&v))
        {
            return Err(EngineError::invalid(
                "invalid-setting",
                "review_above_minor must be between 0 and 10^13",
            ));
        }
        ordo_core::catalog::check_limits(&settings).map_err(|e| EngineError::invalid("invalid-setting", e))?;
        if settings.promotions.len() > 200 {
            return Err(EngineError::invalid(
                "invalid-setting",
                "a shop has at most 200 promotions",
            ));
        }
        for p in &settings.promotions {
            ordo_core::promotion::check(p).map_err(|e| EngineError::invalid("invalid-promotion", e.to_string()))?;
        }
        let r = &settings.review;
        let lists = [
            &r.blocked_buyers,
            &r.blocked_phones,
            &r.flagged_address_words,
            &settings.payment_methods,
        ];
        if lists
            .iter()
            .any(|l| l.len() > 1000 || l.iter().any(|v| v.trim().is_empty() || v.chars().count() > 128))
        {
            return Err(EngineError::invalid(
                "invalid-setting",
                "review lists hold at most 1000 non-empty entries of at most 128 characters",
            ));
        }
        let event = audit_event(
            who,
            shop,
            shop.to_string(),
            kinds::SHOP_UPDATED,
            serde_json::to_value(&settings).unwrap_or_default(),
            self.now(),
        );
        self.inner.store.update_shop_settings(shop, &settings, event).await?;
        Ok(self.inner.store.get_shop(shop).await?)
    }

    pub async fn issue_key(&self, who: &Principal, shop: ShopId, role: Role, name: &str) -> EngineResult<IssuedKey> {
        let shop = self.scope(who, Some(shop), Action::ManageKeys)?;
        self.inner.store.get_shop(shop).await?;
        let secret = new_secret();
        let record = ApiKeyRecord {
            id: ApiKeyId(new_id()),
            shop,
            role,
            name: name.trim().chars().take(200).collect(),
            secret_hash: hash_secret(&secret),
            prefix: secret.chars().take(12).collect(),
            created_at: self.now(),
            revoked_at: None,
        };
        let event = audit_event(
            who,
            shop,
            record.id.to_string(),
            kinds::API_KEY_CREATED,
            json!({ "role": role, "name": record.name, "prefix": record.prefix }),
            record.created_at,
        );
        self.inner.store.create_api_key(&record, event).await?;
        Ok(IssuedKey { record, secret })
    }

    pub async fn list_keys(&self, who: &Principal, shop: ShopId) -> EngineResult<Vec<ApiKeyRecord>> {
        let shop = self.scope(who, Some(shop), Action::ManageKeys)?;
        Ok(self.inner.store.list_api_keys(shop).await?)
    }

    pub async fn revoke_key(&self, who: &Principal, shop: ShopId, key: ApiKeyId) -> EngineResult<()> {
        let shop = self.scope(who, Some(shop), Action::ManageKeys)?;
        let now = self.now();
        let event = audit_event(who, shop, key.to_string(), kinds::API_KEY_REVOKED, json!({}), now);
        self.inner.store.revoke_api_key(shop, key, now, event).await?;
        if let Ok(mut m) = self.inner.keys.0.write() {
            m.retain(|_, (p, _)| !matches!(p, Principal::ShopKey { key: k, .. } if *k == key));
        }
        Ok(())
    }

    /// Sets the shared secret a payment gateway signs its notifications with.
    pub async fn set_gateway_secret(
        &self,
        who: &Principal,
        shop: ShopId,
        gateway: &str,
        secret: &str,
    ) -> EngineResult<()> {
        let shop = self.scope(who, Some(shop), Action::ManageSettings)?;
        crate::gateway::check_gateway_name(gateway)?;
        if secret.len() < 16 || secret.len() > 4096 {
            return Err(EngineError::invalid(
                "invalid-secret",
                "a gateway secret or public key has 16 to 4096 characters",
            ));
        }
        let event = audit_event(
            who,
            shop,
            format!("gateway:{gateway}"),
            kinds::GATEWAY_CONFIGURED,
            json!({ "gateway": gateway }),
            self.now(),
        );
        Ok(self
            .inner
            .store
            .put_gateway_secret(shop, gateway, secret, event)
            .await?)
    }
}
