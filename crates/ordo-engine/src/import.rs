//! CSV bulk import of orders (A1, K4). One row per order line; rows sharing an
//! `external_id` form one order. Every order goes through the normal intake
//! (validation, stock, idempotency on (channel, external_id)), so importing the same
//! file twice creates nothing new. The report says, row by row, what happened.

use std::collections::HashMap;

use futures_util::StreamExt as _;

use ordo_core::ShopId;
use ordo_core::auth::Principal;
use ordo_core::batch::LineRequest;
use ordo_core::order::{Address, Buyer};
use serde::{Deserialize, Serialize};

use crate::{Engine, EngineError, EngineResult, NewOrder};

/// Orders in flight at once: several full group commits' worth, so the writer's queue
/// is never empty while answers are collected (no barrier between chunks).
const WINDOW: usize = 8_192;
/// How often (in orders) `progress` is called.
const PROGRESS_EVERY: usize = 1_000;
/// Most rows one import may carry.
pub const IMPORT_ROWS_MAX: usize = 200_000;

/// The CSV columns (header row required; order of columns free).
#[derive(Debug, Deserialize)]
struct Row {
    external_id: String,
    buyer_id: String,
    #[serde(default)]
    buyer_name: Option<String>,
    #[serde(default)]
    buyer_phone: Option<String>,
    recipient: String,
    phone: String,
    #[serde(default = "cn")]
    country: String,
    province: String,
    city: String,
    #[serde(default)]
    district: Option<String>,
    line1: String,
    #[serde(default)]
    postal_code: Option<String>,
    sku: String,
    quantity: i64,
    #[serde(default)]
    shipping_minor: Option<i64>,
    #[serde(default)]
    note: Option<String>,
    /// Set when the order was already paid elsewhere (a till, a bank transfer): the
    /// payment's reference. The order is then paid in full as it is placed.
    #[serde(default)]
    paid_reference: Option<String>,
}

/// The gateway name imported payments are recorded under.
pub const IMPORT_GATEWAY: &str = "import";

fn cn() -> String {
    "CN".into()
}

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
    /// 1-based line number in the file (the header is line 1).
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
    /// Imports orders from CSV text for `shop` on `channel` (default `csv`).
    /// `progress(done, total)` is called as orders complete.
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
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(csv_text);
        let mut results = Vec::new();
        // external_id → (lines, order, paid reference)
        let mut orders: Vec<(String, Vec<usize>, NewOrder, Option<String>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, record) in reader.deserialize::<Row>().enumerate() {
            let line = i + 2;
            if i >= IMPORT_ROWS_MAX {
                return Err(EngineError::invalid(
                    "import-too-large",
                    format!("at most {IMPORT_ROWS_MAX} rows per import"),
                ));
            }
            let row = match record {
                Ok(row) if !row.external_id.is_empty() => row,
                Ok(_) => {
                    results.push(reject(line, None, "invalid-row", "external_id is required".into()));
                    continue;
                }
                Err(e) => {
                    results.push(reject(line, None, "invalid-row", e.to_string()));
                    continue;
                }
            };
            let line_request = LineRequest {
                sku: row.sku.clone(),
                quantity: row.quantity,
            };
            let paid_reference = row.paid_reference.filter(|r| !r.is_empty());
            match index.get(&row.external_id) {
                Some(&k) => {
                    orders[k].1.push(line);
                    orders[k].2.lines.push(line_request);
                    if orders[k].3.is_none() {
                        orders[k].3 = paid_reference;
                    }
                }
                None => {
                    index.insert(row.external_id.clone(), orders.len());
                    let order = NewOrder {
                        channel: channel.to_string(),
                        external_id: Some(row.external_id.clone()),
                        buyer: Buyer {
                            id: row.buyer_id,
                            name: row.buyer_name,
                            phone: row.buyer_phone,
                            email: None,
                        },
                        shipping_address: Some(Address {
                            recipient: row.recipient,
                            phone: row.phone,
                            country: row.country,
                            province: row.province,
                            city: row.city,
                            district: row.district,
                            line1: row.line1,
                            line2: None,
                            postal_code: row.postal_code,
                        }),
                        lines: vec![line_request],
                        shipping_minor: row.shipping_minor.unwrap_or(0),
                        note: row.note,
                        payment_method: None,
                        coupon_codes: vec![],
                    };
                    orders.push((row.external_id, vec![line], order, paid_reference));
                }
            }
        }
        let total = orders.len();
        let mut done = 0;
        let mut report = ImportReport::default();
        let mut placed = futures_util::stream::iter(orders.into_iter().map(
            |(external_id, lines, order, paid_reference)| async move {
                let mut outcome = self.place_imported_order(who, shop, order).await;
                if let (Ok((id, status, total, _)), Some(reference)) = (&outcome, paid_reference)
                    && *status == ordo_core::order::OrderStatus::PendingPayment
                    && let Err(e) = self.record_paid_elsewhere(shop, *id, *total, reference).await
                {
                    outcome = Err(e);
                }
                let outcome = outcome.map(|(id, _, _, replayed)| (id, replayed));
                (external_id, lines, outcome)
            },
        ))
        .buffered(WINDOW);
        while let Some((external_id, lines, outcome)) = placed.next().await {
            for line in lines {
                results.push(match &outcome {
                    Ok((order_id, replayed)) => RowResult {
                        line,
                        external_id: Some(external_id.clone()),
                        status: if *replayed {
                            RowStatus::Duplicate
                        } else {
                            RowStatus::Created
                        },
                        order_id: Some(order_id.to_string()),
                        error_code: None,
                        error: None,
                    },
                    Err(e) => reject(line, Some(external_id.clone()), error_code(e), e.to_string()),
                });
            }
            match &outcome {
                Ok((_, true)) => report.orders_duplicate += 1,
                Ok((_, false)) => report.orders_created += 1,
                Err(_) => {}
            }
            done += 1;
            if done % PROGRESS_EVERY == 0 || done == total {
                progress(done, total);
            }
        }
        results.sort_by_key(|r| r.line);
        report.rows = results.len();
        report.rows_rejected = results.iter().filter(|r| r.status == RowStatus::Rejected).count();
        report.results = results;
        Ok(report)
    }
}

impl Engine {
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
