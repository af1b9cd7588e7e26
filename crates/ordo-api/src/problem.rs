//! Errors at the edge: every failure becomes an RFC 9457 `application/problem+json`
//! body with a stable `type`. Mapped once, here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ordo_core::CommandError;
use ordo_engine::EngineError;
use serde::Serialize;
use utoipa::ToSchema;

pub const TYPE_BASE: &str = "https://ordo.dev/problems/";

#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `https://ordo.dev/problems/insufficient-stock`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
        }
    }
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "no such resource in your shop")
    }
}

fn title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        use StatusCode as S;
        match e {
            EngineError::Unauthenticated => ApiError::new(S::UNAUTHORIZED, "unauthenticated", e.to_string()),
            EngineError::Forbidden => ApiError::new(S::FORBIDDEN, "forbidden", e.to_string()),
            EngineError::NotFound => ApiError::not_found(),
            EngineError::Invalid { code, message } => ApiError::new(S::UNPROCESSABLE_ENTITY, code, message),
            EngineError::Rule(rule) => from_rule(rule),
            EngineError::Conflict(m) => ApiError::new(S::CONFLICT, "conflict", m),
            EngineError::InFlight => ApiError::new(S::CONFLICT, "idempotency-key-in-flight", e.to_string()),
            EngineError::Overloaded => ApiError::new(S::SERVICE_UNAVAILABLE, "overloaded", e.to_string()),
            EngineError::RateLimited => ApiError::new(S::TOO_MANY_REQUESTS, "rate-limited", e.to_string()),
            EngineError::BadSignature => ApiError::new(S::UNAUTHORIZED, "bad-signature", e.to_string()),
            EngineError::Store(ordo_store::StoreError::Unavailable(inner)) => {
                tracing::error!(error = %inner, "database unavailable");
                ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable; retry with the same Idempotency-Key",
                )
            }
            EngineError::Store(inner) => {
                tracing::error!(error = %inner, "storage error");
                ApiError::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server could not complete the request",
                )
            }
        }
    }
}

fn from_rule(rule: CommandError) -> ApiError {
    let status = if rule.is_not_found() {
        StatusCode::NOT_FOUND
    } else if matches!(
        rule,
        CommandError::Transition(_)
            | CommandError::PaymentTransition(_)
            | CommandError::NoPaymentException
            | CommandError::VersionConflict { .. }
            | CommandError::NotEditable { .. }
    ) {
        StatusCode::CONFLICT
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    ApiError::new(status, rule.code(), rule.to_string())
}

impl ApiError {
    /// The problem+json body of this error.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("{TYPE_BASE}{}", self.code),
            title: title(self.status).to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.problem();
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
