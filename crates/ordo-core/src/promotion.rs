//! Promotions and coupons (A4): pure pricing. Promotions apply in priority order
//! to what is left of the items subtotal, so the discount never exceeds the price
//! and the total is never negative; the items discount is then allocated to the
//! lines with the largest-remainder method, so the parts always sum to the whole
//! (partial refunds later take a line's share).

use serde::{Deserialize, Serialize};

use crate::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    /// The shop's name for it, shown on the order's price breakdown.
    pub id: String,
    /// A coupon the buyer must give; `None` applies automatically.
    #[serde(default)]
    pub coupon_code: Option<String>,
    pub kind: PromotionKind,
    #[serde(default)]
    pub starts_at: Option<Timestamp>,
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    /// Exclusive promotions apply alone; stackable ones combine.
    #[serde(default)]
    pub stackable: bool,
    /// Higher applies first.
    #[serde(default)]
    pub priority: i32,
    /// How many orders may use the coupon in all (A4); cancelled orders give their use back.
    #[serde(default)]
    pub usage_limit: Option<i64>,
    /// How many orders one buyer may use the coupon on.
    #[serde(default)]
    pub per_buyer_limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PromotionKind {
    /// `percent_bp` basis points off (1000 = 10 %), on the listed SKUs or everything.
    Percentage {
        percent_bp: u32,
        #[serde(default)]
        skus: Vec<String>,
    },
    /// A fixed amount off the order.
    Fixed { amount_minor: i64 },
    /// 满减: spend `spend_minor`, get `off_minor` off; `repeating` takes it off for every full step.
    Threshold {
        spend_minor: i64,
        off_minor: i64,
        #[serde(default)]
        repeating: bool,
    },
    /// A special unit price for one SKU.
    ItemPrice { sku: String, price_minor: i64 },
    /// Shipping free from `min_spend_minor` (always when absent).
    FreeShipping {
        #[serde(default)]
        min_spend_minor: Option<i64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromotionError {
    #[error("coupon `{0}` is not valid for this order")]
    CouponNotApplicable(String),
    #[error("promotion `{id}` is invalid: {reason}")]
    Invalid { id: String, reason: &'static str },
}

/// A line as pricing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub sku: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPromotion {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon_code: Option<String>,
    pub items_discount_minor: i64,
    pub shipping_discount_minor: i64,
    /// The promotion's terms as they were when it applied: an edit of the order
    /// reprices by these, whatever the shop has done to the promotion since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<Box<Promotion>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Priced {
    pub items_discount_minor: i64,
    pub shipping_discount_minor: i64,
    pub applied: Vec<AppliedPromotion>,
    /// The items discount split over the lines, in line order.
    pub line_discounts_minor: Vec<i64>,
}

/// Checks a promotion's own numbers (done when a shop saves it).
pub fn check(p: &Promotion) -> Result<(), PromotionError> {
    let bad = |reason| {
        Err(PromotionError::Invalid {
            id: p.id.clone(),
            reason,
        })
    };
    if p.id.trim().is_empty() || p.id.len() > 64 {
        return bad("id must have 1 to 64 characters");
    }
    if p.usage_limit.is_some_and(|n| n < 1) || p.per_buyer_limit.is_some_and(|n| n < 1) {
        return bad("usage limits must be at least 1");
    }
    if (p.usage_limit.is_some() || p.per_buyer_limit.is_some()) && p.coupon_code.is_none() {
        return bad("usage limits apply to coupons only");
    }
    if let (Some(s), Some(e)) = (p.starts_at, p.ends_at)
        && e <= s
    {
        return bad("ends_at must be after starts_at");
    }
    match &p.kind {
        PromotionKind::Percentage { percent_bp, .. } if *percent_bp == 0 || *percent_bp > 10_000 => {
            bad("percent_bp must be 1 to 10000")
        }
        PromotionKind::Fixed { amount_minor } if *amount_minor <= 0 => bad("amount_minor must be positive"),
        PromotionKind::Threshold {
            spend_minor, off_minor, ..
        } if *spend_minor <= 0 || *off_minor <= 0 => bad("spend_minor and off_minor must be positive"),
        PromotionKind::ItemPrice { price_minor, .. } if *price_minor < 0 => bad("price_minor must not be negative"),
        _ => Ok(()),
    }
}

/// Prices lines and shipping under the shop's promotions and the buyer's coupons.
pub fn apply(
    lines: &[PricedLine],
    shipping_minor: i64,
    promotions: &[Promotion],
    coupons: &[String],
    now: Timestamp,
) -> Result<Priced, PromotionError> {
    let active = |p: &&Promotion| p.starts_at.is_none_or(|s| s <= now) && p.ends_at.is_none_or(|e| now < e);
    for code in coupons {
        if !promotions
            .iter()
            .filter(active)
            .any(|p| p.coupon_code.as_deref() == Some(code.as_str()))
        {
            return Err(PromotionError::CouponNotApplicable(code.clone()));
        }
    }
    let mut eligible: Vec<&Promotion> = promotions
        .iter()
        .filter(active)
        .filter(|p| p.coupon_code.as_ref().is_none_or(|c| coupons.contains(c)))
        .collect();
    eligible.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));

    let line_totals: Vec<i64> = lines.iter().map(|l| l.unit_price_minor * l.quantity).collect();
    let items: i64 = line_totals.iter().sum();
    // What is left of each line after the discounts so far.
    let mut left: Vec<i64> = line_totals.clone();
    let mut shipping_left = shipping_minor;
    let mut priced = Priced::default();
    for p in eligible {
        if !p.stackable && !priced.applied.is_empty() {
            continue;
        }
        let (items_off, shipping_off) = discount(p, lines, &left, items, shipping_left);
        if items_off == 0 && shipping_off == 0 {
            continue;
        }
        take(&mut left, items_off, lines, &p.kind);
        shipping_left -= shipping_off;
        priced.applied.push(AppliedPromotion {
            id: p.id.clone(),
            coupon_code: p.coupon_code.clone(),
            items_discount_minor: items_off,
            shipping_discount_minor: shipping_off,
            terms: Some(Box::new(p.clone())),
        });
        if !p.stackable {
            break;
        }
    }
    priced.line_discounts_minor = line_totals.iter().zip(&left).map(|(t, l)| t - l).collect();
    priced.items_discount_minor = priced.line_discounts_minor.iter().sum();
    priced.shipping_discount_minor = shipping_minor - shipping_left;
    Ok(priced)
}

/// (items off, shipping off) that `p` gives on what is left, never more than that.
fn discount(p: &Promotion, lines: &[PricedLine], left: &[i64], items: i64, shipping_left: i64) -> (i64, i64) {
    let remaining: i64 = left.iter().sum();
    let off = match &p.kind {
        PromotionKind::Percentage { percent_bp, skus } => {
            let base: i64 = lines
                .iter()
                .zip(left)
                .filter(|(l, _)| skus.is_empty() || skus.contains(&l.sku))
                .map(|(_, x)| *x)
                .sum();
            (i128::from(base) * i128::from(*percent_bp) / 10_000) as i64
        }
        PromotionKind::Fixed { amount_minor } => *amount_minor,
        PromotionKind::Threshold {
            spend_minor,
            off_minor,
            repeating,
        } => {
            let steps = if *repeating {
                remaining / spend_minor
            } else {
                i64::from(remaining >= *spend_minor)
            };
            steps.saturating_mul(*off_minor)
        }
        PromotionKind::ItemPrice { sku, price_minor } => lines
            .iter()
            .zip(left)
            .filter(|(l, _)| &l.sku == sku)
            .map(|(l, x)| ((l.unit_price_minor - price_minor).max(0) * l.quantity).min(*x))
            .sum(),
        PromotionKind::FreeShipping { min_spend_minor } => {
            let qualifies = min_spend_minor.is_none_or(|m| items >= m);
            return (0, if qualifies { shipping_left } else { 0 });
        }
    };
    (off.clamp(0, remaining), 0)
}

/// Takes `amount` off the lines: from the SKU's own lines for per-item and
/// SKU-limited promotions, else from all lines in proportion to what is left.
fn take(left: &mut [i64], amount: i64, lines: &[PricedLine], kind: &PromotionKind) {
    let targets: Vec<usize> = match kind {
        PromotionKind::ItemPrice { sku, .. } => (0..lines.len()).filter(|&i| &lines[i].sku == sku).collect(),
        PromotionKind::Percentage { skus, .. } if !skus.is_empty() => {
            (0..lines.len()).filter(|&i| skus.contains(&lines[i].sku)).collect()
        }
        _ => (0..lines.len()).collect(),
    };
    let weights: Vec<i64> = targets.iter().map(|&i| left[i]).collect();
    for (share, &i) in allocate(amount, &weights).into_iter().zip(&targets) {
        left[i] -= share;
    }
}

/// Splits `amount` over `weights` in proportion, largest remainder first, so the
/// shares sum to `amount` exactly and no share exceeds its weight (when
/// `amount <= Σ weights`).
pub fn allocate(amount: i64, weights: &[i64]) -> Vec<i64> {
    let total: i64 = weights.iter().sum();
    if total <= 0 || amount <= 0 {
        return vec![0; weights.len()];
    }
    let amount = amount.min(total);
    let mut shares: Vec<i64> = weights
        .iter()
        .map(|w| (i128::from(amount) * i128::from(*w) / i128::from(total)) as i64)
        .collect();
    let mut rest = amount - shares.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| {
        let remainder = i128::from(amount) * i128::from(weights[i]) % i128::from(total);
        (std::cmp::Reverse(remainder), i)
    });
    for i in order.into_iter().cycle() {
        if rest == 0 {
            break;
        }
        if shares[i] < weights[i] {
            shares[i] += 1;
            rest -= 1;
        }
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, qty: i64, price: i64) -> PricedLine {
        PricedLine {
            sku: sku.into(),
            quantity: qty,
            unit_price_minor: price,
        }
    }

    fn promo(id: &str, kind: PromotionKind, stackable: bool, priority: i32) -> Promotion {
        Promotion {
            id: id.into(),
            coupon_code: None,
            kind,
            starts_at: None,
            ends_at: None,
            stackable,
            usage_limit: None,
            per_buyer_limit: None,
            priority,
        }
    }

    #[test]
    fn kinds_price_as_a_seller_expects() {
        let lines = [line("A", 2, 5_000), line("B", 1, 3_000)]; // 13,000
        let cases: Vec<(PromotionKind, i64, i64)> = vec![
            (
                PromotionKind::Percentage {
                    percent_bp: 1_000,
                    skus: vec![],
                },
                1_300,
                0,
            ),
            (
                PromotionKind::Percentage {
                    percent_bp: 1_000,
                    skus: vec!["B".into()],
                },
                300,
                0,
            ),
            (PromotionKind::Fixed { amount_minor: 2_000 }, 2_000, 0),
            (PromotionKind::Fixed { amount_minor: 99_999 }, 13_000, 0),
            (
                PromotionKind::Threshold {
                    spend_minor: 10_000,
                    off_minor: 1_500,
                    repeating: false,
                },
                1_500,
                0,
            ),
            (
                PromotionKind::Threshold {
                    spend_minor: 5_000,
                    off_minor: 500,
                    repeating: true,
                },
                1_000,
                0,
            ),
            (
                PromotionKind::Threshold {
                    spend_minor: 20_000,
                    off_minor: 500,
                    repeating: true,
                },
                0,
                0,
            ),
            (
                PromotionKind::ItemPrice {
                    sku: "A".into(),
                    price_minor: 4_000,
                },
                2_000,
                0,
            ),
            (
                PromotionKind::FreeShipping {
                    min_spend_minor: Some(10_000),
                },
                0,
                800,
            ),
            (
                PromotionKind::FreeShipping {
                    min_spend_minor: Some(20_000),
                },
                0,
                0,
            ),
        ];
        for (kind, items_off, shipping_off) in cases {
            let p = apply(&lines, 800, &[promo("p", kind.clone(), true, 0)], &[], Timestamp(0)).unwrap();
            assert_eq!(
                (p.items_discount_minor, p.shipping_discount_minor),
                (items_off, shipping_off),
                "{kind:?}"
            );
            assert_eq!(p.line_discounts_minor.iter().sum::<i64>(), items_off);
        }
    }

    #[test]
    fn exclusive_promotions_apply_alone_and_coupons_must_match() {
        let lines = [line("A", 1, 10_000)];
        let big = promo(
            "big",
            PromotionKind::Percentage {
                percent_bp: 2_000,
                skus: vec![],
            },
            false,
            10,
        );
        let small = promo("small", PromotionKind::Fixed { amount_minor: 100 }, true, 1);
        let p = apply(&lines, 0, &[small.clone(), big.clone()], &[], Timestamp(0)).unwrap();
        assert_eq!(p.applied.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["big"]);
        let both = promo(
            "big",
            PromotionKind::Percentage {
                percent_bp: 2_000,
                skus: vec![],
            },
            true,
            10,
        );
        let p = apply(&lines, 0, &[small.clone(), both], &[], Timestamp(0)).unwrap();
        assert_eq!(
            p.items_discount_minor,
            2_000 + 100,
            "stackable: 20 % then 100 off what is left"
        );
        let mut coupon = promo("c", PromotionKind::Fixed { amount_minor: 500 }, true, 0);
        coupon.coupon_code = Some("HELLO".into());
        assert_eq!(
            apply(&lines, 0, &[coupon.clone()], &[], Timestamp(0))
                .unwrap()
                .items_discount_minor,
            0
        );
        assert_eq!(
            apply(&lines, 0, &[coupon.clone()], &["HELLO".into()], Timestamp(0))
                .unwrap()
                .items_discount_minor,
            500
        );
        assert!(matches!(
            apply(&lines, 0, &[coupon.clone()], &["NOPE".into()], Timestamp(0)),
            Err(PromotionError::CouponNotApplicable(_))
        ));
        coupon.ends_at = Some(Timestamp(10));
        assert!(
            apply(&lines, 0, &[coupon], &["HELLO".into()], Timestamp(10)).is_err(),
            "expired coupons do not apply"
        );
    }

    #[test]
    fn allocation_sums_exactly_and_respects_weights() {
        assert_eq!(allocate(100, &[100, 100, 100]), vec![34, 33, 33]);
        assert_eq!(allocate(100, &[1, 1, 1]), vec![1, 1, 1], "never more than a weight");
        assert_eq!(allocate(10, &[5, 5]), vec![5, 5]);
        assert_eq!(allocate(7, &[0, 10]), vec![0, 7]);
        assert_eq!(allocate(0, &[3, 4]), vec![0, 0]);
    }
}
