//! Coupon uses stay counted exactly under random placements, edits and cancels:
//! a coupon's counter always equals the number of live orders priced with it, and
//! no order is ever discounted below zero.

use std::collections::BTreeMap;

use ordo_core::auth::Actor;
use ordo_core::batch::{self, By, EditOrder, LineRequest, PlaceOrder, Step};
use ordo_core::catalog::{Product, ProductKind, ShopSettings, Warehouse};
use ordo_core::inventory::{StockKey, StockLevel};
use ordo_core::limits::{CounterKey, names};
use ordo_core::order::{Address, Buyer, CancelReason, OrderStatus};
use ordo_core::promotion::{Promotion, PromotionKind};
use ordo_core::{
    Command, Context, Currency, IdSource, OrderId, Outcome, ProductId, ShopId, Timestamp, WarehouseId, WorkingSet,
};
use proptest::prelude::*;

const SHOP: ShopId = ShopId(1);
const SKU: ProductId = ProductId(21);
const WAREHOUSE: WarehouseId = WarehouseId(11);
const NOW: Timestamp = Timestamp(1_700_000_000_000);
/// 满 50 减 10, a coupon, stackable with a tenth off everything.
const COUPON: &str = "BIG";

struct Ids(u128);

impl IdSource for Ids {
    fn next_id(&mut self) -> u128 {
        self.0 += 1;
        self.0
    }
}

fn fixture() -> WorkingSet {
    let mut ws = WorkingSet::default();
    let mut settings = ShopSettings::new(Currency::CNY);
    let promotion = |id: &str, coupon: Option<&str>, kind, priority| Promotion {
        id: id.into(),
        coupon_code: coupon.map(Into::into),
        kind,
        starts_at: None,
        ends_at: None,
        stackable: true,
        priority,
        // Low enough that some placements are refused for them.
        usage_limit: coupon.map(|_| 8),
        per_buyer_limit: coupon.map(|_| 3),
    };
    settings.promotions = vec![
        promotion(
            "big",
            Some(COUPON),
            PromotionKind::Threshold {
                spend_minor: 5_000,
                off_minor: 1_000,
                repeating: false,
            },
            1,
        ),
        promotion(
            "tenth",
            None,
            PromotionKind::Percentage {
                percent_bp: 1_000,
                skus: vec![],
            },
            0,
        ),
    ];
    ws.shops.insert(SHOP, settings);
    ws.warehouses.insert(
        SHOP,
        vec![Warehouse {
            id: WAREHOUSE,
            shop: SHOP,
            code: "WH".into(),
            name: "Warehouse".into(),
            region: "CN-GD".into(),
            active: true,
            created_at: NOW,
        }],
    );
    ws.products.insert(
        (SHOP, "A".into()),
        Product {
            id: SKU,
            shop: SHOP,
            sku: "A".into(),
            name: "Tea".into(),
            kind: ProductKind::Physical,
            price_minor: 1_999,
            currency: Currency::CNY,
            weight_g: 250,
            on_sale: true,
            attributes: Default::default(),
            presale_ships_at: None,
            created_at: NOW,
        },
    );
    ws.stock.insert(
        StockKey {
            sku: SKU,
            warehouse: WAREHOUSE,
        },
        StockLevel {
            shop: SHOP,
            sku: SKU,
            warehouse: WAREHOUSE,
            on_hand: 1_000_000,
            reserved: 0,
            updated_at: NOW,
        },
    );
    ws
}

fn by() -> By {
    By {
        shop: SHOP,
        actor: Actor("key_test".into()),
    }
}

fn lines(quantity: i64) -> Vec<LineRequest> {
    vec![LineRequest {
        sku: "A".into(),
        quantity,
    }]
}

#[derive(Debug, Clone)]
enum Op {
    Place { quantity: i64, coupon: bool, buyer: u8 },
    Edit { order: usize, quantity: i64 },
    Cancel { order: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..6_i64, any::<bool>(), 0..3_u8).prop_map(|(quantity, coupon, buyer)| Op::Place {
            quantity,
            coupon,
            buyer
        }),
        (any::<usize>(), 1..6_i64).prop_map(|(order, quantity)| Op::Edit { order, quantity }),
        any::<usize>().prop_map(|order| Op::Cancel { order }),
    ]
}

fn command(ws: &WorkingSet, placed: &[OrderId], op: &Op) -> Option<Command> {
    let pick = |i: usize| (!placed.is_empty()).then(|| placed[i % placed.len()]);
    Some(match op {
        Op::Place {
            quantity,
            coupon,
            buyer,
        } => Command::PlaceOrder(Box::new(PlaceOrder {
            by: by(),
            channel: "web".into(),
            external_id: None,
            buyer: Buyer {
                id: format!("buyer-{buyer}"),
                name: None,
                phone: None,
                email: None,
            },
            shipping_address: Some(Address {
                recipient: "Li Lei".into(),
                phone: "13800000000".into(),
                country: "CN".into(),
                province: "广东省".into(),
                city: "深圳市".into(),
                district: Some("南山区".into()),
                line1: "1 Keji Road".into(),
                line2: None,
                postal_code: None,
            }),
            lines: lines(*quantity),
            shipping_minor: 0,
            note: None,
            payment_method: None,
            coupon_codes: if *coupon { vec![COUPON.into()] } else { vec![] },
            idempotency: None,
            channel_terms: None,
        })),
        Op::Edit { order, quantity } => {
            let id = pick(*order)?;
            Command::EditOrder(Box::new(EditOrder {
                by: by(),
                order: id,
                expected_version: ws.orders[&id].version,
                lines: Some(lines(*quantity)),
                shipping_address: None,
                reason: None,
            }))
        }
        Op::Cancel { order } => Command::Transition {
            order: pick(*order)?,
            step: Step::Cancel(CancelReason::Buyer),
            by: by(),
        },
    })
}

proptest! {
    #[test]
    fn a_coupons_counter_is_the_number_of_live_orders_priced_with_it(ops in prop::collection::vec(op(), 1..40)) {
        let mut ws = fixture();
        let mut ids = Ids(1_000);
        let mut placed = Vec::new();
        for op in &ops {
            let Some(cmd) = command(&ws, &placed, op) else { continue };
            let mut ctx = Context { now: NOW, ids: &mut ids };
            if let Ok(Outcome::Order { order, .. }) = batch::apply(&mut ws, &cmd, &mut ctx)
                && matches!(op, Op::Place { .. })
            {
                placed.push(order.id);
            }
            let _ = ws.take_changes();

            let mut holding: BTreeMap<String, i64> = BTreeMap::new();
            for o in ws.orders.values() {
                prop_assert!(o.pricing.discount_minor <= o.pricing.items_minor + o.pricing.shipping_minor);
                prop_assert!(o.pricing.total_minor >= 0);
                if o.status == OrderStatus::Cancelled {
                    continue;
                }
                if o.promotions.iter().any(|p| p.coupon_code.as_deref() == Some(COUPON)) {
                    *holding.entry(names::coupon(COUPON)).or_default() += 1;
                    *holding.entry(names::coupon_buyer(COUPON, &o.buyer.id)).or_default() += 1;
                }
            }
            for buyer in 0..3 {
                for name in [names::coupon(COUPON), names::coupon_buyer(COUPON, &format!("buyer-{buyer}"))] {
                    let counted = ws
                        .counters
                        .get(&CounterKey { shop: SHOP, name: name.clone() })
                        .map_or(0, |c| c.value);
                    prop_assert_eq!(counted, holding.get(&name).copied().unwrap_or(0), "{} after {:?}", name, op);
                }
            }
        }
    }
}
