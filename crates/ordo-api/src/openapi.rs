//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto;
use crate::routes::{admin, catalog, channels, codes, edits, events, notifications, ops, orders, payments, shipments};

#[derive(OpenApi)]
#[openapi(
    info(title = "Ordo", description = "Order processing engine API. Errors are RFC 9457 problem+json.", version = "1"),
    paths(
        ops::healthz, ops::metrics, ops::openapi,
        admin::create_shop, admin::list_shops, admin::get_shop, admin::update_settings,
        admin::create_key, admin::list_keys, admin::revoke_key, admin::set_gateway_secret,
        catalog::create_product, catalog::list_products, catalog::get_product, catalog::patch_product,
        catalog::create_warehouse, catalog::list_warehouses,
        catalog::list_stock, catalog::stock_of, catalog::adjust_stock, catalog::ledger,
        orders::create, orders::list, orders::get, orders::cancel, orders::hold, orders::approve, orders::reject, orders::bulk_approve, orders::bulk_reject, orders::import, orders::ship,
        orders::deliver, orders::complete, orders::resolve_payment, orders::payments, orders::refunds, orders::refund,
        payments::notify, events::list, events::stream,
        channels::webhook, channels::configure, channels::put_mappings, channels::list_mappings,
        channels::list_orders, channels::get_order, channels::retry,
        codes::add, codes::pool, codes::of_order, orders::deliver_codes, edits::edit,
        shipments::merge_groups, shipments::ship_together,
        notifications::list,
    ),
    components(schemas(crate::problem::Problem, dto::OrderView, dto::ProductView)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON, built once.
pub fn spec_json() -> String {
    static SPEC: OnceLock<String> = OnceLock::new();
    SPEC.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_else(|_| "{}".into()))
        .clone()
}
