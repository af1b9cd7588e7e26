use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;

use crate::AppState;
use crate::dto::NotifyResult;
use crate::problem::ApiResult;

/// Gateways retry until they get a 2xx, so a duplicate answers 200 too.
#[utoipa::path(post, path = "/api/v1/payments/{gateway}/notify", tag = "payments",
    params(("gateway" = String, Path), ("Ordo-Timestamp" = String, Header, description = "Unix seconds"), ("Ordo-Signature" = String, Header, description = "hex HMAC-SHA256 of `{timestamp}.{body}`")),
    responses((status = 200, body = NotifyResult), (status = 401, body = crate::problem::Problem)))]
pub async fn notify(
    State(s): State<AppState>,
    Path(gateway): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<NotifyResult>> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let result = s
        .engine
        .payment_notify(&gateway, &header("ordo-timestamp"), &header("ordo-signature"), &body)
        .await?;
    let name = serde_json::to_value(result).ok().and_then(|v| match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Object(m) => m.keys().next().cloned(),
        _ => None,
    });
    Ok(Json(NotifyResult {
        result: name.unwrap_or_default(),
    }))
}
