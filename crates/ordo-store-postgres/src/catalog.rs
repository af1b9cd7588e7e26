//! Products (SKUs) and warehouses. The JSON `doc` is the record; `shop`, `sku` and
//! `code` beside it carry the uniqueness rules and the shop scope.

use deadpool_postgres::{Client, Transaction};
use ordo_core::catalog::{Product, Warehouse};
use ordo_core::{ProductId, ShopId};
use ordo_store::{StoreError, StoreResult};

use crate::codec::{limit, to_json};
use crate::docs::{fetch_doc, fetch_docs};
use crate::error::db;
use crate::shops::found;

pub(crate) async fn insert_product(tx: &Transaction<'_>, p: &Product) -> StoreResult<()> {
    let stmt = tx
        .prepare_cached("INSERT INTO products (id, shop, sku, doc) VALUES ($1, $2, $3, $4)")
        .await
        .map_err(db)?;
    tx.execute(&stmt, &[&p.id.to_string(), &p.shop.to_string(), &p.sku, &to_json(p)?])
        .await
        .map_err(db)?;
    Ok(())
}

pub(crate) async fn update_product(tx: &Transaction<'_>, p: &Product) -> StoreResult<()> {
    let stmt = tx
        .prepare_cached("UPDATE products SET sku = $3, doc = $4 WHERE id = $1 AND shop = $2")
        .await
        .map_err(db)?;
    let updated = tx
        .execute(&stmt, &[&p.id.to_string(), &p.shop.to_string(), &p.sku, &to_json(p)?])
        .await
        .map_err(db)?;
    found(updated)
}

pub(crate) async fn get_product(client: &Client, shop: ShopId, id: ProductId) -> StoreResult<Product> {
    let sql = "SELECT doc FROM products WHERE id = $1 AND shop = $2";
    fetch_doc(client, sql, &[&id.to_string(), &shop.to_string()])
        .await?
        .ok_or(StoreError::NotFound)
}

pub(crate) async fn product_by_sku(client: &Client, shop: ShopId, sku: &str) -> StoreResult<Option<Product>> {
    fetch_doc(
        client,
        "SELECT doc FROM products WHERE shop = $1 AND sku = $2",
        &[&shop.to_string(), &sku],
    )
    .await
}

/// Oldest first; `cursor` returns the products created after it.
pub(crate) async fn list_products(
    client: &Client,
    shop: ShopId,
    cursor: Option<ProductId>,
    max: u32,
) -> StoreResult<Vec<Product>> {
    let sql = "SELECT doc FROM products WHERE shop = $1 AND id > COALESCE($2, '') ORDER BY id LIMIT $3";
    let cursor = cursor.map(|c| c.to_string());
    fetch_docs(client, sql, &[&shop.to_string(), &cursor, &limit(max)]).await
}

pub(crate) async fn insert_warehouse(tx: &Transaction<'_>, w: &Warehouse) -> StoreResult<()> {
    let stmt = tx
        .prepare_cached("INSERT INTO warehouses (id, shop, code, doc) VALUES ($1, $2, $3, $4)")
        .await
        .map_err(db)?;
    tx.execute(&stmt, &[&w.id.to_string(), &w.shop.to_string(), &w.code, &to_json(w)?])
        .await
        .map_err(db)?;
    Ok(())
}

pub(crate) async fn list_warehouses(client: &Client, shop: ShopId) -> StoreResult<Vec<Warehouse>> {
    fetch_docs(
        client,
        "SELECT doc FROM warehouses WHERE shop = $1 ORDER BY id",
        &[&shop.to_string()],
    )
    .await
}
