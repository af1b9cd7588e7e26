//! Order intake from sales channels (A1, A2, A7): verify the webhook, map the
//! channel's order onto Ordo SKUs, and hand both the raw body and the mapped
//! order to the core in one command, so the raw order is stored in the same
//! transaction as the order it became (or with the reason it could not).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ordo_channels::{ChannelError, ChannelOrder};
use ordo_core::OrderId;
use ordo_core::auth::{Action, Actor, Principal};
use ordo_core::batch::{By, ChannelIntake, Command, LineRequest, Outcome, PlaceOrder};
use ordo_core::channel::{
    self as core_channel, ChannelPayment, ChannelTerms, RawChannelOrder, RawStatus, SkuMapping, Unmapped,
};
use ordo_core::event::kinds;
use ordo_core::{ChannelOrderId, ShopId};
use sha2::{Digest, Sha256};

use crate::{Engine, EngineError, EngineResult, audit_event};

/// How long a channel's secret and SKU mappings are cached; a change made through
/// another process is seen within this.
const CONFIG_TTL: Duration = Duration::from_secs(5);

type CacheKey = (ShopId, String);

/// A channel's secret and mappings, cached per (shop, channel) with when they were read.
#[derive(Default)]
pub(crate) struct ChannelCache(RwLock<HashMap<CacheKey, (Instant, Arc<ChannelConfig>)>>);

pub(crate) struct ChannelConfig {
    secret: Option<String>,
    mappings: HashMap<String, String>,
}

impl ChannelCache {
    fn get(&self, key: &CacheKey) -> Option<Arc<ChannelConfig>> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(at, _)| at.elapsed() < CONFIG_TTL)
            .map(|(_, c)| c.clone())
    }
    fn put(&self, key: CacheKey, config: Arc<ChannelConfig>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.insert(key, (Instant::now(), config));
    }
    fn forget(&self, key: &CacheKey) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// What became of a received channel order.
#[derive(Debug, Clone)]
pub struct ChannelReceipt {
    pub raw: RawChannelOrder,
    /// The order it became, if it could be mapped (the API reads it whole only
    /// when asked to retry one).
    pub order: Option<OrderId>,
    /// The channel sent this order before and it was mapped then.
    pub replayed: bool,
}

fn check_channel(channel: &str) -> EngineResult<()> {
    if core_channel::KNOWN.contains(&channel) {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "unknown-channel",
            format!("`{channel}` is not a channel; use shopify, woocommerce or marketplace"),
        ))
    }
}

fn verify(channel: &str, secret: &[u8], body: &[u8], signature: Option<&str>) -> Result<(), ChannelError> {
    match channel {
        core_channel::SHOPIFY => ordo_channels::shopify::verify(secret, body, signature),
        core_channel::WOOCOMMERCE => ordo_channels::woocommerce::verify(secret, body, signature),
        _ => ordo_channels::marketplace::verify(secret, body, signature),
    }
}

/// Parses a body already known to be UTF-8 (so the JSON parser need not check
/// each string again).
fn parse(channel: &str, body: &str) -> Result<ChannelOrder, ChannelError> {
    match channel {
        core_channel::SHOPIFY => ordo_channels::shopify::parse(body),
        core_channel::WOOCOMMERCE => ordo_channels::woocommerce::parse(body),
        _ => ordo_channels::marketplace::parse(body),
    }
}

/// The id to keep an order under when its body could not be read: the channel's
/// id if one can be found, else a digest of the body (so a re-send dedupes).
fn fallback_external_id(body: &[u8]) -> String {
    let id = serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| {
        ["id", "order_id"].iter().find_map(|k| match &v[*k] {
            serde_json::Value::String(s) if !s.is_empty() && s.len() <= 128 => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    });
    id.unwrap_or_else(|| format!("unread-{}", &hex::encode(Sha256::digest(body))[..32]))
}

/// The Ordo SKU a channel line names: its variant's, then its product's, then its
/// seller SKU's mapping, else the seller SKU itself.
fn ordo_sku(line: &ordo_channels::ChannelLine, mappings: &HashMap<String, String>) -> Option<String> {
    let keyed = |prefix: &str, id: &Option<String>| {
        id.as_ref()
            .and_then(|id| mappings.get(&format!("{prefix}:{id}")).cloned())
    };
    keyed("variant", &line.variant_id)
        .or_else(|| keyed("product", &line.product_id))
        .or_else(|| keyed("sku", &line.sku))
        .or_else(|| line.sku.clone().filter(|s| !s.trim().is_empty()))
}

/// Maps a parsed channel order to the placement the core decides on.
fn map_order(shop: ShopId, o: ChannelOrder, mappings: &HashMap<String, String>) -> Result<PlaceOrder, Unmapped> {
    let mut lines = Vec::with_capacity(o.lines.len());
    let mut prices = Vec::with_capacity(o.lines.len());
    for (i, line) in o.lines.iter().enumerate() {
        let sku = ordo_sku(line, mappings).ok_or_else(|| Unmapped {
            code: "unmapped-sku".into(),
            reason: format!(
                "line {} ({}) has no seller SKU and neither its variant {} nor its product {} is mapped to an Ordo SKU",
                i + 1,
                line.title,
                line.variant_id.as_deref().unwrap_or("-"),
                line.product_id.as_deref().unwrap_or("-"),
            ),
        })?;
        lines.push(LineRequest {
            sku,
            quantity: line.quantity,
        });
        prices.push((line.unit_price_minor, line.discount_minor));
    }
    let payment = match o.payment {
        ordo_channels::ChannelPayment::Paid {
            amount_minor,
            reference,
        } => ChannelPayment::Paid {
            amount_minor,
            reference,
        },
        ordo_channels::ChannelPayment::Pending => ChannelPayment::Pending,
        ordo_channels::ChannelPayment::CashOnDelivery => ChannelPayment::CashOnDelivery,
    };
    Ok(PlaceOrder {
        by: By {
            shop,
            actor: Actor::channel(o.channel),
        },
        channel: o.channel.to_string(),
        external_id: Some(o.external_id),
        buyer: o.buyer,
        shipping_address: o.shipping_address,
        lines,
        shipping_minor: o.shipping_minor,
        note: o.note,
        payment_method: o.payment_method,
        coupon_codes: Vec::new(),
        idempotency: None,
        channel_terms: Some(Box::new(ChannelTerms {
            currency: o.currency,
            lines: prices,
            tax_minor: o.tax_minor,
            discount_minor: o.discount_minor,
            total_minor: o.total_minor,
            payment,
        })),
    })
}

impl Engine {
    async fn channel_config(&self, shop: ShopId, channel: &str) -> EngineResult<Arc<ChannelConfig>> {
        let key = (shop, channel.to_string());
        if let Some(config) = self.inner.channels.get(&key) {
            return Ok(config);
        }
        let store = &self.inner.store;
        let secret = store.channel_secret(shop, channel).await?;
        let mappings = store
            .sku_mappings(shop, channel)
            .await?
            .into_iter()
            .map(|m| (m.channel_key, m.sku))
            .collect();
        let config = Arc::new(ChannelConfig { secret, mappings });
        self.inner.channels.put(key, config.clone());
        Ok(config)
    }

    /// Receives a channel's order webhook. A bad signature (or a channel the shop
    /// has not configured) is `BadSignature` and stores nothing; anything signed is
    /// stored as received, mapped or not.
    pub async fn receive_channel_order(
        &self,
        channel: &str,
        shop: ShopId,
        body: &[u8],
        signature: Option<&str>,
    ) -> EngineResult<ChannelReceipt> {
        check_channel(channel)?;
        let config = self.channel_config(shop, channel).await?;
        let secret = config.secret.as_deref().ok_or(EngineError::BadSignature)?;
        verify(channel, secret.as_bytes(), body, signature).map_err(|_| EngineError::BadSignature)?;
        self.intake(shop, channel, body, &config.mappings, Actor::channel(channel))
            .await
    }

    async fn intake(
        &self,
        shop: ShopId,
        channel: &str,
        body: &[u8],
        mappings: &HashMap<String, String>,
        actor: Actor,
    ) -> EngineResult<ChannelReceipt> {
        let text = std::str::from_utf8(body);
        let parsed = match text {
            Ok(text) => parse(channel, text),
            Err(e) => Err(ChannelError::MalformedJson {
                message: format!("it is not UTF-8 ({e})"),
            }),
        };
        let (external_id, cancelled, mapped) = match parsed {
            Ok(order) => (
                order.external_id.clone(),
                order.cancelled,
                map_order(shop, order, mappings),
            ),
            Err(e) => (
                fallback_external_id(body),
                false,
                Err(Unmapped {
                    code: e.code().to_string(),
                    reason: e.to_string(),
                }),
            ),
        };
        let intake = ChannelIntake {
            shop,
            channel: channel.to_string(),
            external_id,
            // Valid UTF-8 is the rule; the lossy decoder (slower) only for the exception.
            body: match text {
                Ok(text) => text.into(),
                Err(_) => String::from_utf8_lossy(body).into(),
            },
            actor,
            mapped,
            cancelled,
        };
        match self.submit(Command::IntakeChannelOrder(Box::new(intake))).await? {
            Outcome::ChannelOrder { raw, order, replayed } => {
                if order.is_some() && !replayed {
                    crate::metrics::Metrics::add(&self.inner.metrics.orders_placed, 1);
                }
                Ok(ChannelReceipt {
                    raw: *raw,
                    order,
                    replayed,
                })
            }
            _ => Err(crate::unexpected()),
        }
    }

    /// Runs an unmapped raw order through mapping again (after the mapping, the
    /// catalogue or the stock was fixed), exactly as if the channel re-sent it.
    pub async fn retry_channel_order(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        id: ChannelOrderId,
    ) -> EngineResult<ChannelReceipt> {
        let shop = self.scope(who, shop, Action::ManageOrders)?;
        let raw = self.inner.store.get_channel_order(shop, id).await?;
        let config = self.channel_config(shop, &raw.channel).await?;
        self.intake(
            shop,
            &raw.channel,
            raw.body.as_bytes(),
            &config.mappings,
            Actor::of(who),
        )
        .await
    }

    /// Sets the secret a shop's channel signs its webhooks with.
    pub async fn configure_channel(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        channel: &str,
        secret: &str,
    ) -> EngineResult<()> {
        let shop = self.scope(who, shop, Action::ManageSettings)?;
        check_channel(channel)?;
        if !(16..=256).contains(&secret.len()) {
            return Err(EngineError::invalid(
                "invalid-secret",
                "a channel secret has 16 to 256 characters",
            ));
        }
        let now = self.now();
        let event = audit_event(
            who,
            shop,
            shop,
            kinds::CHANNEL_CONFIGURED,
            serde_json::json!({ "channel": channel }),
            now,
        );
        self.inner.store.put_channel(shop, channel, secret, now, event).await?;
        self.inner.channels.forget(&(shop, channel.to_string()));
        Ok(())
    }

    /// Adds or replaces mappings from a channel's keys (`variant:…`, `product:…`,
    /// `sku:…`) to Ordo SKUs.
    pub async fn put_sku_mappings(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        channel: &str,
        mappings: Vec<SkuMapping>,
    ) -> EngineResult<Vec<SkuMapping>> {
        let shop = self.scope(who, shop, Action::WriteCatalog)?;
        check_channel(channel)?;
        if mappings.is_empty() || mappings.len() > 10_000 {
            return Err(EngineError::invalid(
                "invalid-mapping",
                "give 1 to 10000 mappings at a time",
            ));
        }
        for m in &mappings {
            let kind_ok = ["variant:", "product:", "sku:"]
                .iter()
                .any(|p| m.channel_key.strip_prefix(p).is_some_and(|id| !id.is_empty()));
            if !kind_ok || m.channel_key.len() > 200 || m.sku.trim().is_empty() || m.sku.len() > 64 {
                return Err(EngineError::invalid(
                    "invalid-mapping",
                    format!(
                        "mapping `{}` → `{}`: keys are variant:<id>, product:<id> or sku:<seller sku>, and the SKU has 1 to 64 characters",
                        m.channel_key, m.sku
                    ),
                ));
            }
        }
        let event = audit_event(
            who,
            shop,
            shop,
            kinds::SKU_MAPPING_CHANGED,
            serde_json::json!({ "channel": channel, "mappings": mappings.len() }),
            self.now(),
        );
        self.inner
            .store
            .put_sku_mappings(shop, channel, &mappings, event)
            .await?;
        self.inner.channels.forget(&(shop, channel.to_string()));
        Ok(self.inner.store.sku_mappings(shop, channel).await?)
    }

    pub async fn sku_mappings(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        channel: &str,
    ) -> EngineResult<Vec<SkuMapping>> {
        let shop = self.scope(who, shop, Action::ReadCatalog)?;
        check_channel(channel)?;
        Ok(self.inner.store.sku_mappings(shop, channel).await?)
    }

    pub async fn list_channel_orders(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        status: Option<RawStatus>,
        cursor: Option<ChannelOrderId>,
        limit: u32,
    ) -> EngineResult<Vec<RawChannelOrder>> {
        let shop = self.scope(who, shop, Action::ReadOrders)?;
        Ok(self
            .inner
            .store
            .list_channel_orders(shop, status, cursor, limit.clamp(1, 200))
            .await?)
    }

    pub async fn get_channel_order(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        id: ChannelOrderId,
    ) -> EngineResult<RawChannelOrder> {
        let shop = self.scope(who, shop, Action::ReadOrders)?;
        Ok(self.inner.store.get_channel_order(shop, id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(variant: Option<&str>, product: Option<&str>, sku: Option<&str>) -> ordo_channels::ChannelLine {
        ordo_channels::ChannelLine {
            product_id: product.map(String::from),
            variant_id: variant.map(String::from),
            sku: sku.map(String::from),
            title: "Tee".into(),
            quantity: 1,
            unit_price_minor: 100,
            discount_minor: 0,
        }
    }

    #[test]
    fn the_most_specific_mapping_wins() {
        let mappings: HashMap<String, String> = [
            ("variant:1", "TEE-RED"),
            ("product:9", "TEE"),
            ("sku:shop-tee", "TEE-BLUE"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sku = |l| ordo_sku(&l, &mappings);
        assert_eq!(sku(line(Some("1"), Some("9"), Some("x"))).as_deref(), Some("TEE-RED"));
        assert_eq!(sku(line(Some("2"), Some("9"), Some("x"))).as_deref(), Some("TEE"));
        assert_eq!(sku(line(None, None, Some("shop-tee"))).as_deref(), Some("TEE-BLUE"));
        assert_eq!(
            sku(line(Some("2"), None, Some("OWN"))).as_deref(),
            Some("OWN"),
            "a seller SKU as is"
        );
        assert_eq!(sku(line(Some("2"), None, Some(" "))), None);
    }

    #[test]
    fn an_unreadable_body_keeps_the_channels_id_or_a_digest() {
        assert_eq!(fallback_external_id(br#"{"id": 5872349102117, "x": }"#).len(), 39);
        assert_eq!(fallback_external_id(br#"{"id": 5872349102117}"#), "5872349102117");
        assert_eq!(fallback_external_id(br#"{"order_id": "TB-1"}"#), "TB-1");
        assert_eq!(fallback_external_id(b"garbage"), fallback_external_id(b"garbage"));
        assert_ne!(fallback_external_id(b"garbage"), fallback_external_id(b"garbage2"));
    }
}
