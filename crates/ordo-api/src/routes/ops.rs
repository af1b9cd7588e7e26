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

pub async fn count_requests(State(engine): State<Engine>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    engine.count_http(resp.status() >= StatusCode::INTERNAL_SERVER_ERROR);
    resp
}
