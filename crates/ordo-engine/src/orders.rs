//! Orders: placement, moves along the state machine, refunds, reads; and the
//! Idempotency-Key guard every POST goes through.

use ordo_core::auth::{Action, Actor, Principal};
use ordo_core::batch::{
    By, Command, EditOrder, IdempotencyClaim, IdempotencyRecord, LineRefund, LineRequest, Outcome, PlaceOrder,
    RefundRequest, ShipTogether, Step,
};
use ordo_core::money::Money;
use ordo_core::order::{Address, Buyer, CancelReason, Order, OrderStatus};
use ordo_core::payment::{Payment, Refund};
use ordo_core::{OrderId, RefundId, ShopId};
use ordo_store::OrderFilter;

use crate::{Engine, EngineError, EngineResult};

/// Most open orders one merge-group listing looks at.
const MERGE_SCAN_MAX: usize = 10_000;

/// What a refund gives back: an amount, or units of lines at their share of the price.
#[derive(Debug, Clone)]
pub enum RefundOf {
    Amount(i64),
    Lines(Vec<LineRefund>),
}

/// What an editor changes on an order, and the version they saw.
#[derive(Debug, Clone)]
pub struct OrderEdit {
    pub version: i64,
    pub lines: Option<Vec<LineRequest>>,
    pub shipping_address: Option<Address>,
    pub reason: Option<String>,
}

pub(crate) fn by(who: &Principal, shop: ShopId) -> By {
    By {
        shop,
        actor: Actor::of(who),
    }
}

/// An order as a caller submits it; prices come from the catalogue, not the caller.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub channel: String,
    pub external_id: Option<String>,
    pub buyer: Buyer,
    pub shipping_address: Option<Address>,
    pub lines: Vec<LineRequest>,
    pub shipping_minor: i64,
    pub note: Option<String>,
    pub payment_method: Option<String>,
    pub coupon_codes: Vec<String>,
}

/// Most orders one bulk request may name.
pub const BULK_MAX: usize = 500;

pub struct OrderPage {
    pub orders: Vec<Order>,
    pub next_cursor: Option<OrderId>,
}

/// Holds an Idempotency-Key as "in flight" until dropped, so a concurrent retry
/// gets 409 instead of racing the first request.
pub struct InFlight {
    engine: Engine,
    slot: (String, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut set) = self.engine.inner.in_flight.lock() {
            set.remove(&self.slot);
        }
    }
}

impl Engine {
    /// Marks an Idempotency-Key as being processed by this caller.
    pub fn claim_in_flight(&self, scope: &str, key: &str) -> EngineResult<InFlight> {
        let slot = (scope.to_string(), key.to_string());
        let mut set = self.inner.in_flight.lock().map_err(|_| EngineError::InFlight)?;
        if !set.insert(slot.clone()) {
            return Err(EngineError::InFlight);
        }
        Ok(InFlight {
            engine: self.clone(),
            slot,
        })
    }

    /// The stored result of an earlier request with this key, for POSTs outside the
    /// order path. A different request under the same key is an error.
    pub async fn idempotent_replay(&self, claim: &IdempotencyClaim) -> EngineResult<Option<IdempotencyRecord>> {
        match self.inner.store.get_idempotency(&claim.scope, &claim.key).await? {
            Some(r) if r.request_hash != claim.request_hash => {
                Err(ordo_core::CommandError::IdempotencyKeyReused.into())
            }
            other => Ok(other),
        }
    }

    pub async fn remember(&self, claim: &IdempotencyClaim, status_code: u16, resource: String) -> EngineResult<()> {
        let record = IdempotencyRecord {
            scope: claim.scope.clone(),
            key: claim.key.clone(),
            request_hash: claim.request_hash.clone(),
            status_code,
            resource,
            created_at: self.now(),
        };
        self.inner.store.put_idempotency(&record).await?;
        Ok(())
    }

    /// Places an order; returns it and whether it is a replay of an earlier one.
    pub async fn place_order(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        order: NewOrder,
        idempotency: Option<IdempotencyClaim>,
    ) -> EngineResult<(Order, bool)> {
        let shop = self.scope(who, shop, Action::PlaceOrders)?;
        let cmd = Command::PlaceOrder(Box::new(place_command(who, shop, order, idempotency)));
        match self.submit(cmd).await? {
            Outcome::Order { order, replayed } => {
                if !replayed {
                    crate::metrics::Metrics::add(&self.inner.metrics.orders_placed, 1);
                }
                Ok((*order, replayed))
            }
            _ => Err(crate::unexpected()),
        }
    }

    /// Places an order of a bulk import; answers with its id, status and total and
    /// whether it was imported before.
    pub(crate) async fn place_imported_order(
        &self,
        who: &Principal,
        shop: ShopId,
        order: NewOrder,
    ) -> EngineResult<(OrderId, OrderStatus, Money, bool)> {
        let shop = self.scope(who, Some(shop), Action::PlaceOrders)?;
        let cmd = Command::ImportOrder(Box::new(place_command(who, shop, order, None)));
        match self.submit(cmd).await? {
            Outcome::Placed {
                id,
                status,
                total,
                replayed,
            } => {
                if !replayed {
                    crate::metrics::Metrics::add(&self.inner.metrics.orders_placed, 1);
                }
                Ok((id, status, total, replayed))
            }
            _ => Err(crate::unexpected()),
        }
    }

    pub async fn get_order(&self, who: &Principal, shop: Option<ShopId>, id: OrderId) -> EngineResult<Order> {
        let shop = self.scope(who, shop, Action::ReadOrders)?;
        Ok(self.inner.store.get_order(shop, id).await?)
    }

    pub async fn list_orders(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        mut filter: OrderFilter,
    ) -> EngineResult<OrderPage> {
        let shop = self.scope(who, shop, Action::ReadOrders)?;
        filter.limit = filter.limit.clamp(1, 500);
        let orders = self.inner.store.list_orders(shop, &filter).await?;
        let next_cursor = if orders.len() as u32 == filter.limit {
            orders.last().map(|o| o.id)
        } else {
            None
        };
        Ok(OrderPage { orders, next_cursor })
    }

    pub async fn payments_of(&self, who: &Principal, shop: Option<ShopId>, id: OrderId) -> EngineResult<Vec<Payment>> {
        let order = self.get_order(who, shop, id).await?;
        Ok(self.inner.store.payments_of(order.shop, id).await?)
    }

    pub async fn refunds_of(&self, who: &Principal, shop: Option<ShopId>, id: OrderId) -> EngineResult<Vec<Refund>> {
        let order = self.get_order(who, shop, id).await?;
        Ok(self.inner.store.refunds_of(order.shop, id).await?)
    }

    /// Moves an order along its state machine.
    pub async fn order_step(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        id: OrderId,
        step: Step,
    ) -> EngineResult<Order> {
        let shop = self.shop_of(who, shop)?;
        let action = match step {
            Step::Ship { .. } => Action::ShipOrders,
            Step::Cancel(CancelReason::Buyer)
                if matches!(
                    who,
                    Principal::ShopKey {
                        role: ordo_core::auth::Role::Integration,
                        ..
                    }
                ) =>
            {
                Action::PlaceOrders
            }
            _ => Action::ManageOrders,
        };
        self.require(who, action)?;
        match self
            .submit(Command::Transition {
                by: by(who, shop),
                order: id,
                step,
            })
            .await?
        {
            Outcome::Order { order, .. } => Ok(*order),
            _ => Err(crate::unexpected()),
        }
    }

    /// The shop's orders in `status` that `keep` picks, read page by page as the
    /// store lists them, until the pages end or `max` are held.
    pub(crate) async fn scan_orders(
        &self,
        shop: ShopId,
        status: ordo_core::order::OrderStatus,
        max: usize,
        keep: impl Fn(&Order) -> bool,
    ) -> EngineResult<Vec<Order>> {
        const PAGE: u32 = 500;
        let mut kept = Vec::new();
        let mut cursor = None;
        while kept.len() < max {
            let filter = OrderFilter {
                status: Some(status),
                cursor,
                limit: PAGE,
                ..OrderFilter::default()
            };
            let page = self.inner.store.list_orders(shop, &filter).await?;
            cursor = page.last().map(|o| o.id);
            let full = page.len() == PAGE as usize;
            kept.extend(page.into_iter().filter(|o| keep(o)));
            if !full {
                break;
            }
        }
        Ok(kept)
    }

    /// The shop's fulfilling orders that should ship together (same buyer and
    /// address within the merge window), each group oldest first.
    pub async fn merge_groups(&self, who: &Principal, shop: Option<ShopId>) -> EngineResult<Vec<Vec<Order>>> {
        let shop = self.scope(who, shop, Action::ReadOrders)?;
        let window = self.inner.store.get_shop(shop).await?.settings.merge_window_secs;
        // Bounded: a warehouse works through at most this many open orders at a time.
        let waiting = self
            .scan_orders(shop, ordo_core::order::OrderStatus::Fulfilling, MERGE_SCAN_MAX, |_| {
                true
            })
            .await?;
        let groups = ordo_core::consolidation::merge_groups(&waiting, window);
        let by_id: std::collections::HashMap<OrderId, &Order> = waiting.iter().map(|o| (o.id, o)).collect();
        Ok(groups
            .into_iter()
            .map(|g| g.iter().filter_map(|id| by_id.get(id).map(|o| (*o).clone())).collect())
            .collect())
    }

    /// Ships several orders in one parcel under one tracking number (merged shipment).
    pub async fn ship_together(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        orders: Vec<OrderId>,
        carrier: String,
        tracking_number: String,
    ) -> EngineResult<Vec<Order>> {
        let shop = self.scope(who, shop, Action::ShipOrders)?;
        if orders.len() > BULK_MAX {
            return Err(EngineError::invalid(
                "bulk-size",
                format!("give at most {BULK_MAX} order ids"),
            ));
        }
        let cmd = Command::ShipTogether(Box::new(ShipTogether {
            by: by(who, shop),
            orders,
            carrier,
            tracking_number,
        }));
        match self.submit(cmd).await? {
            Outcome::Orders(orders) => Ok(orders),
            _ => Err(crate::unexpected()),
        }
    }

    /// Edits an order before it ships (A8), against the version the editor saw.
    pub async fn edit_order(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        id: OrderId,
        change: OrderEdit,
    ) -> EngineResult<Order> {
        let shop = self.scope(who, shop, Action::ManageOrders)?;
        if change.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
            return Err(EngineError::invalid(
                "field-too-long",
                "reason has at most 500 characters",
            ));
        }
        let cmd = Command::EditOrder(Box::new(EditOrder {
            by: by(who, shop),
            order: id,
            expected_version: change.version,
            lines: change.lines,
            shipping_address: change.shipping_address,
            reason: change.reason,
        }));
        match self.submit(cmd).await? {
            Outcome::Order { order, .. } => Ok(*order),
            _ => Err(crate::unexpected()),
        }
    }

    /// Applies one step to many orders (bulk approve or reject); each order
    /// succeeds or fails on its own, and they share group commits.
    pub async fn order_steps(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        ids: &[OrderId],
        step: Step,
    ) -> EngineResult<Vec<EngineResult<Order>>> {
        if ids.is_empty() || ids.len() > BULK_MAX {
            return Err(EngineError::invalid(
                "bulk-size",
                format!("give 1 to {BULK_MAX} order ids"),
            ));
        }
        let each = ids.iter().map(|id| self.order_step(who, shop, *id, step.clone()));
        Ok(futures_util::future::join_all(each).await)
    }

    pub async fn resolve_payment_exception(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        id: OrderId,
        accept: bool,
    ) -> EngineResult<Order> {
        let shop = self.scope(who, shop, Action::ManageOrders)?;
        match self
            .submit(Command::ResolvePaymentException {
                by: by(who, shop),
                order: id,
                accept,
            })
            .await?
        {
            Outcome::Order { order, .. } => Ok(*order),
            _ => Err(crate::unexpected()),
        }
    }

    pub async fn refund(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        id: OrderId,
        what: RefundOf,
        reason: String,
        idempotency: Option<IdempotencyClaim>,
    ) -> EngineResult<(Order, Vec<RefundId>, bool)> {
        let shop = self.scope(who, shop, Action::Refund)?;
        let cmd = Command::Refund(RefundRequest {
            by: by(who, shop),
            order: id,
            amount_minor: match &what {
                RefundOf::Amount(a) => *a,
                RefundOf::Lines(_) => 0,
            },
            lines: match what {
                RefundOf::Amount(_) => Vec::new(),
                RefundOf::Lines(lines) => lines,
            },
            reason,
            idempotency,
        });
        match self.submit(cmd).await? {
            Outcome::Refunds {
                order,
                refunds,
                replayed,
            } => Ok((*order, refunds, replayed)),
            _ => Err(crate::unexpected()),
        }
    }
}

/// The core's command for a new order placed by `who` in `shop`.
fn place_command(who: &Principal, shop: ShopId, order: NewOrder, idempotency: Option<IdempotencyClaim>) -> PlaceOrder {
    PlaceOrder {
        by: by(who, shop),
        channel: order.channel,
        external_id: order.external_id,
        buyer: order.buyer,
        shipping_address: order.shipping_address,
        lines: order.lines,
        shipping_minor: order.shipping_minor,
        note: order.note,
        payment_method: order.payment_method,
        coupon_codes: order.coupon_codes,
        channel_terms: None,
        idempotency,
    }
}
