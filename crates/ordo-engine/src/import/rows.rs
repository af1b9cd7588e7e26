//! Reading an import file into orders, one order as soon as its last row is read,
//! so the first orders are placed while the rest of the file is still being read.
//!
//! Rows sharing an `external_id` form one order wherever they stand in the file, so
//! a quick first pass notes the line on which each external id is seen last; the
//! second pass reads rows fully and hands on each order at that line. The first
//! pass keys lines by a hash of the id: two ids sharing a hash only keep an order
//! back until the end of the file, where every order not yet handed on is.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

use ordo_core::batch::LineRequest;
use ordo_core::order::{Address, Buyer};
use serde::Deserialize;

use super::{RowResult, reject};
use crate::{EngineError, EngineResult, NewOrder};

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

fn cn() -> String {
    "CN".into()
}

/// Both passes read the file alike: every field trimmed, as `Trim::All` does.
fn reader(csv_text: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(csv_text)
}

/// 1-based line of the `i`-th record (the header is line 1).
fn line_of(i: usize) -> usize {
    i + 2
}

/// The first pass: the line on which each external id is seen last.
pub struct LastLines {
    hasher: RandomState,
    by_id: HashMap<u64, usize>,
}

impl LastLines {
    /// Reads the file once, only the `external_id` column; fails if it has more
    /// than [`IMPORT_ROWS_MAX`] rows, before anything is placed.
    pub fn scan(csv_text: &[u8]) -> EngineResult<LastLines> {
        // Untrimmed here, the one column is trimmed by hand: trimming whole records
        // made this pass three times slower.
        let mut reader = csv::ReaderBuilder::new().from_reader(csv_text);
        let column = reader
            .byte_headers()
            .ok()
            .and_then(|h| h.iter().position(|name| trimmed(name) == Some("external_id")));
        let mut last = LastLines {
            hasher: RandomState::new(),
            by_id: HashMap::new(),
        };
        let mut record = csv::ByteRecord::new();
        for i in 0.. {
            match reader.read_byte_record(&mut record) {
                Ok(false) => break,
                // A record that is not UTF-8 or has no such column is rejected in the
                // second pass, which still counts it as a row.
                Ok(true) => {
                    if let Some(id) = column.and_then(|c| record.get(c)).and_then(trimmed)
                        && !id.is_empty()
                    {
                        last.by_id.insert(last.hasher.hash_one(id), line_of(i));
                    }
                }
                Err(_) => {}
            }
            if i >= IMPORT_ROWS_MAX {
                return Err(EngineError::invalid(
                    "import-too-large",
                    format!("at most {IMPORT_ROWS_MAX} rows per import"),
                ));
            }
        }
        Ok(last)
    }

    /// How many orders the file names (distinct external ids, as far as the hash
    /// tells them apart).
    pub fn orders(&self) -> usize {
        self.by_id.len()
    }

    fn is_last(&self, external_id: &str, line: usize) -> bool {
        self.by_id.get(&self.hasher.hash_one(external_id)) == Some(&line)
    }
}

fn trimmed(field: &[u8]) -> Option<&str> {
    std::str::from_utf8(field).ok().map(str::trim)
}

/// One order read whole, with the lines of the file it came from.
pub struct ImportedOrder {
    pub external_id: String,
    pub lines: Vec<usize>,
    pub order: NewOrder,
    pub paid_reference: Option<String>,
}

pub enum Parsed {
    Rejected(RowResult),
    Order(Box<ImportedOrder>),
}

/// The second pass, as an iterator: rejected rows as they are read, each order once
/// its last row is read, and at the end of the file any order still held back.
pub struct OrderRows<'a> {
    records: csv::DeserializeRecordsIntoIter<&'a [u8], Row>,
    channel: &'a str,
    last: LastLines,
    next: usize,
    /// Orders whose last row is still to come, by external id.
    open: HashMap<String, ImportedOrder>,
    /// Orders held back to the end of the file, in the order of their first line.
    rest: VecDeque<ImportedOrder>,
    read_all: bool,
}

impl<'a> OrderRows<'a> {
    pub fn new(csv_text: &'a [u8], channel: &'a str, last: LastLines) -> OrderRows<'a> {
        OrderRows {
            records: reader(csv_text).into_deserialize(),
            channel,
            last,
            next: 0,
            open: HashMap::new(),
            rest: VecDeque::new(),
            read_all: false,
        }
    }

    /// Takes in one row; returns what it completes, if anything.
    fn take(&mut self, line: usize, record: csv::Result<Row>) -> Option<Parsed> {
        let mut row = match record {
            Ok(row) if !row.external_id.is_empty() => row,
            Ok(_) => {
                return Some(Parsed::Rejected(reject(
                    line,
                    None,
                    "invalid-row",
                    "external_id is required".into(),
                )));
            }
            Err(e) => return Some(Parsed::Rejected(reject(line, None, "invalid-row", e.to_string()))),
        };
        let is_last = self.last.is_last(&row.external_id, line);
        let line_request = LineRequest {
            sku: std::mem::take(&mut row.sku),
            quantity: row.quantity,
        };
        let paid_reference = row.paid_reference.take().filter(|r| !r.is_empty());
        if let Some(open) = self.open.get_mut(&row.external_id) {
            open.lines.push(line);
            open.order.lines.push(line_request);
            if open.paid_reference.is_none() {
                open.paid_reference = paid_reference;
            }
            return is_last
                .then(|| self.open.remove(&row.external_id))
                .flatten()
                .map(|o| Parsed::Order(Box::new(o)));
        }
        let external_id = row.external_id.clone();
        let order = ImportedOrder {
            lines: vec![line],
            order: new_order(self.channel, row, line_request),
            paid_reference,
            external_id: external_id.clone(),
        };
        if is_last {
            return Some(Parsed::Order(Box::new(order)));
        }
        self.open.insert(external_id, order);
        None
    }
}

fn new_order(channel: &str, row: Row, line: LineRequest) -> NewOrder {
    NewOrder {
        channel: channel.to_string(),
        external_id: Some(row.external_id),
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
        lines: vec![line],
        shipping_minor: row.shipping_minor.unwrap_or(0),
        note: row.note,
        payment_method: None,
        coupon_codes: vec![],
    }
}

impl Iterator for OrderRows<'_> {
    type Item = Parsed;

    fn next(&mut self) -> Option<Parsed> {
        while !self.read_all {
            let Some(record) = self.records.next() else {
                self.read_all = true;
                let mut rest: Vec<ImportedOrder> = self.open.drain().map(|(_, o)| o).collect();
                rest.sort_by_key(|o| o.lines[0]);
                self.rest = rest.into();
                break;
            };
            let line = line_of(self.next);
            self.next += 1;
            if let Some(parsed) = self.take(line, record) {
                return Some(parsed);
            }
        }
        self.rest.pop_front().map(|o| Parsed::Order(Box::new(o)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "external_id,buyer_id,recipient,phone,province,city,line1,sku,quantity\n";

    fn read(csv: &str) -> Vec<String> {
        let last = LastLines::scan(csv.as_bytes()).unwrap();
        OrderRows::new(csv.as_bytes(), "csv", last)
            .map(|p| match p {
                Parsed::Rejected(r) => format!("rejected {}", r.line),
                Parsed::Order(o) => format!("{} {:?} {}", o.external_id, o.lines, o.order.lines.len()),
            })
            .collect()
    }

    fn row(id: &str, quantity: &str) -> String {
        format!("{id},b,张三,13812345678,上海,上海,世纪大道 1 号,A,{quantity}\n")
    }

    #[test]
    fn each_order_is_handed_on_at_its_last_row_with_every_row_wherever_it_stands() {
        let csv = [
            HEADER.to_string(),
            row("X", "1"),
            row("Y", "1"),
            row(" X ", "2"),
            row("Z", "1"),
        ]
        .concat();
        assert_eq!(read(&csv), ["Y [3] 1", "X [2, 4] 2", "Z [5] 1"]);
    }

    #[test]
    fn an_order_whose_last_row_is_rejected_comes_at_the_end_of_the_file() {
        let csv = [HEADER.to_string(), row("X", "1"), row("X", "many"), row("Y", "1")].concat();
        assert_eq!(read(&csv), ["rejected 3", "Y [4] 1", "X [2] 1"]);
    }

    #[test]
    fn rows_without_an_external_id_are_rejected_and_name_no_order() {
        let csv = [HEADER.to_string(), row("", "1"), row("X", "1")].concat();
        assert_eq!(read(&csv), ["rejected 2", "X [3] 1"]);
        assert_eq!(LastLines::scan(csv.as_bytes()).unwrap().orders(), 1);
    }

    #[test]
    fn a_file_with_too_many_rows_fails_before_anything_is_read_into_orders() {
        let mut csv = HEADER.to_string();
        for i in 0..=IMPORT_ROWS_MAX {
            csv.push_str(&format!("{i}\n"));
        }
        let e = LastLines::scan(csv.as_bytes()).err().unwrap();
        assert!(
            matches!(
                e,
                EngineError::Invalid {
                    code: "import-too-large",
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
