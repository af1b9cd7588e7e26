//! Purchase limits set on a shop that already has orders (A3). A limit counts a
//! buyer's units from the moment it is set, but a buyer who bought two this morning
//! has used a "two a day" limit set at noon. So when settings add a limit, its
//! counters start from the orders already placed, as if it had been set all along.
//!
//! The history review rules (A5) are not seeded: the new-buyer rule would have to
//! read, and record its count on, every order the shop ever had, in the
//! transaction that switches it on. They count from when they are on (README).

use std::collections::BTreeMap;

use super::{Counted, Counter, PurchaseLimit, names};
use crate::Timestamp;
use crate::catalog::ShopSettings;
use crate::order::{Order, OrderStatus};

/// What one counter counts: its first order's time, the sum, and each order's
/// share (index, amount).
struct Tally {
    first: Timestamp,
    total: i64,
    orders: Vec<(usize, i64)>,
}

/// The limits a settings change adds, and which orders they are counted from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeding<'a> {
    limits: Vec<&'a PurchaseLimit>,
    /// Orders placed after this count (`None`: all of the shop's orders).
    pub placed_after: Option<Timestamp>,
    now: Timestamp,
}

/// The counters a [`Seeding`] starts from, and the orders that now hold what they
/// count (indexes into the orders given to [`Seeding::seed`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Seeded {
    pub counters: Vec<(String, Counter)>,
    pub changed: Vec<usize>,
}

impl Seeded {
    /// Of the orders given to [`Seeding::seed`], those it changed, for the store to
    /// write back.
    pub fn changed_orders(&self, orders: Vec<Order>) -> Vec<Order> {
        let mut changed = self.changed.iter().copied().peekable();
        orders
            .into_iter()
            .enumerate()
            .filter_map(|(i, order)| changed.next_if_eq(&i).map(|_| order))
            .collect()
    }
}

/// What replacing `before` by `after` at `now` must count from earlier orders: the
/// limits on a SKU `before` did not limit, or limited over another window. A limit
/// whose cap alone changes keeps its counters. `None` when nothing is added.
pub fn seeding<'a>(before: &ShopSettings, after: &'a ShopSettings, now: Timestamp) -> Option<Seeding<'a>> {
    let limits: Vec<&PurchaseLimit> = after
        .purchase_limits
        .iter()
        .filter(|l| {
            !before
                .purchase_limits
                .iter()
                .any(|b| b.sku == l.sku && b.window_secs == l.window_secs)
        })
        .collect();
    if limits.is_empty() {
        return None;
    }
    let placed_after = limits
        .iter()
        .map(|l| l.window_secs.map(|w| now.plus_secs(-w)))
        .min()
        .flatten();
    Some(Seeding {
        limits,
        placed_after,
        now,
    })
}

impl Seeding<'_> {
    /// What an order's JSON document (as serde_json writes an [`Order`]) holds if it
    /// has a line of one of the added limits' SKUs, `"sku":"…"`: a store may skip
    /// the other orders unread.
    pub fn sku_needles(&self) -> Vec<String> {
        self.limits
            .iter()
            .map(|l| format!("\"sku\":{}", serde_json::Value::from(l.sku.as_str())))
            .collect()
    }

    /// Counts `orders` (the shop's orders placed after [`Seeding::placed_after`], all
    /// that are committed; any others are ignored) for each added limit, cancelled
    /// orders aside. Per buyer, the window starts at their first order of the SKU
    /// within the last `window_secs` before now (their first ever without a window)
    /// and holds every unit ordered since. Each order counted records it (replacing
    /// what it recorded for an earlier setting of the limit), so cancelling or
    /// editing it gives the units back, as for an order placed under the limit.
    pub fn seed(&self, orders: &mut [Order]) -> Seeded {
        let mut seeded = Seeded::default();
        for limit in &self.limits {
            let after = limit.window_secs.map(|w| self.now.plus_secs(-w));
            let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
            for (i, order) in orders.iter().enumerate() {
                // No upper bound: an order decided on the old settings may carry a
                // time a little after `now` and commit before this runs (the store
                // makes sure none commits after), and nothing counted it.
                if order.status == OrderStatus::Cancelled || after.is_some_and(|t| order.created_at <= t) {
                    continue;
                }
                let units: i64 = order
                    .lines
                    .iter()
                    .filter(|l| l.sku == limit.sku)
                    .map(|l| l.quantity)
                    .sum();
                if units <= 0 {
                    continue;
                }
                let tally = tallies
                    .entry(names::purchases(&limit.sku, &order.buyer.id))
                    .or_insert(Tally {
                        first: order.created_at,
                        total: 0,
                        orders: Vec::new(),
                    });
                tally.first = tally.first.min(order.created_at);
                tally.total += units;
                tally.orders.push((i, units));
            }
            for (name, tally) in tallies {
                for &(i, amount) in &tally.orders {
                    let order = &mut orders[i];
                    order.counted.retain(|c| c.counter != name);
                    order.counted.push(Counted {
                        counter: name.clone(),
                        amount,
                        window_start: tally.first,
                    });
                    seeded.changed.push(i);
                }
                let counter = Counter {
                    value: tally.total,
                    window_start: tally.first,
                };
                seeded.counters.push((name, counter));
            }
        }
        seeded.changed.sort_unstable();
        seeded.changed.dedup();
        seeded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::order::OrderLine;
    use crate::{Currency, ProductId};

    const HOUR: i64 = 3_600;
    const DAY: i64 = 86_400;
    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    fn limit(sku: &str, window_secs: Option<i64>) -> PurchaseLimit {
        PurchaseLimit {
            sku: sku.into(),
            max_units: 2,
            window_secs,
        }
    }

    fn settings(limits: Vec<PurchaseLimit>) -> ShopSettings {
        let mut s = ShopSettings::new(Currency::CNY);
        s.purchase_limits = limits;
        s
    }

    fn bought(id: u128, buyer: &str, hours_ago: i64, lines: &[(&str, i64)]) -> Order {
        let mut order = fixtures::order(id, buyer, NOW.plus_secs(-hours_ago * HOUR));
        order.lines = lines
            .iter()
            .map(|(sku, quantity)| OrderLine {
                sku_id: ProductId(7),
                sku: (*sku).into(),
                name: (*sku).into(),
                quantity: *quantity,
                unit_price_minor: 100,
                total_minor: 100 * quantity,
                warehouse: None,
                discount_minor: 0,
                digital: false,
                codes: vec![],
                ships_at: None,
                refunded_quantity: 0,
                refunded_minor: 0,
            })
            .collect();
        order
    }

    #[test]
    fn only_limits_on_a_new_sku_or_window_are_seeded() {
        let before = settings(vec![limit("TEA", Some(DAY)), limit("CUP", None)]);
        let mut capped = limit("TEA", Some(DAY));
        capped.max_units = 5;
        let same = settings(vec![capped, limit("CUP", None)]);
        assert_eq!(seeding(&before, &same, NOW), None, "a new cap alone keeps the counters");
        let rewindowed = settings(vec![limit("TEA", Some(HOUR))]);
        let s = seeding(&before, &rewindowed, NOW).expect("a new window is counted afresh");
        assert_eq!(s.sku_needles(), vec![r#""sku":"TEA""#.to_string()]);
        let lines_json = serde_json::to_string(&bought(1, "ann", 1, &[("TEA", 1)])).unwrap();
        assert!(
            lines_json.contains(r#""sku":"TEA""#),
            "the needle is what the document holds"
        );
        assert_eq!(s.placed_after, Some(NOW.plus_secs(-HOUR)));
        let with_forever = settings(vec![limit("TEA", Some(DAY)), limit("CUP", None), limit("PEN", None)]);
        let s = seeding(&before, &with_forever, NOW).unwrap();
        assert_eq!(s.placed_after, None, "a limit without a window counts all orders");
    }

    #[test]
    fn earlier_orders_in_the_window_count_from_the_buyers_first() {
        let after = settings(vec![limit("TEA", Some(DAY))]);
        let s = seeding(&ShopSettings::new(Currency::CNY), &after, NOW).unwrap();
        let mut cancelled = bought(4, "ann", 2, &[("TEA", 5)]);
        cancelled.status = OrderStatus::Cancelled;
        let mut orders = vec![
            bought(1, "ann", 30, &[("TEA", 1)]), // before the window
            bought(2, "ann", 20, &[("TEA", 1), ("CUP", 3)]),
            bought(3, "ann", 3, &[("TEA", 1), ("TEA", 1)]),
            cancelled,
            bought(5, "bob", 1, &[("CUP", 1)]),
            bought(6, "bob", 5, &[("TEA", 2)]),
            // Decided on the old settings a moment after `now`, committed before it.
            bought(7, "cy", -1, &[("TEA", 1)]),
        ];
        let seeded = s.seed(&mut orders);
        let ann = Counter {
            value: 3,
            window_start: NOW.plus_secs(-20 * HOUR),
        };
        let bob = Counter {
            value: 2,
            window_start: NOW.plus_secs(-5 * HOUR),
        };
        let cy = Counter {
            value: 1,
            window_start: NOW.plus_secs(HOUR),
        };
        assert_eq!(
            seeded.counters,
            vec![
                ("buy:TEA:ann".into(), ann),
                ("buy:TEA:bob".into(), bob),
                ("buy:TEA:cy".into(), cy)
            ]
        );
        assert_eq!(seeded.changed, vec![1, 2, 5, 6]);
        assert_eq!(
            orders[2].counted,
            vec![Counted {
                counter: "buy:TEA:ann".into(),
                amount: 2,
                window_start: ann.window_start,
            }]
        );
        assert!(orders[0].counted.is_empty() && orders[3].counted.is_empty());
        // The counters behave as if the limit had been set all along.
        assert_eq!(ann.current(Some(DAY), NOW), 3);
        let mut given_back = ann;
        given_back.give_back(&orders[2].counted[0]);
        assert_eq!(given_back.value, 1, "cancelling a counted order gives its units back");
    }

    #[test]
    fn a_limit_set_again_replaces_what_orders_counted_before() {
        let after = settings(vec![limit("TEA", None)]);
        let s = seeding(&ShopSettings::new(Currency::CNY), &after, NOW).unwrap();
        let mut old = bought(1, "ann", 24 * 400, &[("TEA", 2)]);
        old.counted = vec![
            Counted {
                counter: "buy:TEA:ann".into(),
                amount: 2,
                window_start: Timestamp(0),
            },
            Counted {
                counter: "coupon:SPRING".into(),
                amount: 1,
                window_start: Timestamp(0),
            },
        ];
        let mut orders = vec![old, bought(2, "ann", 1, &[("TEA", 1)])];
        let seeded = s.seed(&mut orders);
        let first = NOW.plus_secs(-24 * 400 * HOUR);
        assert_eq!(
            seeded.counters,
            vec![(
                "buy:TEA:ann".into(),
                Counter {
                    value: 3,
                    window_start: first
                }
            )]
        );
        let names: Vec<(&str, i64, Timestamp)> = orders[0]
            .counted
            .iter()
            .map(|c| (c.counter.as_str(), c.amount, c.window_start))
            .collect();
        assert_eq!(
            names,
            vec![("coupon:SPRING", 1, Timestamp(0)), ("buy:TEA:ann", 2, first)]
        );
    }
}
