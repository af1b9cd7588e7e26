use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ordo_core::OrderId;
use ordo_core::batch::{LineRefund, LineRequest, Step};
use ordo_core::order::{CancelReason, OrderStatus};
use ordo_engine::{NewOrder, RefundOf};
use ordo_store::OrderFilter;
use serde::Deserialize;

use super::idem;
use crate::AppState;
use crate::dto::{
    ApproveOrder, BulkApprove, BulkItem, BulkReject, BulkResult, CancelOrder, CreateOrder, CreateRefund, HoldOrder,
    OrderPageView, OrderView, PaymentView, RefundResult, RefundView, RejectOrder, ResolvePayment, ShipOrder,
    address_from, buyer_from, parse_time,
};
use crate::extract::{Caller, Post, Query, json_body};
use crate::problem::{ApiError, ApiResult};

fn order_id(s: &str) -> ApiResult<OrderId> {
    s.parse().map_err(|_| ApiError::not_found())
}

fn unprocessable(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
}

fn replayed(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", request_body = CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key: the same key and body return the first result")),
    responses((status = 201, body = OrderView), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem), (status = 503, body = crate::problem::Problem)))]
pub async fn create(State(s): State<AppState>, p: Post) -> ApiResult<Response> {
    let (c, claim, body) = (p.caller, p.claim, p.body);
    let _guard = idem::hold(&s.engine, &claim)?;
    let req: CreateOrder = json_body(&body)?;
    let order = NewOrder {
        channel: req.channel.unwrap_or_else(|| "api".into()),
        external_id: req.external_id,
        buyer: buyer_from(req.buyer),
        shipping_address: req.shipping_address.map(address_from),
        lines: req
            .lines
            .into_iter()
            .map(|l| LineRequest {
                sku: l.sku,
                quantity: l.quantity,
            })
            .collect(),
        shipping_minor: req.shipping_minor,
        note: req.note,
        payment_method: req.payment_method,
        coupon_codes: req.coupon_codes,
    };
    check_lengths(&order)?;
    let (order, was_replayed) = s.engine.place_order(&c.who, c.shop, order, claim).await?;
    let resp = (StatusCode::CREATED, Json(OrderView::new(&order, &c.who))).into_response();
    Ok(if was_replayed { replayed(resp) } else { resp })
}

/// Free-text fields are bounded so one order cannot carry megabytes of notes.
fn check_lengths(o: &NewOrder) -> ApiResult<()> {
    let long = |v: &Option<String>, max: usize| v.as_ref().is_some_and(|s| s.chars().count() > max);
    if o.channel.is_empty() || o.channel.len() > 32 {
        return Err(unprocessable("invalid-channel", "channel must have 1 to 32 characters"));
    }
    if long(&o.external_id, 128)
        || long(&o.note, 2000)
        || long(&o.payment_method, 32)
        || o.buyer.id.is_empty()
        || o.buyer.id.len() > 128
    {
        return Err(unprocessable(
            "field-too-long",
            "external_id ≤ 128, note ≤ 2000, buyer.id 1..128 characters",
        ));
    }
    if o.lines.iter().any(|l| l.sku.is_empty() || l.sku.len() > 64) {
        return Err(unprocessable(
            "invalid-code",
            "each line needs a SKU code of 1 to 64 characters",
        ));
    }
    Ok(())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OrderParams {
    /// Filter by status, e.g. `pending_payment`.
    pub status: Option<String>,
    /// RFC 3339; orders created at or after.
    pub created_from: Option<String>,
    /// RFC 3339; orders created at or before.
    pub created_to: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(OrderParams), responses((status = 200, body = OrderPageView)))]
pub async fn list(
    State(s): State<AppState>,
    c: Caller,
    Query(q): Query<OrderParams>,
) -> ApiResult<Json<OrderPageView>> {
    let bad = |code, what: &str| ApiError::bad_request(code, what.to_string());
    let filter = OrderFilter {
        status: q
            .status
            .as_deref()
            .map(|v| OrderStatus::parse(v).ok_or_else(|| bad("invalid-status", "unknown status")))
            .transpose()?,
        created_from: q
            .created_from
            .as_deref()
            .map(|v| parse_time(v).ok_or_else(|| bad("invalid-time", "created_from must be RFC 3339")))
            .transpose()?,
        created_to: q
            .created_to
            .as_deref()
            .map(|v| parse_time(v).ok_or_else(|| bad("invalid-time", "created_to must be RFC 3339")))
            .transpose()?,
        cursor: q
            .cursor
            .as_deref()
            .map(|v| v.parse::<OrderId>().map_err(|e| bad("invalid-cursor", &e.to_string())))
            .transpose()?,
        limit: q.limit.unwrap_or(50),
    };
    let page = s.engine.list_orders(&c.who, c.shop, filter).await?;
    Ok(Json(OrderPageView {
        items: page.orders.iter().map(|o| OrderView::new(o, &c.who)).collect(),
        next_cursor: page.next_cursor.map(|id| id.to_string()),
    }))
}

#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = String, Path)), responses((status = 200, body = OrderView), (status = 404, body = crate::problem::Problem)))]
pub async fn get(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<Json<OrderView>> {
    let order = s.engine.get_order(&c.who, c.shop, order_id(&id)?).await?;
    Ok(Json(OrderView::new(&order, &c.who)))
}

/// What a POST on an order asks for.
enum Act {
    Step(Step),
    ResolvePayment { accept: bool },
}

/// Runs an action on an order with Idempotency-Key support: a replay returns the order's current state.
async fn act(s: AppState, id: String, p: Post, make: impl FnOnce(&[u8]) -> ApiResult<Act>) -> ApiResult<Response> {
    let id = order_id(&id)?;
    let (c, claim, body) = (p.caller, p.claim, p.body);
    let (idem, replay) = idem::begin(&s.engine, claim).await?;
    if replay.is_some() {
        let order = s.engine.get_order(&c.who, c.shop, id).await?;
        return Ok(replayed(Json(OrderView::new(&order, &c.who)).into_response()));
    }
    let order = match make(&body)? {
        Act::Step(step) => s.engine.order_step(&c.who, c.shop, id, step).await?,
        Act::ResolvePayment { accept } => s.engine.resolve_payment_exception(&c.who, c.shop, id, accept).await?,
    };
    idem.finish(&s.engine, 200, id.to_string()).await?;
    Ok(Json(OrderView::new(&order, &c.who)).into_response())
}

/// A state-machine step as an [`Act`].
async fn step(s: AppState, id: String, p: Post, make: impl FnOnce(&[u8]) -> ApiResult<Step>) -> ApiResult<Response> {
    act(s, id, p, |b| make(b).map(Act::Step)).await
}

fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        json_body(body)
    }
}

#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders", params(("id" = String, Path)), request_body = CancelOrder, responses((status = 200, body = OrderView), (status = 409, body = crate::problem::Problem)))]
pub async fn cancel(State(s): State<AppState>, Path(id): Path<String>, p: Post) -> ApiResult<Response> {
    step(s, id, p, |b| {
        let req: CancelOrder = optional_body(b)?;
        let reason = match req.reason.as_deref().unwrap_or("seller") {
            "buyer" => CancelReason::Buyer,
            "seller" => CancelReason::Seller,
            "platform" => CancelReason::Platform,
            _ => {
                return Err(unprocessable(
                    "invalid-reason",
                    "reason must be buyer, seller or platform",
                ));
            }
        };
        Ok(Step::Cancel(reason))
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/orders/{id}/hold", tag = "orders", params(("id" = String, Path)), request_body = HoldOrder, responses((status = 200, body = OrderView)))]
pub async fn hold(State(s): State<AppState>, Path(id): Path<String>, p: Post) -> ApiResult<Response> {
    step(s, id, p, |b| {
        Ok(Step::Hold {
            reason: json_body::<HoldOrder>(b)?.reason,
        })
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/orders/{id}/approve", tag = "orders", params(("id" = String, Path)), responses((status = 200, body = OrderView)))]
pub async fn approve(State(s): State<AppState>, Path(id): Path<String>, p: Post) -> ApiResult<Response> {
    step(s, id, p, |b| {
        Ok(Step::Approve {
            note: optional_body::<ApproveOrder>(b)?.note,
        })
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// Channel the orders are recorded under (default `csv`); with each row's
    /// `external_id` it makes re-imports create nothing new.
    pub channel: Option<String>,
}

/// Bulk import: a CSV file (header row; columns external_id, buyer_id, buyer_name,
/// buyer_phone, recipient, phone, country, province, city, district, line1,
/// postal_code, sku, quantity, shipping_minor, note, paid_reference). Rows with the same
/// external_id make one order; a paid_reference marks it paid in full. Up to 32 MiB.
#[utoipa::path(post, path = "/api/v1/orders/import", tag = "orders", params(ImportParams),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = crate::dto::ImportReportView)))]
pub async fn import(
    State(s): State<AppState>,
    Query(q): Query<ImportParams>,
    p: Post,
) -> ApiResult<Json<crate::dto::ImportReportView>> {
    let (c, claim, body) = (p.caller, p.claim, p.body);
    let _guard = idem::hold(&s.engine, &claim)?;
    let channel = q.channel.unwrap_or_else(|| "csv".into());
    if channel.is_empty() || channel.len() > 32 {
        return Err(unprocessable("invalid-channel", "channel must have 1 to 32 characters"));
    }
    let report = s
        .engine
        .import_orders(&c.who, c.shop, &channel, &body, |_, _| {})
        .await?;
    Ok(Json(report.into()))
}

#[utoipa::path(post, path = "/api/v1/orders/{id}/reject", tag = "orders", params(("id" = String, Path)), request_body = RejectOrder,
    responses((status = 200, body = OrderView, description = "Cancelled by the seller, refunded")))]
pub async fn reject(State(s): State<AppState>, Path(id): Path<String>, p: Post) -> ApiResult<Response> {
    step(s, id, p, |b| {
        Ok(Step::Reject {
            reason: json_body::<RejectOrder>(b)?.reason,
        })
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/orders/bulk/approve", tag = "orders", request_body = BulkApprove, responses((status = 200, body = BulkResult)))]
pub async fn bulk_approve(State(s): State<AppState>, p: Post) -> ApiResult<Response> {
    bulk(s, p, |b| {
        let req: BulkApprove = json_body(b)?;
        Ok((req.order_ids, Step::Approve { note: req.note }))
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/orders/bulk/reject", tag = "orders", request_body = BulkReject, responses((status = 200, body = BulkResult)))]
pub async fn bulk_reject(State(s): State<AppState>, p: Post) -> ApiResult<Response> {
    bulk(s, p, |b| {
        let req: BulkReject = json_body(b)?;
        Ok((req.order_ids, Step::Reject { reason: req.reason }))
    })
    .await
}

/// One step over many orders; each succeeds or fails on its own. A replay of the
/// same Idempotency-Key returns the orders' current states.
async fn bulk(s: AppState, p: Post, make: impl FnOnce(&[u8]) -> ApiResult<(Vec<String>, Step)>) -> ApiResult<Response> {
    let (c, claim, body) = (p.caller, p.claim, p.body);
    let (idem, replay) = idem::begin(&s.engine, claim).await?;
    let (texts, step) = make(&body)?;
    let ids: Vec<OrderId> = texts
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|e: ordo_core::ids::ParseIdError| unprocessable("invalid-order-id", e.to_string()))
        })
        .collect::<ApiResult<_>>()?;
    let results = if replay.is_some() {
        let mut current = Vec::with_capacity(ids.len());
        for id in &ids {
            current.push(s.engine.get_order(&c.who, c.shop, *id).await);
        }
        current
    } else {
        s.engine.order_steps(&c.who, c.shop, &ids, step).await?
    };
    let items: Vec<BulkItem> = ids
        .iter()
        .zip(results)
        .map(|(id, r)| match r {
            Ok(order) => BulkItem {
                order_id: id.to_string(),
                order: Some(OrderView::new(&order, &c.who)),
                error: None,
            },
            Err(e) => BulkItem {
                order_id: id.to_string(),
                order: None,
                error: Some(ApiError::from(e).problem()),
            },
        })
        .collect();
    idem.finish(&s.engine, 200, texts.join(",")).await?;
    let succeeded = items.iter().filter(|i| i.error.is_none()).count();
    let result = BulkResult {
        succeeded,
        failed: items.len() - succeeded,
        results: items,
    };
    let resp = Json(result).into_response();
    Ok(if replay.is_some() { replayed(resp) } else { resp })
}

#[utoipa::path(post, path = "/api/v1/orders/{id}/ship", tag = "orders", params(("id" = String, Path)), request_body = ShipOrder, responses((status = 200, body = OrderView)))]
pub async fn ship(State(s): State<AppState>, Path(id): Path<String>, p: Post) -> ApiResult<Response> {
    step(s, id, p, |b| {
        let req: ShipOrder = json_body(b)?;
        if req.carrier.len() > 64 || req.tracking_number.len() > 64 {
            return Err(unprocessable(
                "field-too-long",
                "carrier and tracking_number have at most 64 characters",
            ));
        }
        Ok(Step::Ship {
            carrier: req.carrier,
            tracking_number: req.tracking_number,
            parcel: req.parcel,
        })
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/orders/{id}/deliver", tag = "orders", params(("id" = String, Path)), responses((status = 200, body = OrderView)))]
pub async fn deliver(State(s): State<AppState>, Path(id): Path<String>, p: Post) -> ApiResult<Response> {
    step(s, id, p, |_| Ok(Step::ConfirmDelivery)).await
}

#[utoipa::path(post, path = "/api/v1/orders/{id}/complete", tag = "orders", params(("id" = String, Path)), responses((status = 200, body = OrderView)))]
pub async fn complete(State(s): State<AppState>, Path(id): Path<String>, p: Post) -> ApiResult<Response> {
    step(s, id, p, |_| Ok(Step::Complete)).await
}

/// Delivers the codes a held order's virtual lines wait for, once their pool was refilled.
#[utoipa::path(post, path = "/api/v1/orders/{id}/deliver-codes", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 422, body = crate::problem::Problem)))]
pub async fn deliver_codes(State(s): State<AppState>, Path(id): Path<String>, p: Post) -> ApiResult<Response> {
    step(s, id, p, |_| Ok(Step::DeliverCodes)).await
}

#[utoipa::path(post, path = "/api/v1/orders/{id}/payment-exception/resolve", tag = "orders", params(("id" = String, Path)), request_body = ResolvePayment, responses((status = 200, body = OrderView)))]
pub async fn resolve_payment(State(s): State<AppState>, Path(id): Path<String>, p: Post) -> ApiResult<Response> {
    act(s, id, p, |b| {
        let req: ResolvePayment = json_body(b)?;
        match req.action.as_str() {
            "accept" => Ok(Act::ResolvePayment { accept: true }),
            "refund_and_cancel" => Ok(Act::ResolvePayment { accept: false }),
            _ => Err(unprocessable(
                "invalid-action",
                "action must be accept or refund_and_cancel",
            )),
        }
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/orders/{id}/payments", tag = "payments", params(("id" = String, Path)), responses((status = 200, body = [PaymentView])))]
pub async fn payments(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<PaymentView>>> {
    Ok(Json(
        s.engine
            .payments_of(&c.who, c.shop, order_id(&id)?)
            .await?
            .iter()
            .map(PaymentView::from)
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/orders/{id}/refunds", tag = "payments", params(("id" = String, Path)), responses((status = 200, body = [RefundView])))]
pub async fn refunds(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<Json<Vec<RefundView>>> {
    Ok(Json(
        s.engine
            .refunds_of(&c.who, c.shop, order_id(&id)?)
            .await?
            .iter()
            .map(RefundView::from)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/orders/{id}/refunds", tag = "payments", params(("id" = String, Path)), request_body = CreateRefund,
    responses((status = 201, body = RefundResult), (status = 422, body = crate::problem::Problem)))]
pub async fn refund(State(s): State<AppState>, Path(id): Path<String>, p: Post) -> ApiResult<Response> {
    let id = order_id(&id)?;
    let (c, claim, body) = (p.caller, p.claim, p.body);
    let _guard = idem::hold(&s.engine, &claim)?;
    let req: CreateRefund = json_body(&body)?;
    if req.reason.chars().count() > 500 {
        return Err(unprocessable("field-too-long", "reason has at most 500 characters"));
    }
    let what = match (req.amount_minor, req.lines) {
        (Some(amount), None) => RefundOf::Amount(amount),
        (None, Some(lines)) if !lines.is_empty() && lines.len() <= 100 => RefundOf::Lines(
            lines
                .into_iter()
                .map(|l| LineRefund {
                    line: l.line,
                    quantity: l.quantity,
                })
                .collect(),
        ),
        _ => {
            return Err(unprocessable(
                "invalid-refund",
                "give either amount_minor or 1 to 100 lines",
            ));
        }
    };
    let (order, ids, was_replayed) = s.engine.refund(&c.who, c.shop, id, what, req.reason, claim).await?;
    let all = s.engine.refunds_of(&c.who, c.shop, id).await?;
    let refunds = all
        .iter()
        .filter(|r| ids.contains(&r.id))
        .map(RefundView::from)
        .collect();
    let resp = (
        StatusCode::CREATED,
        Json(RefundResult {
            order: OrderView::new(&order, &c.who),
            refunds,
        }),
    )
        .into_response();
    Ok(if was_replayed { replayed(resp) } else { resp })
}
