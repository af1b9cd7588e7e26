use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ordo_core::batch::StockChange;
use ordo_core::{ProductId, WarehouseId};
use serde::Deserialize;

use super::idem;
use crate::AppState;
use crate::dto::{
    CreateProduct, CreateWarehouse, LedgerView, Page, PatchProduct, ProductView, SkuStockView, StockAdjustment,
    StockView, WarehouseView, product_kind,
};
use crate::extract::{Caller, Post, Query, json_body};
use crate::problem::{ApiError, ApiResult};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

fn presale_date(v: &str) -> ApiResult<ordo_core::Timestamp> {
    crate::dto::parse_time(v).ok_or_else(|| unprocessable("invalid-time", "presale_ships_at must be RFC 3339"))
}

fn unprocessable(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
}

#[utoipa::path(post, path = "/api/v1/products", tag = "catalog", request_body = CreateProduct,
    responses((status = 201, body = ProductView), (status = 409, body = crate::problem::Problem), (status = 422, body = crate::problem::Problem)))]
pub async fn create_product(State(s): State<AppState>, p: Post) -> ApiResult<Response> {
    let (c, claim, body) = (p.caller, p.claim, p.body);
    let (idem, replay) = idem::begin(&s.engine, claim).await?;
    if let Some(rec) = replay {
        let id: ProductId = rec.resource.parse().map_err(|_| ApiError::not_found())?;
        let p = s.engine.get_product(&c.who, c.shop, id).await?;
        return Ok((StatusCode::CREATED, Json(ProductView::from(&p))).into_response());
    }
    let req: CreateProduct = json_body(&body)?;
    let kind = product_kind(req.kind.as_deref())
        .ok_or_else(|| unprocessable("invalid-kind", "kind must be physical or virtual"))?;
    let presale_ships_at = req.presale_ships_at.as_deref().map(presale_date).transpose()?;
    let p = s
        .engine
        .create_product(
            &c.who,
            c.shop,
            ordo_engine::NewProduct {
                sku: req.sku,
                name: req.name,
                kind,
                price_minor: req.price_minor,
                weight_g: req.weight_g,
                on_sale: req.on_sale,
                attributes: req.attributes,
                presale_ships_at,
            },
        )
        .await?;
    idem.finish(&s.engine, 201, p.id.to_string()).await?;
    Ok((StatusCode::CREATED, Json(ProductView::from(&p))).into_response())
}

#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", params(ListParams), responses((status = 200, body = Page<ProductView>)))]
pub async fn list_products(
    State(s): State<AppState>,
    c: Caller,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<Page<ProductView>>> {
    let cursor = q
        .cursor
        .as_deref()
        .map(str::parse::<ProductId>)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid-cursor", e.to_string()))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let items = s.engine.list_products(&c.who, c.shop, cursor, limit).await?;
    let next_cursor = if items.len() as u32 == limit {
        items.last().map(|p| p.id.to_string())
    } else {
        None
    };
    Ok(Json(Page {
        items: items.iter().map(ProductView::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "catalog", params(("id" = String, Path)), responses((status = 200, body = ProductView), (status = 404, body = crate::problem::Problem)))]
pub async fn get_product(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<Json<ProductView>> {
    let id: ProductId = id.parse().map_err(|_| ApiError::not_found())?;
    Ok(Json(ProductView::from(
        &s.engine.get_product(&c.who, c.shop, id).await?,
    )))
}

#[utoipa::path(patch, path = "/api/v1/products/{id}", tag = "catalog", params(("id" = String, Path)), request_body = PatchProduct, responses((status = 200, body = ProductView)))]
pub async fn patch_product(State(s): State<AppState>, Path(id): Path<String>, p: Post) -> ApiResult<Json<ProductView>> {
    let (c, body) = (p.caller, p.body);
    let id: ProductId = id.parse().map_err(|_| ApiError::not_found())?;
    let req: PatchProduct = json_body(&body)?;
    let patch = ordo_engine::ProductPatch {
        name: req.name,
        price_minor: req.price_minor,
        weight_g: req.weight_g,
        on_sale: req.on_sale,
        presale_ships_at: req
            .presale_ships_at
            .map(|d| d.as_deref().map(presale_date).transpose())
            .transpose()?,
    };
    Ok(Json(ProductView::from(
        &s.engine.update_product(&c.who, c.shop, id, patch).await?,
    )))
}

#[utoipa::path(post, path = "/api/v1/warehouses", tag = "catalog", request_body = CreateWarehouse, responses((status = 201, body = WarehouseView)))]
pub async fn create_warehouse(State(s): State<AppState>, p: Post) -> ApiResult<Response> {
    let (c, claim, body) = (p.caller, p.claim, p.body);
    let (idem, replay) = idem::begin(&s.engine, claim).await?;
    if let Some(rec) = replay {
        let all = s.engine.list_warehouses(&c.who, c.shop).await?;
        let w = all
            .iter()
            .find(|w| w.id.to_string() == rec.resource)
            .ok_or_else(ApiError::not_found)?;
        return Ok((StatusCode::CREATED, Json(WarehouseView::from(w))).into_response());
    }
    let req: CreateWarehouse = json_body(&body)?;
    let w = s
        .engine
        .create_warehouse(
            &c.who,
            c.shop,
            ordo_engine::NewWarehouse {
                code: req.code,
                name: req.name,
                region: req.region,
            },
        )
        .await?;
    idem.finish(&s.engine, 201, w.id.to_string()).await?;
    Ok((StatusCode::CREATED, Json(WarehouseView::from(&w))).into_response())
}

#[utoipa::path(get, path = "/api/v1/warehouses", tag = "catalog", responses((status = 200, body = [WarehouseView])))]
pub async fn list_warehouses(State(s): State<AppState>, c: Caller) -> ApiResult<Json<Vec<WarehouseView>>> {
    Ok(Json(
        s.engine
            .list_warehouses(&c.who, c.shop)
            .await?
            .iter()
            .map(WarehouseView::from)
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StockParams {
    pub warehouse: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/stock", tag = "stock", params(StockParams), responses((status = 200, body = [StockView])))]
pub async fn list_stock(
    State(s): State<AppState>,
    c: Caller,
    Query(q): Query<StockParams>,
) -> ApiResult<Json<Vec<StockView>>> {
    let warehouse = q
        .warehouse
        .as_deref()
        .map(str::parse::<WarehouseId>)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid-warehouse", e.to_string()))?;
    Ok(Json(
        s.engine
            .list_stock(&c.who, c.shop, warehouse)
            .await?
            .iter()
            .map(StockView::from)
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/stock/{sku}", tag = "stock", params(("sku" = String, Path, description = "The seller's SKU code")), responses((status = 200, body = SkuStockView)))]
pub async fn stock_of(State(s): State<AppState>, c: Caller, Path(sku): Path<String>) -> ApiResult<Json<SkuStockView>> {
    let (product, levels) = s.engine.stock_of(&c.who, c.shop, &sku).await?;
    Ok(Json(SkuStockView {
        sku: product.sku,
        sku_id: product.id.to_string(),
        on_hand: levels.iter().map(|l| l.on_hand).sum(),
        reserved: levels.iter().map(|l| l.reserved).sum(),
        available: levels.iter().map(|l| l.available()).sum(),
        warehouses: levels.iter().map(StockView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/stock/{sku}/adjustments", tag = "stock", params(("sku" = String, Path)), request_body = StockAdjustment, responses((status = 200, body = StockView)))]
pub async fn adjust_stock(State(s): State<AppState>, Path(sku): Path<String>, p: Post) -> ApiResult<Response> {
    let (c, claim, body) = (p.caller, p.claim, p.body);
    let (idem, replay) = idem::begin(&s.engine, claim).await?;
    let req: StockAdjustment = json_body(&body)?;
    let warehouse: WarehouseId = req
        .warehouse_id
        .parse()
        .map_err(|e: ordo_core::ids::ParseIdError| unprocessable("invalid-warehouse", e.to_string()))?;
    if replay.is_some() {
        let (_, levels) = s.engine.stock_of(&c.who, c.shop, &sku).await?;
        let level = levels
            .iter()
            .find(|l| l.warehouse == warehouse)
            .ok_or_else(ApiError::not_found)?;
        return Ok(Json(StockView::from(level)).into_response());
    }
    let change = match (req.delta, req.set_on_hand) {
        (Some(d), None) => StockChange::Delta(d),
        (None, Some(n)) => StockChange::SetOnHand(n),
        _ => {
            return Err(unprocessable(
                "invalid-adjustment",
                "give exactly one of delta or set_on_hand",
            ));
        }
    };
    let level = s
        .engine
        .adjust_stock(&c.who, c.shop, &sku, warehouse, change, req.note)
        .await?;
    idem.finish(&s.engine, 200, format!("{sku}@{warehouse}")).await?;
    Ok(Json(StockView::from(&level)).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LedgerParams {
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/stock/{sku}/ledger", tag = "stock", params(("sku" = String, Path), LedgerParams), responses((status = 200, body = [LedgerView])))]
pub async fn ledger(
    State(s): State<AppState>,
    c: Caller,
    Path(sku): Path<String>,
    Query(q): Query<LedgerParams>,
) -> ApiResult<Json<Vec<LedgerView>>> {
    let entries = s
        .engine
        .ledger(
            &c.who,
            c.shop,
            &sku,
            q.after.unwrap_or(0),
            q.limit.unwrap_or(200).clamp(1, 1000),
        )
        .await?;
    Ok(Json(entries.iter().map(|(seq, e)| LedgerView::new(*seq, e)).collect()))
}
