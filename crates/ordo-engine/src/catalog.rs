//! Products, warehouses and stock.

use ordo_core::auth::{Action, Principal};
use ordo_core::batch::{AdjustStock, Command, Outcome, ReschedulePresale, StockChange};
use ordo_core::catalog::{Product, ProductKind, Warehouse};
use ordo_core::event::kinds;
use ordo_core::inventory::{LedgerEntry, STOCK_UNITS_MAX, StockLevel};
use ordo_core::money::AMOUNT_MINOR_MAX;
use ordo_core::order::{Order, OrderStatus};
use ordo_core::{ProductId, ShopId, WarehouseId};
use serde_json::json;

use crate::audit_event;
use crate::ids::new_id;
use crate::{Engine, EngineError, EngineResult};

#[derive(Debug, Clone)]
pub struct NewProduct {
    pub sku: String,
    pub name: String,
    pub kind: ProductKind,
    pub price_minor: i64,
    pub weight_g: i64,
    pub on_sale: bool,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Pre-sale: ships from this date.
    pub presale_ships_at: Option<ordo_core::Timestamp>,
}

#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub price_minor: Option<i64>,
    pub weight_g: Option<i64>,
    pub on_sale: Option<bool>,
    /// `Some(None)` ends the pre-sale: the SKU is in stock.
    pub presale_ships_at: Option<Option<ordo_core::Timestamp>>,
}

#[derive(Debug, Clone)]
pub struct NewWarehouse {
    pub code: String,
    pub name: String,
    pub region: String,
}

/// SKU and warehouse codes: 1–64 visible ASCII characters without spaces.
pub(crate) fn check_code(field: &'static str, value: &str) -> EngineResult<()> {
    if value.is_empty() || value.len() > 64 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EngineError::invalid(
            "invalid-code",
            format!("{field} must be 1 to 64 visible ASCII characters"),
        ));
    }
    Ok(())
}

/// A uniqueness conflict from the store, named for the caller.
fn already_exists(e: ordo_store::StoreError, what: String) -> EngineError {
    match e {
        ordo_store::StoreError::Conflict(_) => EngineError::Conflict(what),
        other => other.into(),
    }
}

fn check_name(value: &str) -> EngineResult<()> {
    if value.trim().is_empty() || value.chars().count() > 300 {
        return Err(EngineError::invalid(
            "invalid-name",
            "name must have 1 to 300 characters",
        ));
    }
    Ok(())
}

fn check_price(price_minor: i64, weight_g: i64) -> EngineResult<()> {
    if !(0..=AMOUNT_MINOR_MAX).contains(&price_minor) {
        return Err(EngineError::invalid(
            "money-out-of-range",
            format!("price_minor must be between 0 and {AMOUNT_MINOR_MAX}"),
        ));
    }
    if !(0..=1_000_000_000).contains(&weight_g) {
        return Err(EngineError::invalid(
            "invalid-weight",
            "weight_g must be between 0 and 1000000000",
        ));
    }
    Ok(())
}

impl Engine {
    pub async fn create_product(&self, who: &Principal, shop: Option<ShopId>, p: NewProduct) -> EngineResult<Product> {
        let shop = self.scope(who, shop, Action::WriteCatalog)?;
        check_code("sku", &p.sku)?;
        check_name(&p.name)?;
        check_price(p.price_minor, p.weight_g)?;
        let settings = self.inner.store.get_shop(shop).await?.settings;
        let product = Product {
            id: ProductId(new_id()),
            shop,
            sku: p.sku,
            name: p.name,
            kind: p.kind,
            price_minor: p.price_minor,
            currency: settings.currency,
            weight_g: p.weight_g,
            on_sale: p.on_sale,
            attributes: p.attributes,
            presale_ships_at: p.presale_ships_at,
            created_at: self.now(),
        };
        let event = audit_event(
            who,
            shop,
            product.id.to_string(),
            kinds::PRODUCT_CREATED,
            json!({ "sku": product.sku, "price_minor": product.price_minor, "kind": product.kind }),
            product.created_at,
        );
        self.inner
            .store
            .create_product(&product, event)
            .await
            .map_err(|e| already_exists(e, format!("SKU `{}` already exists", product.sku)))?;
        Ok(product)
    }

    pub async fn update_product(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        id: ProductId,
        patch: ProductPatch,
    ) -> EngineResult<Product> {
        let shop = self.scope(who, shop, Action::WriteCatalog)?;
        let mut p = self.inner.store.get_product(shop, id).await?;
        if let Some(name) = patch.name {
            check_name(&name)?;
            p.name = name;
        }
        p.price_minor = patch.price_minor.unwrap_or(p.price_minor);
        p.weight_g = patch.weight_g.unwrap_or(p.weight_g);
        p.on_sale = patch.on_sale.unwrap_or(p.on_sale);
        let presale_given = patch.presale_ships_at.is_some();
        p.presale_ships_at = patch.presale_ships_at.unwrap_or(p.presale_ships_at);
        check_price(p.price_minor, p.weight_g)?;
        let event = audit_event(
            who,
            shop,
            p.id.to_string(),
            kinds::PRODUCT_UPDATED,
            json!({ "sku": p.sku, "price_minor": p.price_minor, "on_sale": p.on_sale }),
            self.now(),
        );
        self.inner.store.update_product(&p, event).await?;
        // Whenever the date is given, even unchanged: saving it again moves any
        // order an earlier move missed (a move only changes lines not yet on the date).
        if presale_given {
            self.reschedule_presale(who, shop, &p).await?;
        }
        Ok(p)
    }

    /// Moves the open orders sold under a pre-sale of `product` to its new date:
    /// finds them page by page, then has the writer move each group against the
    /// catalogue's date as it stands then.
    async fn reschedule_presale(&self, who: &Principal, shop: ShopId, product: &Product) -> EngineResult<()> {
        let mut ids = Vec::new();
        let sold_under_presale = |o: &Order| o.lines.iter().any(|l| l.sku_id == product.id && l.ships_at.is_some());
        for status in OrderStatus::BEFORE_SHIPMENT {
            let orders = self.scan_orders(shop, status, usize::MAX, sold_under_presale).await?;
            ids.extend(orders.iter().map(|o| o.id));
        }
        for chunk in ids.chunks(256) {
            let cmd = Command::ReschedulePresale(ReschedulePresale {
                by: crate::orders::by(who, shop),
                sku: product.sku.clone(),
                orders: chunk.to_vec(),
            });
            self.submit(cmd).await?;
        }
        Ok(())
    }

    pub async fn get_product(&self, who: &Principal, shop: Option<ShopId>, id: ProductId) -> EngineResult<Product> {
        let shop = self.scope(who, shop, Action::ReadCatalog)?;
        Ok(self.inner.store.get_product(shop, id).await?)
    }

    pub async fn list_products(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        cursor: Option<ProductId>,
        limit: u32,
    ) -> EngineResult<Vec<Product>> {
        let shop = self.scope(who, shop, Action::ReadCatalog)?;
        Ok(self.inner.store.list_products(shop, cursor, limit).await?)
    }

    pub async fn create_warehouse(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        w: NewWarehouse,
    ) -> EngineResult<Warehouse> {
        let shop = self.scope(who, shop, Action::WriteCatalog)?;
        check_code("code", &w.code)?;
        check_name(&w.name)?;
        check_code("region", &w.region)?;
        let warehouse = Warehouse {
            id: WarehouseId(new_id()),
            shop,
            code: w.code,
            name: w.name,
            region: w.region,
            active: true,
            created_at: self.now(),
        };
        let event = audit_event(
            who,
            shop,
            warehouse.id.to_string(),
            kinds::WAREHOUSE_CREATED,
            json!({ "code": warehouse.code, "region": warehouse.region }),
            warehouse.created_at,
        );
        self.inner
            .store
            .create_warehouse(&warehouse, event)
            .await
            .map_err(|e| already_exists(e, format!("warehouse `{}` already exists", warehouse.code)))?;
        Ok(warehouse)
    }

    pub async fn list_warehouses(&self, who: &Principal, shop: Option<ShopId>) -> EngineResult<Vec<Warehouse>> {
        let shop = self.scope(who, shop, Action::ReadStock)?;
        Ok(self.inner.store.list_warehouses(shop).await?)
    }

    /// Receives, corrects or sets (after a count) the on-hand stock of a SKU in a warehouse.
    pub async fn adjust_stock(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        sku: &str,
        warehouse: WarehouseId,
        change: StockChange,
        note: Option<String>,
    ) -> EngineResult<StockLevel> {
        let shop = self.scope(who, shop, Action::WriteStock)?;
        let n = match change {
            StockChange::Delta(n) => i64::try_from(n.unsigned_abs()).unwrap_or(i64::MAX),
            StockChange::SetOnHand(n) if n < 0 => {
                return Err(EngineError::invalid(
                    "quantity-out-of-range",
                    "on_hand must not be negative",
                ));
            }
            StockChange::SetOnHand(n) => n,
        };
        if n > STOCK_UNITS_MAX {
            return Err(EngineError::invalid(
                "quantity-out-of-range",
                format!("at most {STOCK_UNITS_MAX} units"),
            ));
        }
        let by = crate::orders::by(who, shop);
        let cmd = Command::AdjustStock(AdjustStock {
            by,
            sku: sku.to_string(),
            warehouse,
            change,
            note,
        });
        match self.submit(cmd).await? {
            Outcome::Stock(level) => Ok(level),
            _ => Err(EngineError::Store(ordo_store::StoreError::Backend(
                "unexpected outcome".into(),
            ))),
        }
    }

    /// The shop's product with this SKU code; another shop's reads as not found.
    pub(crate) async fn product_by_sku(&self, shop: ShopId, sku: &str) -> EngineResult<Product> {
        self.inner
            .store
            .find_product_by_sku(shop, sku)
            .await?
            .ok_or(EngineError::NotFound)
    }

    pub async fn stock_of(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        sku: &str,
    ) -> EngineResult<(Product, Vec<StockLevel>)> {
        let shop = self.scope(who, shop, Action::ReadStock)?;
        let product = self.product_by_sku(shop, sku).await?;
        let levels = self.inner.store.stock_of(shop, product.id).await?;
        Ok((product, levels))
    }

    pub async fn list_stock(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        warehouse: Option<WarehouseId>,
    ) -> EngineResult<Vec<StockLevel>> {
        let shop = self.scope(who, shop, Action::ReadStock)?;
        Ok(self.inner.store.list_stock(shop, warehouse).await?)
    }

    pub async fn ledger(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        sku: &str,
        after: i64,
        limit: u32,
    ) -> EngineResult<Vec<(i64, LedgerEntry)>> {
        let shop = self.scope(who, shop, Action::ReadStock)?;
        let product = self.product_by_sku(shop, sku).await?;
        Ok(self.inner.store.ledger(shop, product.id, after, limit).await?)
    }
}
