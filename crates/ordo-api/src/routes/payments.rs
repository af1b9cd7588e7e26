use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use ordo_engine::gateway::{ALIPAY, Answer, Inbound};
use serde::Deserialize;

use crate::AppState;
use crate::dto::NotifyResult;
use crate::extract::Query;
use crate::problem::{ApiError, ApiResult};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NotifyParams {
    /// The shop, for gateways whose payload does not carry it.
    pub shop: Option<String>,
}

/// Gateways retry until they get a 2xx, so a duplicate answers 200 too.
#[utoipa::path(post, path = "/api/v1/payments/{gateway}/notify", tag = "payments",
    params(
        ("gateway" = String, Path, description = "`stripe`, `alipay`, or any other name for the generic format"),
        NotifyParams,
        ("Ordo-Timestamp" = Option<String>, Header, description = "generic format: Unix seconds"),
        ("Ordo-Signature" = Option<String>, Header, description = "generic format: hex HMAC-SHA256 of `{timestamp}.{body}`"),
        ("Stripe-Signature" = Option<String>, Header, description = "stripe: `t=…,v1=…`"),
    ),
    responses((status = 200, body = NotifyResult, description = "JSON; `alipay` gets the plain text `success` it expects"),
        (status = 401, body = crate::problem::Problem)))]
pub async fn notify(
    State(s): State<AppState>,
    Path(gateway): Path<String>,
    Query(q): Query<NotifyParams>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let shop = q
        .shop
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|_| ApiError::not_found())?;
    let inbound = Inbound {
        body: &body,
        timestamp: header("ordo-timestamp"),
        signature: header("ordo-signature"),
        stripe_signature: header("stripe-signature"),
        shop,
    };
    let answer = s.engine.payment_notify(&gateway, inbound).await?;
    if gateway == ALIPAY {
        return Ok("success".into_response());
    }
    let result = match answer {
        Answer::Ignored => "ignored".to_string(),
        Answer::Applied(result) => serde_json::to_value(result)
            .ok()
            .and_then(|v| match v {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Object(m) => m.keys().next().cloned(),
                _ => None,
            })
            .unwrap_or_default(),
    };
    Ok(Json(NotifyResult { result }).into_response())
}
