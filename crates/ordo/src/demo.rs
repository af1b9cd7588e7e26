//! `ordo serve --demo`: a small live platform for a newcomer to look at — two shops,
//! three warehouses each in different regions, ~50 SKUs (some virtual), stock, API
//! keys, and a gentle stream of orders, payments and shipments.

use std::time::Duration;

use ordo_core::auth::{Principal, Role};
use ordo_core::batch::{LineRequest, Step, StockChange};
use ordo_core::catalog::ProductKind;
use ordo_core::order::{Address, Buyer, OrderStatus};
use ordo_core::{Currency, OrderId, ShopId};
use ordo_engine::{Engine, NewOrder, NewProduct, NewWarehouse};

use crate::anyhow_like::Result;

pub const DEMO_GATEWAY_SECRET: &str = "demo-gateway-secret-0123456789";

/// The demo's codes key when none is configured: generated once and kept in a file
/// beside the SQLite database (`ordo.db.codes-key`, readable by the owner only; for
/// PostgreSQL `ordo-demo.codes-key` in the working directory), so codes sealed in
/// an earlier run can still be opened after a restart.
pub fn codes_key(database: &str) -> Result<ordo_engine::codes::CodesKey> {
    let path = match database.strip_prefix("sqlite://") {
        Some(db) => std::path::PathBuf::from(format!("{db}.codes-key")),
        None => std::path::PathBuf::from("ordo-demo.codes-key"),
    };
    let hex = match std::fs::read_to_string(&path) {
        Ok(hex) => hex,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let hex = ordo_engine::codes::CodesKey::generate_hex();
            write_private(&path, &hex)?;
            println!("demo codes key generated and kept in {}", path.display());
            hex
        }
        Err(e) => return Err(format!("cannot read the demo codes key {}: {e}", path.display()).into()),
    };
    Ok(ordo_engine::codes::CodesKey::from_hex(&hex)?)
}

fn write_private(path: &std::path::Path, contents: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot write the demo codes key {}: {e}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

pub struct SeededShop {
    pub id: ShopId,
    pub name: String,
    pub owner_key: String,
    pub integration_key: String,
    pub skus: Vec<String>,
}

pub struct Seeded {
    pub shops: Vec<SeededShop>,
}

impl Seeded {
    pub fn print(&self) {
        println!("demo platform seeded:");
        for s in &self.shops {
            println!("  shop {} ({})", s.name, s.id);
            println!("    owner key:       {}", s.owner_key);
            println!("    integration key: {}", s.integration_key);
            println!(
                "    SKUs: {} … ({} in all)",
                s.skus.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                s.skus.len()
            );
        }
        println!("  payment gateway `generic` secret: {DEMO_GATEWAY_SECRET}");
    }
}

const REGIONS: [(&str, &str, &str); 3] = [
    ("SH", "CN-SH", "上海仓"),
    ("GZ", "CN-GD", "广州仓"),
    ("CD", "CN-SC", "成都仓"),
];

pub async fn seed(engine: &Engine) -> Result<Seeded> {
    let admin = Principal::PlatformAdmin;
    let mut shops = Vec::new();
    for (n, name) in ["闲鱼小铺 Demo Shop", "Ordo Outdoor"].into_iter().enumerate() {
        let shop = engine.create_shop(&admin, name, Currency::CNY).await?;
        let owner = engine.issue_key(&admin, shop.id, Role::Owner, "demo owner").await?;
        let integration = engine
            .issue_key(&admin, shop.id, Role::Integration, "demo storefront")
            .await?;
        engine
            .set_gateway_secret(&admin, shop.id, "generic", DEMO_GATEWAY_SECRET)
            .await?;
        engine
            .update_settings(&admin, shop.id, demo_settings(shop.settings.clone()))
            .await?;
        let mut warehouses = Vec::new();
        for (code, region, wname) in REGIONS {
            let w = engine
                .create_warehouse(
                    &admin,
                    Some(shop.id),
                    NewWarehouse {
                        code: code.into(),
                        name: wname.into(),
                        region: region.into(),
                    },
                )
                .await?;
            warehouses.push(w);
        }
        let mut skus = Vec::new();
        for i in 0..25 {
            let kind = if i % 6 == 5 {
                ProductKind::Virtual
            } else {
                ProductKind::Physical
            };
            let sku = format!("S{}-{:03}", n + 1, i + 1);
            let product = NewProduct {
                sku: sku.clone(),
                name: if kind == ProductKind::Virtual {
                    format!("礼品卡 Gift card {}", i + 1)
                } else {
                    format!("商品 Item {}", i + 1)
                },
                kind,
                price_minor: 990 + 500 * i as i64,
                weight_g: 200 + 50 * i as i64,
                on_sale: true,
                attributes: Default::default(),
                presale_ships_at: None,
            };
            engine.create_product(&admin, Some(shop.id), product).await?;
            if kind == ProductKind::Physical {
                for (k, w) in warehouses.iter().enumerate() {
                    let units = 200 + 100 * ((i + k) % 4) as i64;
                    engine
                        .adjust_stock(
                            &admin,
                            Some(shop.id),
                            &sku,
                            w.id,
                            StockChange::Delta(units),
                            Some("demo opening stock".into()),
                        )
                        .await?;
                }
            } else {
                // Gift-card codes, so paid virtual orders deliver at once.
                let codes = (1..=300).map(|c| format!("DEMO-{sku}-{c:04}")).collect();
                engine.add_codes(&admin, Some(shop.id), &sku, codes).await?;
            }
            skus.push(sku);
        }
        shops.push(SeededShop {
            id: shop.id,
            name: shop.name,
            owner_key: owner.secret,
            integration_key: integration.secret,
            skus,
        });
    }
    Ok(Seeded { shops })
}

/// A 满减 promotion, free shipping over ¥99, and a review rule holding big orders.
fn demo_settings(mut s: ordo_core::catalog::ShopSettings) -> ordo_core::catalog::ShopSettings {
    use ordo_core::promotion::{Promotion, PromotionKind};
    let promo = |id: &str, kind| Promotion {
        id: id.into(),
        coupon_code: None,
        kind,
        starts_at: None,
        ends_at: None,
        stackable: true,
        usage_limit: None,
        per_buyer_limit: None,
        priority: 0,
    };
    s.promotions = vec![
        promo(
            "满100减10",
            PromotionKind::Threshold {
                spend_minor: 10_000,
                off_minor: 1_000,
                repeating: true,
            },
        ),
        promo(
            "满99包邮",
            PromotionKind::FreeShipping {
                min_spend_minor: Some(9_900),
            },
        ),
    ];
    s.review_above_minor = Some(20_000);
    s
}

/// A small deterministic generator so the demo needs no randomness crate.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

pub fn spawn_traffic(engine: Engine, seeded: Seeded) {
    tokio::spawn(async move {
        let admin = Principal::PlatformAdmin;
        let mut rng = Lcg(42);
        let mut recent: Vec<(ShopId, OrderId)> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(400));
        loop {
            tick.tick().await;
            let shop = &seeded.shops[rng.next(seeded.shops.len() as u64) as usize];
            let sku = shop.skus[rng.next(shop.skus.len() as u64) as usize].clone();
            let n = rng.next(100_000);
            let order = NewOrder {
                channel: "demo".into(),
                external_id: None,
                buyer: Buyer {
                    id: format!("buyer-{}", n % 300),
                    name: Some("张三".into()),
                    phone: Some(format!("138{:08}", n)),
                    email: None,
                },
                shipping_address: Some(Address {
                    recipient: "张三".into(),
                    phone: format!("138{:08}", n),
                    country: "CN".into(),
                    province: "广东省".into(),
                    city: "深圳市".into(),
                    district: Some("南山区".into()),
                    line1: "科技园路 1 号".into(),
                    line2: None,
                    postal_code: Some("518000".into()),
                }),
                lines: vec![LineRequest {
                    sku,
                    quantity: 1 + rng.next(3) as i64,
                }],
                shipping_minor: 800,
                note: None,
                payment_method: None,
                coupon_codes: vec![],
            };
            if let Ok((o, _)) = engine.place_order(&admin, Some(shop.id), order, None).await {
                if rng.next(10) < 8 {
                    let _ = pay(&engine, &o).await;
                }
                recent.push((shop.id, o.id));
            }
            // Move a few older orders along: ship, deliver.
            if recent.len() > 20 {
                let (shop_id, id) = recent.remove(0);
                if let Ok(o) = engine.get_order(&admin, Some(shop_id), id).await
                    && o.status == OrderStatus::Fulfilling
                {
                    let step = Step::Ship {
                        carrier: "SF".into(),
                        tracking_number: format!("SF{}", rng.next(1_000_000_000)),
                        parcel: None,
                    };
                    if engine.order_step(&admin, Some(shop_id), id, step).await.is_ok() && rng.next(2) == 0 {
                        let _ = engine
                            .order_step(&admin, Some(shop_id), id, Step::ConfirmDelivery)
                            .await;
                    }
                }
            }
        }
    });
}

/// Plays the generic gateway: signs and posts a notification through the engine.
pub async fn pay(
    engine: &Engine,
    o: &ordo_core::order::Order,
) -> ordo_engine::EngineResult<ordo_engine::gateway::Answer> {
    let ts = engine.now().0 / 1000;
    let body = serde_json::json!({
        "shop_id": o.shop, "order_id": o.id, "transaction_id": format!("txn-{}", o.id),
        "status": "succeeded", "amount_minor": o.pricing.total_minor, "currency": o.pricing.currency,
    })
    .to_string();
    let sig = ordo_engine::gateway::sign(DEMO_GATEWAY_SECRET, ts, body.as_bytes());
    let ts = ts.to_string();
    let inbound = ordo_engine::gateway::Inbound {
        body: body.as_bytes(),
        timestamp: Some(&ts),
        signature: Some(&sig),
        stripe_signature: None,
        shop: None,
    };
    engine.payment_notify("generic", inbound).await
}

#[cfg(test)]
mod codes_key_tests {
    #[test]
    fn the_demo_codes_key_is_generated_once_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("ordo-demo-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let database = format!("sqlite://{}", dir.join("ordo.db").display());
        let file = dir.join("ordo.db.codes-key");
        super::codes_key(&database).unwrap();
        let first = std::fs::read_to_string(&file).unwrap();
        super::codes_key(&database).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            first,
            "reused, not regenerated"
        );
        assert_eq!(first.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the owner may read it: {mode:o}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
