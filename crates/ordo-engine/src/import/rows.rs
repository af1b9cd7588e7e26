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

/// The one reader setting both passes share, so they count the same records and
/// give each the same line; the second pass adds only `Trim::All`.
fn csv_reader() -> csv::ReaderBuilder {
    csv::ReaderBuilder::new()
}

/// 1-based line of the `i`-th record, counting the header as line 1 (the file's
/// line unless a quoted field spans lines).
fn line_of(i: usize) -> usize {
    i + 2
}

/// The first pass: the line on which each external id is seen last. The hasher
/// is a parameter so tests can make every id collide.
pub struct LastLines<S = RandomState> {
    hasher: S,
    by_id: HashMap<u64, usize>,
}

impl LastLines {
    /// Reads the file once, only the `external_id` column; fails if it has more
    /// than [`IMPORT_ROWS_MAX`] rows, before anything is placed.
    pub fn scan(csv_text: &[u8]) -> EngineResult<LastLines> {
        LastLines::scan_with(csv_text, RandomState::new())
    }
}

impl<S: BuildHasher> LastLines<S> {
    pub fn scan_with(csv_text: &[u8], hasher: S) -> EngineResult<LastLines<S>> {
        // Untrimmed here, the one column is trimmed by hand with `str::trim`, as
        // `Trim::All` trims string records: trimming whole records made this pass
        // three times slower.
        let mut reader = csv_reader().from_reader(csv_text);
        // Headers that are not UTF-8 make the second pass match columns by position,
        // so no column is taken for the id then: every order waits for the end.
        let column = reader
            .headers()
            .ok()
            .and_then(|h| h.iter().position(|name| name.trim() == "external_id"));
        let mut last = LastLines {
            hasher,
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
    /// tells them apart: an estimate for progress).
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

/// What the second pass hands on: a row it could not read, or a whole order.
pub enum Parsed {
    Rejected(RowResult),
    Order(Box<ImportedOrder>),
}

/// The second pass, as an iterator: rejected rows as they are read, each order once
/// its last row is read, and at the end of the file any order still held back.
pub struct OrderRows<'a, S = RandomState> {
    records: csv::DeserializeRecordsIntoIter<&'a [u8], Row>,
    channel: &'a str,
    last: LastLines<S>,
    records_read: usize,
    /// Orders whose last row is still to come, by external id.
    open: HashMap<String, ImportedOrder>,
    /// Orders held back to the end of the file, in the order of their first line.
    rest: VecDeque<ImportedOrder>,
    read_all: bool,
}

impl<'a, S: BuildHasher> OrderRows<'a, S> {
    pub fn new(csv_text: &'a [u8], channel: &'a str, last: LastLines<S>) -> OrderRows<'a, S> {
        OrderRows {
            records: csv_reader()
                .trim(csv::Trim::All)
                .from_reader(csv_text)
                .into_deserialize(),
            channel,
            last,
            records_read: 0,
            open: HashMap::new(),
            rest: VecDeque::new(),
            read_all: false,
        }
    }

    /// Takes in one row; returns what it completes, if anything.
    fn add_row(&mut self, line: usize, record: csv::Result<Row>) -> Option<Parsed> {
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
            if !is_last {
                return None;
            }
            return self.open.remove(&row.external_id).map(|o| Parsed::Order(Box::new(o)));
        }
        let order = ImportedOrder {
            external_id: row.external_id.clone(),
            lines: vec![line],
            order: new_order(self.channel, row, line_request),
            paid_reference,
        };
        if is_last {
            return Some(Parsed::Order(Box::new(order)));
        }
        // Only an order still open needs its id a second time, as the map's key.
        self.open.insert(order.external_id.clone(), order);
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

impl<S: BuildHasher> Iterator for OrderRows<'_, S> {
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
            let line = line_of(self.records_read);
            self.records_read += 1;
            if let Some(parsed) = self.add_row(line, record) {
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

    /// Every id hashes alike: each order is held back to the end of the file.
    #[derive(Clone, Default)]
    struct Colliding;

    impl BuildHasher for Colliding {
        type Hasher = ConstantHasher;
        fn build_hasher(&self) -> ConstantHasher {
            ConstantHasher
        }
    }

    struct ConstantHasher;

    impl std::hash::Hasher for ConstantHasher {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _: &[u8]) {}
    }

    fn describe(parsed: Parsed) -> String {
        match parsed {
            Parsed::Rejected(r) => format!("rejected {}", r.line),
            Parsed::Order(o) => format!("{} {:?} {}", o.external_id, o.lines, o.order.lines.len()),
        }
    }

    fn read_bytes<S: BuildHasher>(csv: &[u8], hasher: S) -> Vec<String> {
        let last = LastLines::scan_with(csv, hasher).unwrap();
        OrderRows::new(csv, "csv", last).map(describe).collect()
    }

    fn read(csv: &str) -> Vec<String> {
        read_bytes(csv.as_bytes(), RandomState::new())
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
    fn ids_that_share_a_hash_wait_for_the_end_of_the_file_and_are_still_whole() {
        let csv = [HEADER.to_string(), row("X", "1"), row("Y", "1"), row("X", "2")].concat();
        assert_eq!(read_bytes(csv.as_bytes(), Colliding), ["X [2, 4] 2", "Y [3] 1"]);
    }

    #[test]
    fn malformed_records_count_as_rows_in_both_passes() {
        // A record with a field too few, one that is not UTF-8 (outside the id), and a
        // quoted field spanning two lines, each before the last row of X. X coming
        // before Z shows both passes put X's last row on the same line.
        let mut csv = [HEADER.to_string(), row("X", "1"), "Y,b,张三\n".into()]
            .concat()
            .into_bytes();
        csv.extend_from_slice(b"W,b,\xff,13812345678,x,x,x,A,1\n");
        csv.extend_from_slice("V,b,张三,13812345678,上海,上海,\"世纪大道\n1 号\",A,1\n".as_bytes());
        csv.extend_from_slice(row("X", "2").as_bytes());
        csv.extend_from_slice(row("Z", "1").as_bytes());
        assert_eq!(
            read_bytes(&csv, RandomState::new()),
            ["rejected 3", "rejected 4", "V [5] 1", "X [2, 6] 2", "Z [7] 1"]
        );
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
