use serde_json::json;

use super::orders::move_stock;
use super::{AdjustStock, Context, Outcome, StockChange, WorkingSet};
use crate::CommandError;
use crate::catalog::ProductKind;
use crate::event::{NewEvent, kinds};
use crate::inventory::{StockKey, StockLevel};

pub(super) fn adjust(ws: &mut WorkingSet, a: &AdjustStock, ctx: &mut Context<'_>) -> Result<Outcome, CommandError> {
    let shop = a.by.shop;
    let product = ws
        .products
        .get(&(shop, a.sku.clone()))
        .ok_or_else(|| CommandError::UnknownSku { sku: a.sku.clone() })?;
    if product.kind == ProductKind::Virtual {
        return Err(CommandError::VirtualSkuHasNoStock { sku: a.sku.clone() });
    }
    let known_warehouse = ws
        .warehouses
        .get(&shop)
        .is_some_and(|ws| ws.iter().any(|w| w.id == a.warehouse));
    if !known_warehouse {
        return Err(CommandError::WarehouseNotFound);
    }
    let key = StockKey {
        sku: product.id,
        warehouse: a.warehouse,
    };
    let now = ctx.now;
    let current = ws
        .stock
        .get(&key)
        .cloned()
        .unwrap_or_else(|| StockLevel::empty(shop, key, now));
    let delta = match a.change {
        StockChange::Delta(d) => d,
        StockChange::SetOnHand(n) => n.checked_sub(current.on_hand).ok_or_else(|| CommandError::Stock {
            sku: a.sku.clone(),
            source: crate::inventory::StockError::TooLarge,
        })?,
    };
    if delta == 0 {
        return Ok(Outcome::Stock(current));
    }
    let m = current.adjust(delta).map_err(|source| CommandError::Stock {
        sku: a.sku.clone(),
        source,
    })?;
    ws.stock.entry(key).or_insert(current);
    move_stock(ws, key, m, None, &a.by.actor, now);
    if let Some(note) = &a.note
        && let Some(last) = ws.last_ledger_mut()
    {
        last.note = Some(note.clone());
    }
    let level = ws.stock[&key].clone();
    ws.emit(NewEvent {
        shop: Some(shop),
        subject: a.sku.clone(),
        kind: kinds::STOCK_CHANGED,
        payload: json!({
            "sku": a.sku, "warehouse": a.warehouse, "delta": delta,
            "on_hand": level.on_hand, "reserved": level.reserved, "available": level.available(), "note": a.note,
        })
        .into(),
        actor: a.by.actor.clone(),
        at: now,
    });
    Ok(Outcome::Stock(level))
}
