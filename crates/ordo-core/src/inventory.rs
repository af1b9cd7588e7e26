//! Stock per (SKU, warehouse) and its append-only ledger (C1, C2).
//!
//! Invariants, for every level: `0 <= reserved <= on_hand`, so available stock
//! `on_hand - reserved` is never negative; and the ledger's deltas sum to the level.

use serde::{Deserialize, Serialize};

use crate::auth::Actor;
use crate::{OrderId, ProductId, ShopId, Timestamp, WarehouseId};

/// Most units one stock level may hold (keeps sums far from overflow).
pub const STOCK_UNITS_MAX: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StockKey {
    pub sku: ProductId,
    pub warehouse: WarehouseId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub shop: ShopId,
    pub sku: ProductId,
    pub warehouse: WarehouseId,
    pub on_hand: i64,
    pub reserved: i64,
    pub updated_at: Timestamp,
}

impl StockLevel {
    pub fn empty(shop: ShopId, key: StockKey, now: Timestamp) -> Self {
        StockLevel {
            shop,
            sku: key.sku,
            warehouse: key.warehouse,
            on_hand: 0,
            reserved: 0,
            updated_at: now,
        }
    }
    pub fn key(&self) -> StockKey {
        StockKey {
            sku: self.sku,
            warehouse: self.warehouse,
        }
    }
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerReason {
    /// Goods received or counted in (on hand up).
    Receive,
    /// A manual correction of on hand (stocktake, damage) — up or down.
    Adjust,
    /// Held for an order (reserved up).
    Reserve,
    /// Hold given back: cancel, timeout (reserved down).
    Release,
    /// Left the warehouse with a shipment (on hand and reserved down).
    Ship,
}

impl LedgerReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerReason::Receive => "receive",
            LedgerReason::Adjust => "adjust",
            LedgerReason::Reserve => "reserve",
            LedgerReason::Release => "release",
            LedgerReason::Ship => "ship",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Receive, Self::Adjust, Self::Reserve, Self::Release, Self::Ship]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// One movement of stock: who, why, which order. Never updated or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub shop: ShopId,
    pub sku: ProductId,
    pub warehouse: WarehouseId,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub reason: LedgerReason,
    pub order: Option<OrderId>,
    pub actor: Actor,
    pub note: Option<String>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    #[error("only {available} available, {requested} requested")]
    Insufficient { requested: i64, available: i64 },
    #[error("on hand cannot go below the {reserved} units reserved for orders (would be {would_be})")]
    BelowReserved { reserved: i64, would_be: i64 },
    #[error("a stock level holds at most {STOCK_UNITS_MAX} units")]
    TooLarge,
    #[error("quantity must be positive")]
    NotPositive,
}

/// The movement a change makes; applied with [`StockLevel::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Movement {
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub reason: LedgerReason,
}

impl StockLevel {
    pub fn reserve(&self, qty: i64) -> Result<Movement, StockError> {
        positive(qty)?;
        if qty > self.available() {
            return Err(StockError::Insufficient {
                requested: qty,
                available: self.available(),
            });
        }
        Ok(Movement {
            on_hand_delta: 0,
            reserved_delta: qty,
            reason: LedgerReason::Reserve,
        })
    }

    /// Gives back a reservation. Releasing more than is reserved is a programming
    /// error upstream; it is clamped so the level stays valid.
    pub fn release(&self, qty: i64) -> Result<Movement, StockError> {
        positive(qty)?;
        Ok(Movement {
            on_hand_delta: 0,
            reserved_delta: -qty.min(self.reserved),
            reason: LedgerReason::Release,
        })
    }

    /// Ships reserved units: they leave both on hand and reserved.
    pub fn ship(&self, qty: i64) -> Result<Movement, StockError> {
        positive(qty)?;
        if qty > self.reserved {
            return Err(StockError::Insufficient {
                requested: qty,
                available: self.reserved,
            });
        }
        Ok(Movement {
            on_hand_delta: -qty,
            reserved_delta: -qty,
            reason: LedgerReason::Ship,
        })
    }

    /// Changes on hand by `delta` (receipt when positive, correction otherwise).
    pub fn adjust(&self, delta: i64) -> Result<Movement, StockError> {
        let would_be = self.on_hand.checked_add(delta).ok_or(StockError::TooLarge)?;
        if would_be > STOCK_UNITS_MAX {
            return Err(StockError::TooLarge);
        }
        if would_be < self.reserved {
            return Err(StockError::BelowReserved {
                reserved: self.reserved,
                would_be,
            });
        }
        let reason = if delta > 0 {
            LedgerReason::Receive
        } else {
            LedgerReason::Adjust
        };
        Ok(Movement {
            on_hand_delta: delta,
            reserved_delta: 0,
            reason,
        })
    }

    pub fn apply(&mut self, m: Movement, now: Timestamp) {
        self.on_hand += m.on_hand_delta;
        self.reserved += m.reserved_delta;
        self.updated_at = now;
        debug_assert!(
            0 <= self.reserved && self.reserved <= self.on_hand,
            "stock invariant broken: {self:?}"
        );
    }
}

fn positive(qty: i64) -> Result<(), StockError> {
    if qty > 0 { Ok(()) } else { Err(StockError::NotPositive) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(on_hand: i64, reserved: i64) -> StockLevel {
        StockLevel {
            shop: ShopId(1),
            sku: ProductId(2),
            warehouse: WarehouseId(3),
            on_hand,
            reserved,
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn reserve_takes_only_what_is_available() {
        let l = level(10, 7);
        assert_eq!(l.reserve(3).unwrap().reserved_delta, 3);
        assert_eq!(
            l.reserve(4),
            Err(StockError::Insufficient {
                requested: 4,
                available: 3
            })
        );
        assert_eq!(l.reserve(0), Err(StockError::NotPositive));
    }

    #[test]
    fn shipping_deducts_from_both_on_hand_and_reserved() {
        let mut l = level(10, 4);
        let m = l.ship(3).unwrap();
        l.apply(m, Timestamp(1));
        assert_eq!((l.on_hand, l.reserved, l.available()), (7, 1, 6));
        assert!(l.ship(2).is_err());
    }

    #[test]
    fn on_hand_cannot_drop_below_reserved() {
        let l = level(10, 6);
        assert_eq!(
            l.adjust(-5),
            Err(StockError::BelowReserved {
                reserved: 6,
                would_be: 5
            })
        );
        assert_eq!(l.adjust(-4).unwrap().reason, LedgerReason::Adjust);
        assert_eq!(l.adjust(5).unwrap().reason, LedgerReason::Receive);
        assert_eq!(l.adjust(STOCK_UNITS_MAX), Err(StockError::TooLarge));
    }
}
