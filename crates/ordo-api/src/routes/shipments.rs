//! Merged shipments (A6, 合并发货): which orders should travel together, and
//! shipping them as one parcel.

use axum::Json;
use axum::extract::State;
use ordo_core::OrderId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::dto::OrderView;
use crate::extract::{Caller, Post, json_body};
use crate::problem::{ApiError, ApiResult};

#[derive(Serialize, ToSchema)]
pub struct MergeGroupView {
    /// Oldest first; ship them with `POST /api/v1/shipments`.
    pub order_ids: Vec<String>,
    pub buyer_id: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipTogetherRequest {
    pub order_ids: Vec<String>,
    pub carrier: String,
    pub tracking_number: String,
}

/// Fulfilling orders of one buyer to one address placed within the shop's merge
/// window (`merge_window_secs`), never cash on delivery, never split orders.
#[utoipa::path(get, path = "/api/v1/shipments/merge-groups", tag = "orders",
    responses((status = 200, body = Vec<MergeGroupView>)))]
pub async fn merge_groups(State(s): State<AppState>, c: Caller) -> ApiResult<Json<Vec<MergeGroupView>>> {
    let groups = s.engine.merge_groups(&c.who, c.shop).await?;
    Ok(Json(
        groups
            .iter()
            .map(|g| MergeGroupView {
                order_ids: g.iter().map(|o| o.id.to_string()).collect(),
                buyer_id: g.first().map(|o| o.buyer.id.clone()).unwrap_or_default(),
            })
            .collect(),
    ))
}

/// Ships the orders as one parcel: all or none, under one tracking number.
#[utoipa::path(post, path = "/api/v1/shipments", tag = "orders", request_body = ShipTogetherRequest,
    responses((status = 200, body = Vec<OrderView>), (status = 422, body = crate::problem::Problem)))]
pub async fn ship_together(State(s): State<AppState>, p: Post) -> ApiResult<Json<Vec<OrderView>>> {
    let (idem, replay) = super::idem::begin(&s.engine, p.claim).await?;
    let who = &p.caller.who;
    if let Some(rec) = replay {
        // The same request again: the orders it shipped, as they stand now.
        let mut orders = Vec::new();
        for id in rec.resource.split(',').filter_map(|id| id.parse::<OrderId>().ok()) {
            orders.push(OrderView::new(&s.engine.get_order(who, p.caller.shop, id).await?, who));
        }
        return Ok(Json(orders));
    }
    let req: ShipTogetherRequest = json_body(&p.body)?;
    if req.carrier.len() > 64 || req.tracking_number.len() > 64 {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "field-too-long",
            "carrier and tracking_number have at most 64 characters",
        ));
    }
    let ids = req
        .order_ids
        .iter()
        .map(|id| id.parse::<OrderId>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad_request("invalid-order-id", e.to_string()))?;
    let shipped = s
        .engine
        .ship_together(who, p.caller.shop, ids, req.carrier, req.tracking_number)
        .await?;
    let ids: Vec<String> = shipped.iter().map(|o| o.id.to_string()).collect();
    idem.finish(&s.engine, 200, ids.join(",")).await?;
    Ok(Json(shipped.iter().map(|o| OrderView::new(o, who)).collect()))
}
