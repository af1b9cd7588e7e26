//! Property tests for promotion pricing: whatever the promotions and lines, a
//! discount never exceeds the price, totals are never negative, and the items
//! discount split over the lines sums exactly.

use ordo_core::Timestamp;
use ordo_core::promotion::{PricedLine, Promotion, PromotionKind, allocate, apply};
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = PromotionKind> {
    prop_oneof![
        (1u32..=10_000, prop::bool::ANY).prop_map(|(bp, only_a)| PromotionKind::Percentage {
            percent_bp: bp,
            skus: if only_a { vec!["A".into()] } else { vec![] }
        }),
        (1i64..50_000).prop_map(|a| PromotionKind::Fixed { amount_minor: a }),
        (1i64..20_000, 1i64..20_000, prop::bool::ANY).prop_map(|(s, o, r)| PromotionKind::Threshold {
            spend_minor: s,
            off_minor: o,
            repeating: r
        }),
        (0i64..20_000).prop_map(|p| PromotionKind::ItemPrice {
            sku: "B".into(),
            price_minor: p
        }),
        prop::option::of(0i64..50_000).prop_map(|m| PromotionKind::FreeShipping { min_spend_minor: m }),
    ]
}

fn promotions() -> impl Strategy<Value = Vec<Promotion>> {
    prop::collection::vec((kind(), prop::bool::ANY, -5i32..5), 0..6).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (kind, stackable, priority))| Promotion {
                id: format!("p{i}"),
                coupon_code: None,
                kind,
                starts_at: None,
                ends_at: None,
                stackable,
                priority,
                usage_limit: None,
                per_buyer_limit: None,
            })
            .collect()
    })
}

fn lines() -> impl Strategy<Value = Vec<PricedLine>> {
    prop::collection::vec(
        (prop::sample::select(vec!["A", "B", "C"]), 1i64..20, 0i64..30_000),
        1..6,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(s, q, p)| PricedLine {
                sku: s.into(),
                quantity: q,
                unit_price_minor: p,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn discounts_never_exceed_prices_and_parts_sum_to_the_whole(
        lines in lines(), promos in promotions(), shipping in 0i64..5_000
    ) {
        let priced = apply(&lines, shipping, &promos, &[], Timestamp(0)).unwrap();
        let items: i64 = lines.iter().map(|l| l.unit_price_minor * l.quantity).sum();
        prop_assert_eq!(priced.line_discounts_minor.len(), lines.len());
        for (l, d) in lines.iter().zip(&priced.line_discounts_minor) {
            prop_assert!(*d >= 0 && *d <= l.unit_price_minor * l.quantity, "line {:?} discount {}", l, d);
        }
        prop_assert_eq!(priced.line_discounts_minor.iter().sum::<i64>(), priced.items_discount_minor);
        prop_assert!(priced.items_discount_minor <= items);
        prop_assert!((0..=shipping).contains(&priced.shipping_discount_minor));
        let total = items + shipping - priced.items_discount_minor - priced.shipping_discount_minor;
        prop_assert!(total >= 0);
        let applied: i64 = priced.applied.iter().map(|a| a.items_discount_minor).sum();
        prop_assert_eq!(applied, priced.items_discount_minor, "the breakdown adds up");
        let exclusive = priced.applied.iter().filter(|a| !promos.iter().find(|p| p.id == a.id).unwrap().stackable).count();
        prop_assert!(exclusive == 0 || priced.applied.len() == 1, "an exclusive promotion applies alone");
    }

    #[test]
    fn allocation_is_exact_and_bounded(amount in 0i64..1_000_000, weights in prop::collection::vec(0i64..100_000, 1..10)) {
        let shares = allocate(amount, &weights);
        let total: i64 = weights.iter().sum();
        prop_assert_eq!(shares.iter().sum::<i64>(), amount.min(total).max(0));
        for (s, w) in shares.iter().zip(&weights) {
            prop_assert!(*s >= 0 && s <= w);
        }
    }
}

proptest! {
    /// Refunding a line unit by unit, in any split, gives back exactly what the
    /// line cost after its discount, never more.
    #[test]
    fn line_refunds_sum_exactly_to_the_line(
        quantity in 1i64..=50,
        unit in 0i64..=100_000,
        discount_part in 0u32..=10_000,
        splits in prop::collection::vec(1i64..=50, 1..20),
    ) {
        let total = unit * quantity;
        let discount = total * i64::from(discount_part) / 10_000;
        let mut line = ordo_core::order::OrderLine {
            sku_id: ordo_core::ProductId(1),
            sku: "A".into(),
            name: "A".into(),
            quantity,
            unit_price_minor: unit,
            total_minor: total,
            warehouse: None,
            discount_minor: discount,
            digital: false,
            codes: vec![],
            ships_at: None,
            refunded_quantity: 0,
            refunded_minor: 0,
        };
        for q in splits {
            let left = line.quantity - line.refunded_quantity;
            match line.refund_for(q) {
                Some(amount) => {
                    prop_assert!(q <= left);
                    prop_assert!(amount >= 0);
                    line.refunded_quantity += q;
                    line.refunded_minor += amount;
                    prop_assert!(line.refunded_minor <= total - discount);
                }
                None => prop_assert!(q > left),
            }
        }
        if let Some(last) = line.refund_for(line.quantity - line.refunded_quantity) {
            line.refunded_minor += last;
            line.refunded_quantity = line.quantity;
        }
        prop_assert_eq!(line.refunded_quantity, quantity);
        prop_assert_eq!(line.refunded_minor, total - discount);
    }
}
