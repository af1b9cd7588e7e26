//! The notification worker: plan from the event log, deliver what is due.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ordo_core::notify::{self, Channel, Codes, Message, NotificationSettings, Template};
use ordo_core::{OrderId, ShopId};
use ordo_engine::Clock;
use ordo_store::{
    AttemptOutcome, DynStore, NewNotification, NotificationAttempt, NotificationRecord, StoreError, StoreResult,
};

use crate::provider::{Provider, ProviderError};

/// Events read, and notifications delivered, per round.
const PAGE: u32 = 200;
/// How long a claimed notification is kept from other workers, and how many are
/// claimed at once: the claim must outlast sending them all one after the other
/// (each provider gives up on a send within a minute), and still run out soon after
/// a crash.
const LEASE_SECS: i64 = 300;
const CLAIM_AT_ONCE: usize = 4;

/// Reads the codes delivered for a virtual-goods order (they are stored encrypted
/// elsewhere and never enter the event log or the delivery log).
#[async_trait]
pub trait CodeSource: Send + Sync + 'static {
    async fn delivered_codes(&self, shop: ShopId, order: OrderId) -> Result<Vec<String>, String>;
}

/// The provider for each channel. A channel without one still gets its
/// notifications planned, and each is recorded `failed` with "no provider
/// configured" (one attempt, no retries), so the delivery log shows why a buyer
/// heard nothing.
#[derive(Clone, Default)]
pub struct Providers {
    pub email: Option<Arc<dyn Provider>>,
    pub sms: Option<Arc<dyn Provider>>,
}

impl Providers {
    fn of(&self, channel: Channel) -> Option<&Arc<dyn Provider>> {
        match channel {
            Channel::Email => self.email.as_ref(),
            Channel::Sms => self.sms.as_ref(),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Notifications recorded from new events.
    pub planned: u64,
    pub sent: u32,
    /// Failed attempts that will be retried.
    pub retrying: u32,
    /// Notifications that gave up.
    pub failed: u32,
}

#[derive(Clone)]
pub struct Notifier {
    store: DynStore,
    clock: Arc<dyn Clock>,
    providers: Providers,
    codes: Option<Arc<dyn CodeSource>>,
}

impl Notifier {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>, providers: Providers) -> Notifier {
        Notifier {
            store,
            clock,
            providers,
            codes: None,
        }
    }

    /// Lets `order.codes_delivered` messages list the codes; without a source they
    /// tell the buyer to look at their order page.
    pub fn with_code_source(mut self, codes: Arc<dyn CodeSource>) -> Notifier {
        self.codes = Some(codes);
        self
    }

    /// Runs [`Notifier::run_once`] every `every` until the task is aborted. Errors
    /// (the database away) are logged and the next round tries again.
    pub fn spawn(self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run_once().await {
                    Ok(r) if r != RoundReport::default() => tracing::debug!(?r, "notifications"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "notification round failed"),
                }
                tokio::time::sleep(every).await;
            }
        })
    }

    /// One round: plan every new event, then deliver everything due now.
    pub async fn run_once(&self) -> StoreResult<RoundReport> {
        let planned = self.plan_new_events().await?;
        let mut report = self.deliver_due().await?;
        report.planned = planned;
        Ok(report)
    }

    /// Plans notifications for the events after the cursor, page by page, and
    /// records them with the new cursor. Returns how many were recorded.
    pub async fn plan_new_events(&self) -> StoreResult<u64> {
        let mut recorded = 0;
        let mut settings: HashMap<ShopId, Option<NotificationSettings>> = HashMap::new();
        loop {
            let after = self.store.notification_cursor().await?;
            let events = self.store.events_after(None, after, PAGE).await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                return Ok(recorded);
            };
            let now = self.clock.now();
            let mut items = Vec::new();
            for event in &events {
                if Template::from_kind(&event.kind).is_none() {
                    continue;
                }
                let (Some(shop), Some(order_id)) = (event.shop, notify::order_of(event)) else {
                    continue;
                };
                if let Entry::Vacant(slot) = settings.entry(shop) {
                    slot.insert(match self.store.get_shop(shop).await {
                        Ok(s) => Some(s.settings.notifications),
                        Err(StoreError::NotFound) => None,
                        Err(e) => return Err(e),
                    });
                }
                let Some(Some(shop_settings)) = settings.get(&shop) else {
                    continue;
                };
                let order = match self.store.get_order(shop, order_id).await {
                    Ok(order) => order,
                    Err(StoreError::NotFound) => {
                        tracing::warn!(seq = event.seq, order = %order_id, "event names an order that is not there");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                items.extend(
                    notify::plan(event, &order, shop_settings)
                        .into_iter()
                        .map(|p| NewNotification {
                            shop,
                            event_seq: event.seq,
                            order: order_id,
                            channel: p.channel,
                            recipient: p.to,
                            template: p.template.kind().to_string(),
                            locale: p.locale,
                            data: p.data,
                            created_at: now,
                        }),
                );
            }
            recorded += self.store.enqueue_notifications(items, last).await?;
            if events.len() < PAGE as usize {
                return Ok(recorded);
            }
        }
    }

    /// Sends the notifications due now (one page), recording each attempt.
    pub async fn deliver_due(&self) -> StoreResult<RoundReport> {
        let mut report = RoundReport::default();
        let due = self.store.due_notifications(self.clock.now(), PAGE).await?;
        for chunk in due.chunks(CLAIM_AT_ONCE) {
            let ids: Vec<i64> = chunk.iter().map(|n| n.id).collect();
            let now = self.clock.now();
            let mine = self
                .store
                .claim_notifications(&ids, now, now.plus_secs(LEASE_SECS))
                .await?;
            for n in chunk.iter().filter(|n| mine.contains(&n.id)) {
                match self.deliver(n).await? {
                    AttemptOutcome::Sent => report.sent += 1,
                    AttemptOutcome::Retry { .. } => report.retrying += 1,
                    AttemptOutcome::Failed => report.failed += 1,
                }
            }
        }
        Ok(report)
    }

    async fn deliver(&self, n: &NotificationRecord) -> StoreResult<AttemptOutcome> {
        let result = match self.providers.of(n.channel) {
            None => Err(ProviderError::Rejected(format!(
                "no provider configured for {}",
                n.channel.as_str()
            ))),
            Some(provider) => match self.message(n).await? {
                Ok(message) => provider.send(&n.recipient, &message).await,
                Err(why) => Err(why),
            },
        };
        let at = self.clock.now();
        let (attempt, then) = match result {
            Ok(receipt) => (
                NotificationAttempt {
                    notification: n.id,
                    at,
                    ok: true,
                    detail: receipt.detail,
                },
                AttemptOutcome::Sent,
            ),
            Err(e) => {
                let then = match notify::next_attempt(n.attempts + 1, at) {
                    Some(retry) if !e.is_permanent() => AttemptOutcome::Retry { at: retry },
                    _ => AttemptOutcome::Failed,
                };
                tracing::info!(id = n.id, channel = n.channel.as_str(), error = %e, ?then, "notification attempt failed");
                let attempt = NotificationAttempt {
                    notification: n.id,
                    at,
                    ok: false,
                    detail: e.to_string(),
                };
                (attempt, then)
            }
        };
        self.store.record_notification_attempt(n.id, &attempt, then).await?;
        Ok(then)
    }

    /// Renders a notification from the order as it is now. `Err` inside `Ok` is a
    /// notification that cannot be rendered at all (its order or template gone).
    async fn message(&self, n: &NotificationRecord) -> StoreResult<Result<Message, ProviderError>> {
        let Some(template) = Template::from_kind(&n.template) else {
            return Ok(Err(ProviderError::Rejected(format!(
                "unknown template `{}`",
                n.template
            ))));
        };
        let order = match self.store.get_order(n.shop, n.order).await {
            Ok(order) => order,
            Err(StoreError::NotFound) => return Ok(Err(ProviderError::Rejected("order not found".into()))),
            Err(e) => return Err(e),
        };
        if template == Template::PaymentReminder && order.status != ordo_core::order::OrderStatus::PendingPayment {
            // Paid (or cancelled) since the reminder was planned: a reminder now would mislead.
            return Ok(Err(ProviderError::Rejected(
                "not sent: the order no longer awaits payment".into(),
            )));
        }
        if template == Template::PresaleRescheduled && !order.status.before_shipment() {
            // Shipped or cancelled since the date moved: the new date no longer matters.
            return Ok(Err(ProviderError::Rejected(
                "not sent: the order has shipped or was cancelled".into(),
            )));
        }
        let listed = match (&self.codes, template) {
            (Some(source), Template::CodesDelivered) => match source.delivered_codes(n.shop, n.order).await {
                Ok(codes) => Some(codes),
                Err(e) => {
                    // The buyer still hears that the codes are there.
                    tracing::warn!(order = %n.order, error = %e, "delivered codes unavailable; pointing at the order page");
                    None
                }
            },
            _ => None,
        };
        let codes = listed.as_deref().map_or(Codes::Unavailable, Codes::Listed);
        Ok(Ok(notify::render(template, n.locale, &order, &n.data, codes)))
    }
}
