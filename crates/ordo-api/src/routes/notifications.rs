//! The notification delivery log (K1): what was sent to buyers, on which channel,
//! and every attempt.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ordo_core::OrderId;
use ordo_core::auth::{Action, Principal, mask_tail};
use ordo_core::notify::{Locale, NotificationSettings};
use ordo_engine::EngineError;
use ordo_store::{NotificationAttempt, NotificationFilter, NotificationRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::dto::time;
use crate::extract::{Caller, Query};
use crate::problem::{ApiError, ApiResult};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NotificationParams {
    /// Only this order's notifications (`ord_…`).
    pub order: Option<String>,
    /// Return notifications older than this id (the `next_cursor` of the previous page).
    pub cursor: Option<i64>,
    /// 1 to 500; default 50.
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationPage {
    /// Newest first.
    pub items: Vec<NotificationView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationView {
    pub id: i64,
    pub order_id: String,
    /// The event that caused it.
    pub event_id: i64,
    /// `email` or `sms`.
    pub channel: String,
    /// Masked for roles that do not see buyer contact details.
    pub recipient: String,
    /// The event kind whose template was used, e.g. `order.paid`.
    pub template: String,
    /// `zh-CN` or `en`.
    pub locale: String,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<AttemptView>,
}

#[derive(Serialize, ToSchema)]
pub struct AttemptView {
    pub at: String,
    pub ok: bool,
    /// The provider's answer, or the error.
    pub detail: String,
}

/// A shop's notification delivery log with each notification's attempts.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", params(NotificationParams), responses((status = 200, body = NotificationPage)))]
pub async fn list(
    State(s): State<AppState>,
    c: Caller,
    Query(q): Query<NotificationParams>,
) -> ApiResult<Json<NotificationPage>> {
    let shop = s.engine.shop_of(&c.who, c.shop)?;
    if !c.who.may(Action::ReadOrders) {
        return Err(EngineError::Forbidden.into());
    }
    let order = q
        .order
        .as_deref()
        .map(|v| {
            v.parse::<OrderId>()
                .map_err(|e| ApiError::bad_request("invalid-order", e.to_string()))
        })
        .transpose()?;
    let filter = NotificationFilter {
        order,
        cursor: q.cursor,
        limit: q.limit.unwrap_or(50).clamp(1, 500),
    };
    let store = s.engine.store();
    let records = store
        .list_notifications(shop, &filter)
        .await
        .map_err(EngineError::from)?;
    let ids: Vec<i64> = records.iter().map(|n| n.id).collect();
    let attempts = store
        .notification_attempts(shop, &ids)
        .await
        .map_err(EngineError::from)?;
    let next_cursor = if records.len() as u32 == filter.limit {
        records.last().map(|n| n.id)
    } else {
        None
    };
    let items = records.iter().map(|n| view(n, &attempts, &c.who)).collect();
    Ok(Json(NotificationPage { items, next_cursor }))
}

fn view(n: &NotificationRecord, attempts: &[NotificationAttempt], who: &Principal) -> NotificationView {
    let full = who.sees_buyer_contact();
    let masked = mask_tail(&n.recipient, 4);
    // Provider errors may quote the address; hide it there too.
    let hide = |text: &str| {
        if full || n.recipient.is_empty() {
            text.to_string()
        } else {
            text.replace(&n.recipient, &masked)
        }
    };
    NotificationView {
        id: n.id,
        order_id: n.order.to_string(),
        event_id: n.event_seq,
        channel: n.channel.as_str().into(),
        recipient: if full { n.recipient.clone() } else { masked.clone() },
        template: n.template.clone(),
        locale: n.locale.as_str().into(),
        status: n.status.as_str().into(),
        attempts: n.attempts,
        next_attempt_at: n.next_attempt_at.map(time),
        last_error: n.last_error.as_deref().map(hide),
        created_at: time(n.created_at),
        sent_at: n.sent_at.map(time),
        attempt_log: attempts
            .iter()
            .filter(|a| a.notification == n.id)
            .map(|a| AttemptView {
                at: time(a.at),
                ok: a.ok,
                detail: hide(&a.detail),
            })
            .collect(),
    }
}

/// A shop's buyer-notification settings, as shop settings show and take them.
#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettingsDto {
    /// Language of the messages: `zh-CN` (default) or `en`.
    #[serde(default = "zh_cn")]
    pub locale: String,
    /// E-mail buyers who gave an address (default true).
    #[serde(default = "yes")]
    pub email: bool,
    /// Text the buyer's phone for payment reminders, payments, dispatch, refunds and codes (default true).
    #[serde(default = "yes")]
    pub sms: bool,
}

fn zh_cn() -> String {
    Locale::ZhCn.as_str().into()
}

fn yes() -> bool {
    true
}

impl From<&NotificationSettings> for NotificationSettingsDto {
    fn from(s: &NotificationSettings) -> Self {
        NotificationSettingsDto {
            locale: s.locale.as_str().into(),
            email: s.email,
            sms: s.sms,
        }
    }
}

impl NotificationSettingsDto {
    pub fn into_settings(self) -> ApiResult<NotificationSettings> {
        let locale = Locale::parse(&self.locale).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-locale",
                "notifications.locale must be `zh-CN` or `en`",
            )
        })?;
        Ok(NotificationSettings {
            locale,
            email: self.email,
            sms: self.sms,
        })
    }
}
