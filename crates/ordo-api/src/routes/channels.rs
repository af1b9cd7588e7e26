//! Sales channels: webhook intake (Shopify, WooCommerce, the generic marketplace
//! format), channel secrets, SKU mappings and the raw channel orders.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ordo_core::ChannelOrderId;
use ordo_core::auth::Principal;
use ordo_core::channel::{RawChannelOrder, RawStatus, SkuMapping};
use ordo_engine::channels::ChannelReceipt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::dto::{OrderView, Page, time};
use crate::extract::{Caller, Post, Query, json_body};
use crate::problem::{ApiError, ApiResult};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WebhookParams {
    /// The shop whose channel sends this (the webhook URL names it).
    pub shop: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelSecret {
    /// The secret the channel signs webhooks with (Shopify: the app's client secret;
    /// WooCommerce: the webhook's secret), 16 to 256 characters.
    pub secret: String,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkuMappingDto {
    /// `variant:<id>`, `product:<id>` or `sku:<seller sku>`.
    pub channel_key: String,
    /// The Ordo SKU it stands for.
    pub sku: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkuMappings {
    pub mappings: Vec<SkuMappingDto>,
}

#[derive(Serialize, ToSchema)]
pub struct ChannelOrderView {
    pub id: String,
    pub channel: String,
    pub external_id: String,
    /// `mapped` or `unmapped`.
    pub status: String,
    /// Why it is unmapped, e.g. `unmapped-sku`, `unknown-sku`, `invalid-address`, `malformed-json`.
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub order_id: Option<String>,
    pub deliveries: i64,
    pub received_at: String,
    pub updated_at: String,
    /// The body as received; left out for roles that do not see buyers' personal data.
    pub body: Option<String>,
}

impl ChannelOrderView {
    fn new(r: &RawChannelOrder, who: &Principal) -> Self {
        ChannelOrderView {
            id: r.id.to_string(),
            channel: r.channel.clone(),
            external_id: r.external_id.clone(),
            status: r.status.as_str().into(),
            reason_code: r.reason_code.clone(),
            reason: r.reason.clone(),
            order_id: r.order.map(|o| o.to_string()),
            deliveries: r.deliveries,
            received_at: time(r.received_at),
            updated_at: time(r.updated_at),
            body: who.sees_buyer_contact().then(|| r.body.to_string()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookReceipt {
    pub channel_order_id: String,
    /// `mapped` or `unmapped`.
    pub status: String,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub order_id: Option<String>,
    /// The channel sent this order before.
    pub duplicate: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RetryResult {
    pub channel_order: ChannelOrderView,
    pub order: Option<OrderView>,
}

fn signature_header(channel: &str) -> &'static str {
    match channel {
        ordo_core::channel::SHOPIFY => ordo_channels::shopify::SIGNATURE_HEADER,
        ordo_core::channel::WOOCOMMERCE => ordo_channels::woocommerce::SIGNATURE_HEADER,
        _ => ordo_channels::marketplace::SIGNATURE_HEADER,
    }
}

/// 201 when the order was created, 200 for a re-send of one already mapped, 202
/// when it was stored but could not be mapped (see the reason; a re-send or a
/// retry completes it). Every 2xx tells the channel to stop retrying.
#[utoipa::path(post, path = "/api/v1/channels/{channel}/orders", tag = "channels",
    params(
        ("channel" = String, Path, description = "`shopify`, `woocommerce` or `marketplace`"),
        WebhookParams,
        ("X-Shopify-Hmac-Sha256" = Option<String>, Header, description = "shopify: base64 HMAC-SHA256 of the raw body"),
        ("X-WC-Webhook-Signature" = Option<String>, Header, description = "woocommerce: base64 HMAC-SHA256 of the raw body"),
        ("X-Ordo-Hmac-Sha256" = Option<String>, Header, description = "marketplace: base64 HMAC-SHA256 of the raw body"),
    ),
    request_body(content = String, description = "The channel's order JSON, as it sends it"),
    responses((status = 201, body = WebhookReceipt), (status = 200, body = WebhookReceipt), (status = 202, body = WebhookReceipt),
        (status = 401, body = crate::problem::Problem)),
    security(()))]
pub async fn webhook(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    Query(q): Query<WebhookParams>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let shop = q.shop.parse().map_err(|_| ApiError::not_found())?;
    let signature = headers.get(signature_header(&channel)).and_then(|v| v.to_str().ok());
    let receipt: ChannelReceipt = s.engine.receive_channel_order(&channel, shop, &body, signature).await?;
    let status = match (&receipt.order, receipt.replayed) {
        (Some(_), false) => StatusCode::CREATED,
        (Some(_), true) => StatusCode::OK,
        (None, _) => StatusCode::ACCEPTED,
    };
    let raw = &receipt.raw;
    let view = WebhookReceipt {
        channel_order_id: raw.id.to_string(),
        status: raw.status.as_str().into(),
        reason_code: raw.reason_code.clone(),
        reason: raw.reason.clone(),
        order_id: raw.order.map(|o| o.to_string()),
        duplicate: receipt.replayed,
    };
    Ok((status, Json(view)).into_response())
}

#[utoipa::path(put, path = "/api/v1/channels/{channel}", tag = "channels",
    params(("channel" = String, Path)), request_body = ChannelSecret, responses((status = 204)))]
pub async fn configure(State(s): State<AppState>, Path(channel): Path<String>, p: Post) -> ApiResult<StatusCode> {
    let req: ChannelSecret = json_body(&p.body)?;
    s.engine
        .configure_channel(&p.caller.who, p.caller.shop, &channel, &req.secret)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/channels/{channel}/sku-mappings", tag = "channels",
    params(("channel" = String, Path)), request_body = SkuMappings, responses((status = 200, body = Vec<SkuMappingDto>)))]
pub async fn put_mappings(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    p: Post,
) -> ApiResult<Json<Vec<SkuMappingDto>>> {
    let req: SkuMappings = json_body(&p.body)?;
    let mappings = req
        .mappings
        .into_iter()
        .map(|m| SkuMapping {
            channel_key: m.channel_key,
            sku: m.sku,
        })
        .collect();
    let all = s
        .engine
        .put_sku_mappings(&p.caller.who, p.caller.shop, &channel, mappings)
        .await?;
    Ok(Json(all.into_iter().map(mapping_dto).collect()))
}

fn mapping_dto(m: SkuMapping) -> SkuMappingDto {
    SkuMappingDto {
        channel_key: m.channel_key,
        sku: m.sku,
    }
}

#[utoipa::path(get, path = "/api/v1/channels/{channel}/sku-mappings", tag = "channels",
    params(("channel" = String, Path)), responses((status = 200, body = Vec<SkuMappingDto>)))]
pub async fn list_mappings(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    c: Caller,
) -> ApiResult<Json<Vec<SkuMappingDto>>> {
    let all = s.engine.sku_mappings(&c.who, c.shop, &channel).await?;
    Ok(Json(all.into_iter().map(mapping_dto).collect()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ChannelOrderParams {
    /// `mapped` or `unmapped`.
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/channel-orders", tag = "channels", params(ChannelOrderParams),
    responses((status = 200, body = Page<ChannelOrderView>)))]
pub async fn list_orders(
    State(s): State<AppState>,
    c: Caller,
    Query(q): Query<ChannelOrderParams>,
) -> ApiResult<Json<Page<ChannelOrderView>>> {
    let status = q
        .status
        .as_deref()
        .map(|v| {
            RawStatus::parse(v)
                .ok_or_else(|| ApiError::bad_request("invalid-status", "status is `mapped` or `unmapped`"))
        })
        .transpose()?;
    let cursor = q
        .cursor
        .as_deref()
        .map(str::parse::<ChannelOrderId>)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid-cursor", e.to_string()))?;
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let items = s
        .engine
        .list_channel_orders(&c.who, c.shop, status, cursor, limit)
        .await?;
    let next_cursor = (items.len() as u32 == limit)
        .then(|| items.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(Page {
        items: items.iter().map(|r| ChannelOrderView::new(r, &c.who)).collect(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/channel-orders/{id}", tag = "channels", params(("id" = String, Path)),
    responses((status = 200, body = ChannelOrderView), (status = 404, body = crate::problem::Problem)))]
pub async fn get_order(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ChannelOrderView>> {
    let id: ChannelOrderId = id.parse().map_err(|_| ApiError::not_found())?;
    let raw = s.engine.get_channel_order(&c.who, c.shop, id).await?;
    Ok(Json(ChannelOrderView::new(&raw, &c.who)))
}

/// Maps a stored channel order again, e.g. after adding the SKU mapping it lacked.
#[utoipa::path(post, path = "/api/v1/channel-orders/{id}/retry", tag = "channels", params(("id" = String, Path)),
    responses((status = 200, body = RetryResult), (status = 404, body = crate::problem::Problem)))]
pub async fn retry(State(s): State<AppState>, Path(id): Path<String>, p: Post) -> ApiResult<Json<RetryResult>> {
    let id: ChannelOrderId = id.parse().map_err(|_| ApiError::not_found())?;
    let who = &p.caller.who;
    let receipt = s.engine.retry_channel_order(who, p.caller.shop, id).await?;
    let order = match receipt.order {
        Some(order) => Some(s.engine.get_order(who, Some(receipt.raw.shop), order).await?),
        None => None,
    };
    Ok(Json(RetryResult {
        channel_order: ChannelOrderView::new(&receipt.raw, who),
        order: order.as_ref().map(|o| OrderView::new(o, who)),
    }))
}
