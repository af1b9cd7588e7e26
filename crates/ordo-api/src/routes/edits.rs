//! Editing an order before it ships (A8).

use axum::Json;
use axum::extract::{Path, State};
use ordo_core::OrderId;
use ordo_core::batch::LineRequest;
use ordo_engine::OrderEdit;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::dto::{AddressDto, LineDto, OrderView, address_from};
use crate::extract::{Post, json_body};
use crate::problem::{ApiError, ApiResult};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditOrderRequest {
    /// The order's `version` as you read it; a concurrent change answers 409.
    pub version: i64,
    /// The order's new lines, repriced with the order's own promotions; stock
    /// reservations follow. Absent keeps the lines.
    pub lines: Option<Vec<LineDto>>,
    pub shipping_address: Option<AddressDto>,
    /// Why (kept in the order's revisions and the event).
    pub reason: Option<String>,
}

/// Edits an order that has not started to ship. The price difference becomes an
/// amount due (a new pending payment the buyer pays through a gateway) or a refund.
#[utoipa::path(patch, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = String, Path)),
    request_body = EditOrderRequest,
    responses((status = 200, body = OrderView), (status = 409, body = crate::problem::Problem),
        (status = 422, body = crate::problem::Problem)))]
pub async fn edit(State(s): State<AppState>, Path(id): Path<String>, p: Post) -> ApiResult<Json<OrderView>> {
    let id: OrderId = id.parse().map_err(|_| ApiError::not_found())?;
    let req: EditOrderRequest = json_body(&p.body)?;
    let change = OrderEdit {
        version: req.version,
        lines: req.lines.map(|lines| {
            lines
                .into_iter()
                .map(|l| LineRequest {
                    sku: l.sku,
                    quantity: l.quantity,
                })
                .collect()
        }),
        shipping_address: req.shipping_address.map(address_from),
        reason: req.reason,
    };
    let who = &p.caller.who;
    let order = s.engine.edit_order(who, p.caller.shop, id, change).await?;
    Ok(Json(OrderView::new(&order, who)))
}
