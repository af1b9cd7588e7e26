//! Ordo's HTTP edge: REST/JSON under `/api/v1`, OpenAPI at `/api/openapi.json`,
//! Server-Sent Events, health and metrics. DTOs and the problem+json mapping live
//! here only; handlers are thin: parse, call the engine, render.

pub mod dto;
mod extract;
mod openapi;
pub mod problem;
mod routes;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use ordo_engine::Engine;

/// Largest request body accepted.
pub const BODY_BYTES_MAX: usize = 256 * 1024;
/// Largest CSV import accepted.
pub const IMPORT_BYTES_MAX: usize = 32 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
}

pub fn router(engine: Engine) -> Router {
    routes::routes()
        .layer(axum::middleware::from_fn_with_state(
            engine.clone(),
            routes::ops::count_requests,
        ))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(AppState { engine })
}

pub use openapi::spec_json;
