//! Virtual goods' code pools (G1): add codes, see how many are left, and open the
//! codes delivered to an order for the people who serve the buyer.

use axum::Json;
use axum::extract::{Path, State};
use ordo_core::OrderId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::extract::{Caller, Post, json_body};
use crate::problem::{ApiError, ApiResult};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddCodes {
    /// Codes or links, 1 to 10,000 per request; ones the pool holds already are skipped.
    pub codes: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CodesAddedView {
    pub added: u64,
    pub duplicates: u64,
    /// Unassigned codes in the pool now.
    pub available: i64,
}

#[derive(Serialize, ToSchema)]
pub struct CodePoolView {
    pub sku: String,
    pub available: i64,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveredCodeView {
    pub id: String,
    pub sku: String,
    pub code: String,
}

#[utoipa::path(post, path = "/api/v1/code-pools/{sku}", tag = "catalog", params(("sku" = String, Path)),
    request_body = AddCodes, responses((status = 200, body = CodesAddedView), (status = 422, body = crate::problem::Problem)))]
pub async fn add(State(s): State<AppState>, Path(sku): Path<String>, p: Post) -> ApiResult<Json<CodesAddedView>> {
    let req: AddCodes = json_body(&p.body)?;
    let done = s
        .engine
        .add_codes(&p.caller.who, p.caller.shop, &sku, req.codes)
        .await?;
    Ok(Json(CodesAddedView {
        added: done.added,
        duplicates: done.duplicates,
        available: done.available,
    }))
}

#[utoipa::path(get, path = "/api/v1/code-pools/{sku}", tag = "catalog", params(("sku" = String, Path)),
    responses((status = 200, body = CodePoolView)))]
pub async fn pool(State(s): State<AppState>, c: Caller, Path(sku): Path<String>) -> ApiResult<Json<CodePoolView>> {
    let available = s.engine.codes_available(&c.who, c.shop, &sku).await?;
    Ok(Json(CodePoolView { sku, available }))
}

/// The codes delivered to an order, in the clear: for roles that see buyers' data.
#[utoipa::path(get, path = "/api/v1/orders/{id}/codes", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = Vec<DeliveredCodeView>), (status = 403, body = crate::problem::Problem)))]
pub async fn of_order(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<DeliveredCodeView>>> {
    let id: OrderId = id.parse().map_err(|_| ApiError::not_found())?;
    let codes = s.engine.order_codes(&c.who, c.shop, id).await?;
    Ok(Json(
        codes
            .into_iter()
            .map(|c| DeliveredCodeView {
                id: c.id.to_string(),
                sku: c.sku,
                code: c.code,
            })
            .collect(),
    ))
}
