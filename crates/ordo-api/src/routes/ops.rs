use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ordo_engine::Engine;

use crate::AppState;

#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "The server is up")))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.engine.metrics_text(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "ops", responses((status = 200, description = "This API's OpenAPI 3.1 document")))]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::spec_json(),
    )
        .into_response()
}

/// Counts every request for `/metrics` and traces it (no bodies, no personal data).
pub async fn count_requests(State(engine): State<Engine>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let resp = next.run(req).await;
    let status = resp.status();
    engine.count_http(status >= StatusCode::INTERNAL_SERVER_ERROR);
    tracing::debug!(
        http.method = %method,
        http.path = %path,
        http.status = status.as_u16(),
        http.latency_us = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

/// A known path with the wrong method.
pub async fn method_not_allowed() -> crate::problem::ApiError {
    crate::problem::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this path does not take that method",
    )
}

/// Unknown paths answer with a problem too, like every other error.
pub async fn not_found() -> crate::problem::ApiError {
    crate::problem::ApiError::new(StatusCode::NOT_FOUND, "no-such-route", "no such path in this API")
}
