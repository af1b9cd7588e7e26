//! CSV bulk import of orders (A1, K4). One row per order line; rows sharing an
//! `external_id` form one order. Every order goes through the normal intake
//! (validation, stock, idempotency on (channel, external_id)), so importing the same
//! file twice creates nothing new. The report says, row by row, what happened.
//! Orders are placed as the file is read (`rows`), each once its last row is in.

use futures_util::StreamExt as _;

use ordo_core::ShopId;
use ordo_core::auth::Principal;
use serde::Serialize;

use crate::{Engine, EngineError, EngineResult};

mod rows;

pub use rows::IMPORT_ROWS_MAX;
use rows::{ImportedOrder, LastLines, OrderRows, Parsed};

/// Orders in flight at once: several full group commits' worth, so the writer's queue
/// is never empty while answers are collected (no barrier between chunks).
const WINDOW: usize = 8_192;
/// How often (in orders) `progress` is called.
const PROGRESS_EVERY: usize = 1_000;

/// The gateway name imported payments are recorded under.
pub const IMPORT_GATEWAY: &str = "import";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    Created,
    /// The order was imported before (same channel and external id).
    Duplicate,
    Rejected,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    /// 1-based line in the file, counting the header as line 1 (strictly, the
    /// record's number: a quoted field spanning lines counts once).
    pub line: usize,
    pub external_id: Option<String>,
    pub status: RowStatus,
    pub order_id: Option<String>,
    /// Stable error code, e.g. `unknown-sku`, `invalid-address`, `invalid-row`.
    pub error_code: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ImportReport {
    pub rows: usize,
    pub orders_created: usize,
    pub orders_duplicate: usize,
    pub rows_rejected: usize,
    pub results: Vec<RowResult>,
}

/// What became of a row the import read: rejected as it was read, or placed (or
/// refused) with the other rows of its order.
enum RowOutcome {
    Rejected(RowResult),
    Placed(PlacedOrder),
}

struct PlacedOrder {
    external_id: String,
    lines: Vec<usize>,
    /// The order's id and whether it had been imported before.
    outcome: EngineResult<(ordo_core::OrderId, bool)>,
}

fn reject(line: usize, external_id: Option<String>, code: &str, error: String) -> RowResult {
    RowResult {
        line,
        external_id,
        status: RowStatus::Rejected,
        order_id: None,
        error_code: Some(code.into()),
        error: Some(error),
    }
}

impl Engine {
    /// Imports orders from CSV text for `shop` on `channel` (default `csv`), each
    /// placed as soon as its last row is read. `progress(done, total)` is called as
    /// orders complete; `total` is the first pass's count of external ids, and the
    /// last call has `done == total`.
    pub async fn import_orders(
        &self,
        who: &Principal,
        shop: Option<ShopId>,
        channel: &str,
        csv_text: &[u8],
        mut progress: impl FnMut(usize, usize),
    ) -> EngineResult<ImportReport> {
        let shop = self.shop_of(who, shop)?;
        self.require(who, ordo_core::auth::Action::PlaceOrders)?;
        // Fails on a file that is too large before anything is placed.
        let last_lines = LastLines::scan(csv_text)?;
        let total = last_lines.orders();
        let mut results = Vec::new();
        let mut done = 0;
        let mut report = ImportReport::default();
        let mut outcomes = futures_util::stream::iter(OrderRows::new(csv_text, channel, last_lines))
            .map(|parsed| async move {
                match parsed {
                    Parsed::Rejected(row) => RowOutcome::Rejected(row),
                    Parsed::Order(order) => RowOutcome::Placed(self.place_one(who, shop, *order).await),
                }
            })
            .buffered(WINDOW);
        while let Some(outcome) = outcomes.next().await {
            let placed = match outcome {
                RowOutcome::Placed(placed) => placed,
                RowOutcome::Rejected(row) => {
                    results.push(row);
                    continue;
                }
            };
            for &line in &placed.lines {
                results.push(match &placed.outcome {
                    Ok((order_id, replayed)) => RowResult {
                        line,
                        external_id: Some(placed.external_id.clone()),
                        status: if *replayed {
                            RowStatus::Duplicate
                        } else {
                            RowStatus::Created
                        },
                        order_id: Some(order_id.to_string()),
                        error_code: None,
                        error: None,
                    },
                    Err(e) => reject(line, Some(placed.external_id.clone()), error_code(e), e.to_string()),
                });
            }
            match &placed.outcome {
                Ok((_, true)) => report.orders_duplicate += 1,
                Ok((_, false)) => report.orders_created += 1,
                Err(_) => {}
            }
            done += 1;
            if done % PROGRESS_EVERY == 0 || done == total {
                progress(done, total.max(done));
            }
        }
        // An external id whose every row was rejected was counted but placed nothing;
        // two sharing a hash were counted once.
        if done != total {
            progress(done, done);
        }
        results.sort_by_key(|r| r.line);
        report.rows = results.len();
        report.rows_rejected = results.iter().filter(|r| r.status == RowStatus::Rejected).count();
        report.results = results;
        Ok(report)
    }
}

impl Engine {
    /// Places one imported order and, if it was paid elsewhere, records that payment.
    async fn place_one(&self, who: &Principal, shop: ShopId, imported: ImportedOrder) -> PlacedOrder {
        let ImportedOrder {
            external_id,
            lines,
            order,
            paid_reference,
        } = imported;
        let mut outcome = self.place_imported_order(who, shop, order).await;
        if let (Ok((id, status, total, _)), Some(reference)) = (&outcome, paid_reference)
            && *status == ordo_core::order::OrderStatus::PendingPayment
            && let Err(e) = self.record_paid_elsewhere(shop, *id, *total, reference).await
        {
            outcome = Err(e);
        }
        PlacedOrder {
            external_id,
            lines,
            outcome: outcome.map(|(id, _, _, replayed)| (id, replayed)),
        }
    }

    /// Captures an imported order's full total as paid under `reference` (gateway
    /// `import`), like a gateway's notice: deduplicated by reference, so a second
    /// import of the file pays nothing twice.
    async fn record_paid_elsewhere(
        &self,
        shop: ShopId,
        order: ordo_core::OrderId,
        total: ordo_core::money::Money,
        reference: String,
    ) -> EngineResult<()> {
        let notice = ordo_core::payment::PaymentNotice {
            shop,
            gateway: IMPORT_GATEWAY.into(),
            order,
            transaction_id: reference,
            succeeded: true,
            amount_minor: total.amount_minor,
            currency: total.currency,
        };
        self.submit(ordo_core::batch::Command::PaymentNotice(notice)).await?;
        Ok(())
    }
}

fn error_code(e: &EngineError) -> &'static str {
    match e {
        EngineError::Rule(rule) => rule.code(),
        EngineError::Invalid { code, .. } => code,
        EngineError::Overloaded => "overloaded",
        EngineError::Forbidden => "forbidden",
        _ => "internal",
    }
}
