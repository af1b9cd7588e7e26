//! The event log as the API reads it: paging and waiting for new events.

use std::time::Duration;

use ordo_core::auth::{Action, Principal};
use ordo_core::event::Event;
use ordo_core::{EventSeq, ShopId};

use crate::{Engine, EngineResult};

impl Engine {
    /// Events after `after`, oldest first: a shop key sees its shop's, the admin
    /// every shop's (or one shop's when it names it).
    pub async fn events_after(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        after: EventSeq,
        limit: u32,
    ) -> EngineResult<Vec<Event>> {
        self.require(who, Action::ReadEvents)?;
        let scope = match who {
            Principal::PlatformAdmin => shop,
            Principal::ShopKey { .. } => Some(self.shop_of(who, shop)?),
        };
        Ok(self
            .inner
            .store
            .events_after(scope, after, limit.clamp(1, 1000))
            .await?)
    }

    /// Waits until this process commits new events or `max` passes (events from
    /// other processes on the same database are picked up by the caller's next poll).
    pub async fn wait_for_events(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.inner.new_events.notified()).await;
    }
}
