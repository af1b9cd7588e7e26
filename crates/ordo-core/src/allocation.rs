//! Which warehouse serves which line. This is the seam a later rule pipeline (D1)
//! replaces; today's strategy: one warehouse for the whole order when one can serve
//! it (the one with the most stock left, then lowest code), else the best warehouse
//! per SKU.

use crate::catalog::Warehouse;
use crate::inventory::StockKey;
use crate::{ProductId, WarehouseId};

/// Units wanted per SKU (already summed over the order's lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    pub sku: ProductId,
    pub quantity: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    pub sku: ProductId,
    pub warehouse: WarehouseId,
    pub quantity: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortage {
    pub sku: ProductId,
    pub requested: i64,
    /// The most any single warehouse could give.
    pub available: i64,
}

pub fn allocate(
    demands: &[Demand],
    warehouses: &[Warehouse],
    available: impl Fn(StockKey) -> i64,
) -> Result<Vec<Allocation>, Shortage> {
    let active = || warehouses.iter().filter(|w| w.active);
    let serves_all = |w: &Warehouse| {
        demands.iter().all(|d| {
            available(StockKey {
                sku: d.sku,
                warehouse: w.id,
            }) >= d.quantity
        })
    };
    let total_left = |w: &Warehouse| {
        demands
            .iter()
            .map(|d| {
                available(StockKey {
                    sku: d.sku,
                    warehouse: w.id,
                })
            })
            .sum::<i64>()
    };
    if let Some(w) = active()
        .filter(|w| serves_all(w))
        .max_by(|a, b| total_left(a).cmp(&total_left(b)).then(b.code.cmp(&a.code)))
    {
        return Ok(demands
            .iter()
            .map(|d| Allocation {
                sku: d.sku,
                warehouse: w.id,
                quantity: d.quantity,
            })
            .collect());
    }
    demands
        .iter()
        .map(|d| {
            let best = active()
                .map(|w| {
                    (
                        available(StockKey {
                            sku: d.sku,
                            warehouse: w.id,
                        }),
                        w,
                    )
                })
                .max_by(|(a, wa), (b, wb)| a.cmp(b).then(wb.code.cmp(&wa.code)));
            match best {
                Some((left, w)) if left >= d.quantity => Ok(Allocation {
                    sku: d.sku,
                    warehouse: w.id,
                    quantity: d.quantity,
                }),
                other => Err(Shortage {
                    sku: d.sku,
                    requested: d.quantity,
                    available: other.map_or(0, |(left, _)| left.max(0)),
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ShopId, Timestamp};
    use std::collections::HashMap;

    fn wh(id: u128, code: &str) -> Warehouse {
        Warehouse {
            id: WarehouseId(id),
            shop: ShopId(1),
            code: code.into(),
            name: code.into(),
            region: "CN".into(),
            active: true,
            created_at: Timestamp(0),
        }
    }

    fn run(demands: &[(u128, i64)], stock: &[(u128, u128, i64)]) -> Result<Vec<(u128, u128)>, Shortage> {
        let map: HashMap<StockKey, i64> = stock
            .iter()
            .map(|&(s, w, n)| {
                (
                    StockKey {
                        sku: ProductId(s),
                        warehouse: WarehouseId(w),
                    },
                    n,
                )
            })
            .collect();
        let demands: Vec<Demand> = demands
            .iter()
            .map(|&(s, q)| Demand {
                sku: ProductId(s),
                quantity: q,
            })
            .collect();
        allocate(&demands, &[wh(1, "A"), wh(2, "B")], |k| {
            map.get(&k).copied().unwrap_or(0)
        })
        .map(|v| v.into_iter().map(|a| (a.sku.0, a.warehouse.0)).collect())
    }

    #[test]
    fn one_warehouse_serves_the_whole_order_when_it_can() {
        assert_eq!(
            run(&[(10, 2), (11, 1)], &[(10, 1, 5), (11, 1, 1), (10, 2, 9)]),
            Ok(vec![(10, 1), (11, 1)])
        );
    }

    #[test]
    fn lines_split_across_warehouses_when_none_has_everything() {
        assert_eq!(
            run(&[(10, 2), (11, 1)], &[(10, 1, 5), (11, 2, 1)]),
            Ok(vec![(10, 1), (11, 2)])
        );
    }

    #[test]
    fn a_shortage_reports_the_best_single_warehouse() {
        let err = run(&[(10, 7)], &[(10, 1, 5), (10, 2, 6)]).unwrap_err();
        assert_eq!((err.requested, err.available), (7, 6));
    }
}
