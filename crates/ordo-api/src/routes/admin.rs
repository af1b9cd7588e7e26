use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ordo_core::auth::Role;
use ordo_core::{ApiKeyId, Currency, ShopId};

use super::idem;
use crate::AppState;
use crate::dto::{CreateKey, CreateShop, GatewaySecret, KeyView, ShopView, UpdateSettings};
use crate::extract::{Caller, Post, json_body};
use crate::problem::{ApiError, ApiResult};

fn shop_id(s: &str) -> ApiResult<ShopId> {
    s.parse().map_err(|_| ApiError::not_found())
}

#[utoipa::path(post, path = "/api/v1/shops", tag = "admin", request_body = CreateShop,
    responses((status = 201, body = ShopView), (status = 403, body = crate::problem::Problem)))]
pub async fn create_shop(State(s): State<AppState>, p: Post) -> ApiResult<Response> {
    let (c, claim, body) = (p.caller, p.claim, p.body);
    let (idem, replay) = idem::begin(&s.engine, claim).await?;
    if let Some(rec) = replay {
        let shop = s.engine.get_shop(&c.who, shop_id(&rec.resource)?).await?;
        return Ok((
            StatusCode::from_u16(rec.status_code).unwrap_or(StatusCode::OK),
            Json(ShopView::from(&shop)),
        )
            .into_response());
    }
    let req: CreateShop = json_body(&body)?;
    let currency: Currency = req
        .currency
        .as_deref()
        .unwrap_or("CNY")
        .parse()
        .map_err(|e: ordo_core::MoneyError| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-currency", e.to_string())
        })?;
    let shop = s.engine.create_shop(&c.who, &req.name, currency).await?;
    idem.finish(&s.engine, 201, shop.id.to_string()).await?;
    Ok((StatusCode::CREATED, Json(ShopView::from(&shop))).into_response())
}

#[utoipa::path(get, path = "/api/v1/shops", tag = "admin", responses((status = 200, body = [ShopView])))]
pub async fn list_shops(State(s): State<AppState>, c: Caller) -> ApiResult<Json<Vec<ShopView>>> {
    Ok(Json(
        s.engine.list_shops(&c.who).await?.iter().map(ShopView::from).collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/shops/{shop}", tag = "admin", params(("shop" = String, Path)), responses((status = 200, body = ShopView), (status = 404, body = crate::problem::Problem)))]
pub async fn get_shop(State(s): State<AppState>, c: Caller, Path(shop): Path<String>) -> ApiResult<Json<ShopView>> {
    Ok(Json(ShopView::from(&s.engine.get_shop(&c.who, shop_id(&shop)?).await?)))
}

#[utoipa::path(put, path = "/api/v1/shops/{shop}/settings", tag = "admin", params(("shop" = String, Path)), request_body = UpdateSettings, responses((status = 200, body = ShopView)))]
pub async fn update_settings(
    State(s): State<AppState>,
    Path(shop): Path<String>,
    p: Post,
) -> ApiResult<Json<ShopView>> {
    let (c, body) = (p.caller, p.body);
    let shop = shop_id(&shop)?;
    let req: UpdateSettings = json_body(&body)?;
    let mut settings = s.engine.get_shop(&c.who, shop).await?.settings;
    if let Some(r) = req.payment_reminder_secs {
        settings.payment_reminder_secs = r;
    }
    if let Some(t) = req.payment_timeout_secs {
        settings.payment_timeout_secs = t;
    }
    if let Some(promotions) = req.promotions {
        settings.promotions = serde_json::from_value(promotions)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-promotion", e.to_string()))?;
    }
    if let Some(window) = req.merge_window_secs {
        settings.merge_window_secs = window;
    }
    if let Some(low) = req.code_pool_low_at {
        settings.code_pool_low_at = low;
    }
    if let Some(limits) = req.purchase_limits {
        settings.purchase_limits = limits.into_iter().map(Into::into).collect();
    }
    if let Some(methods) = req.payment_methods {
        settings.payment_methods = methods;
    }
    if let Some(rules) = req.review {
        settings.review = rules.into();
    }
    if let Some(r) = req.review_above_minor {
        settings.review_above_minor = r;
    }
    if let Some(n) = req.notifications {
        settings.notifications = n.into_settings()?;
    }
    Ok(Json(ShopView::from(
        &s.engine.update_settings(&c.who, shop, settings).await?,
    )))
}

#[utoipa::path(post, path = "/api/v1/shops/{shop}/keys", tag = "admin", params(("shop" = String, Path)), request_body = CreateKey,
    responses((status = 201, body = KeyView, description = "The secret is in the response once")))]
pub async fn create_key(State(s): State<AppState>, Path(shop): Path<String>, p: Post) -> ApiResult<Response> {
    let shop = shop_id(&shop)?;
    let (c, claim, body) = (p.caller, p.claim, p.body);
    let (idem, replay) = idem::begin(&s.engine, claim).await?;
    if let Some(rec) = replay {
        // The secret is never shown twice; the replay names the key it created.
        let keys = s.engine.list_keys(&c.who, shop).await?;
        let key = keys
            .iter()
            .find(|k| k.id.to_string() == rec.resource)
            .ok_or_else(ApiError::not_found)?;
        return Ok((StatusCode::CREATED, Json(KeyView::new(key, None))).into_response());
    }
    let req: CreateKey = json_body(&body)?;
    let role = Role::parse(&req.role).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-role",
            "role must be owner, operator, warehouse, viewer or integration",
        )
    })?;
    let issued = s.engine.issue_key(&c.who, shop, role, &req.name).await?;
    idem.finish(&s.engine, 201, issued.record.id.to_string()).await?;
    Ok((
        StatusCode::CREATED,
        Json(KeyView::new(&issued.record, Some(issued.secret))),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/shops/{shop}/keys", tag = "admin", params(("shop" = String, Path)), responses((status = 200, body = [KeyView])))]
pub async fn list_keys(
    State(s): State<AppState>,
    c: Caller,
    Path(shop): Path<String>,
) -> ApiResult<Json<Vec<KeyView>>> {
    let keys = s.engine.list_keys(&c.who, shop_id(&shop)?).await?;
    Ok(Json(keys.iter().map(|k| KeyView::new(k, None)).collect()))
}

#[utoipa::path(delete, path = "/api/v1/shops/{shop}/keys/{key}", tag = "admin", params(("shop" = String, Path), ("key" = String, Path)), responses((status = 204)))]
pub async fn revoke_key(
    State(s): State<AppState>,
    c: Caller,
    Path((shop, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let key: ApiKeyId = key.parse().map_err(|_| ApiError::not_found())?;
    s.engine.revoke_key(&c.who, shop_id(&shop)?, key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/shops/{shop}/gateways/{gateway}", tag = "admin", params(("shop" = String, Path), ("gateway" = String, Path)), request_body = GatewaySecret, responses((status = 204)))]
pub async fn set_gateway_secret(
    State(s): State<AppState>,
    Path((shop, gateway)): Path<(String, String)>,
    p: Post,
) -> ApiResult<StatusCode> {
    let (c, body) = (p.caller, p.body);
    let req: GatewaySecret = json_body(&body)?;
    s.engine
        .set_gateway_secret(&c.who, shop_id(&shop)?, &gateway, &req.secret)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
