pub mod admin;
pub mod catalog;
pub mod channels;
pub mod codes;
pub mod edits;
pub mod events;
mod idem;
pub mod notifications;
pub mod ops;
pub mod orders;
pub mod payments;
pub mod shipments;

use axum::Router;
use axum::routing::{get, post, put};

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/api/openapi.json", get(ops::openapi))
        .route("/api/v1/shops", post(admin::create_shop).get(admin::list_shops))
        .route("/api/v1/shops/{shop}", get(admin::get_shop))
        .route("/api/v1/shops/{shop}/settings", put(admin::update_settings))
        .route(
            "/api/v1/shops/{shop}/keys",
            post(admin::create_key).get(admin::list_keys),
        )
        .route(
            "/api/v1/shops/{shop}/keys/{key}",
            axum::routing::delete(admin::revoke_key),
        )
        .route(
            "/api/v1/shops/{shop}/gateways/{gateway}",
            put(admin::set_gateway_secret),
        )
        .route(
            "/api/v1/products",
            post(catalog::create_product).get(catalog::list_products),
        )
        .route(
            "/api/v1/products/{id}",
            get(catalog::get_product).patch(catalog::patch_product),
        )
        .route(
            "/api/v1/warehouses",
            post(catalog::create_warehouse).get(catalog::list_warehouses),
        )
        .route("/api/v1/stock", get(catalog::list_stock))
        .route("/api/v1/stock/{sku}", get(catalog::stock_of))
        .route("/api/v1/stock/{sku}/adjustments", post(catalog::adjust_stock))
        .route("/api/v1/stock/{sku}/ledger", get(catalog::ledger))
        .route("/api/v1/orders", post(orders::create).get(orders::list))
        .route("/api/v1/orders/{id}", get(orders::get).patch(edits::edit))
        .route("/api/v1/orders/{id}/cancel", post(orders::cancel))
        .route("/api/v1/orders/{id}/hold", post(orders::hold))
        .route("/api/v1/orders/{id}/approve", post(orders::approve))
        .route("/api/v1/orders/{id}/ship", post(orders::ship))
        .route("/api/v1/orders/{id}/reject", post(orders::reject))
        .route("/api/v1/orders/bulk/approve", post(orders::bulk_approve))
        .route("/api/v1/orders/bulk/reject", post(orders::bulk_reject))
        .route(
            "/api/v1/orders/import",
            post(orders::import).layer(axum::extract::DefaultBodyLimit::max(crate::IMPORT_BYTES_MAX)),
        )
        .route("/api/v1/orders/{id}/deliver", post(orders::deliver))
        .route("/api/v1/orders/{id}/complete", post(orders::complete))
        .route(
            "/api/v1/orders/{id}/payment-exception/resolve",
            post(orders::resolve_payment),
        )
        .route("/api/v1/orders/{id}/payments", get(orders::payments))
        .route("/api/v1/orders/{id}/codes", get(codes::of_order))
        .route("/api/v1/orders/{id}/deliver-codes", post(orders::deliver_codes))
        .route("/api/v1/code-pools/{sku}", post(codes::add).get(codes::pool))
        .route("/api/v1/shipments", post(shipments::ship_together))
        .route("/api/v1/shipments/merge-groups", get(shipments::merge_groups))
        .route("/api/v1/orders/{id}/refunds", post(orders::refund).get(orders::refunds))
        .route("/api/v1/payments/{gateway}/notify", post(payments::notify))
        .route("/api/v1/channels/{channel}", put(channels::configure))
        .route("/api/v1/channels/{channel}/orders", post(channels::webhook))
        .route(
            "/api/v1/channels/{channel}/sku-mappings",
            put(channels::put_mappings).get(channels::list_mappings),
        )
        .route("/api/v1/channel-orders", get(channels::list_orders))
        .route("/api/v1/channel-orders/{id}", get(channels::get_order))
        .route("/api/v1/channel-orders/{id}/retry", post(channels::retry))
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/events/stream", get(events::stream))
        .route("/api/v1/notifications", get(notifications::list))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
}
