//! Counters that span orders: coupon usage limits (A4), per-buyer purchase limits
//! (A3) and the order history the review rules look at (A5).
//!
//! A counter is a row the store loads and locks with the batch, so two buyers
//! racing for the last use of a coupon are decided one after the other. Windowed
//! counters restart when their window has passed. An order remembers what it
//! counted, so cancelling it gives back exactly that.

use serde::{Deserialize, Serialize};

use crate::order::Address;
use crate::{ShopId, Timestamp};

pub mod seed;

/// A counter's identity: the shop and a name such as `coupon:SPRING10`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    pub shop: ShopId,
    pub name: String,
}

/// A counter's value; `window_start` is when its current window began (0 when unwindowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counter {
    pub value: i64,
    pub window_start: Timestamp,
}

impl Counter {
    /// The count within a window of `window_secs` ending now (`None` = forever).
    pub fn current(&self, window_secs: Option<i64>, now: Timestamp) -> i64 {
        match window_secs {
            Some(w) if self.window_start.plus_secs(w) <= now => 0,
            _ => self.value,
        }
    }

    /// Adds `amount`, first starting a new window if the current one has passed
    /// (or nothing is counted in it), and returns what the caller must remember.
    pub fn add(&mut self, name: String, amount: i64, window_secs: Option<i64>, now: Timestamp) -> Counted {
        if let Some(w) = window_secs
            && (self.value == 0 || self.window_start.plus_secs(w) <= now)
        {
            *self = Counter {
                value: 0,
                window_start: now,
            };
        }
        self.value += amount;
        Counted {
            counter: name,
            amount,
            window_start: self.window_start,
        }
    }

    /// Takes back what an order counted, unless the window it counted in is over.
    pub fn give_back(&mut self, counted: &Counted) {
        if self.window_start == counted.window_start {
            self.value = (self.value - counted.amount).max(0);
        }
    }
}

/// What an order added to a counter, given back if the order is cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    pub counter: String,
    pub amount: i64,
    /// The window it counted in; a counter whose window restarted since owes nothing back.
    pub window_start: Timestamp,
}

/// A cap on how many units of one SKU a buyer may buy within a window (限购).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseLimit {
    pub sku: String,
    pub max_units: i64,
    /// The window the cap applies to, e.g. 86400 for a day; absent = for ever.
    #[serde(default)]
    pub window_secs: Option<i64>,
}

/// Counter names. Each embeds what it counts, so one table holds them all.
pub mod names {
    pub fn coupon(code: &str) -> String {
        format!("coupon:{code}")
    }
    pub fn coupon_buyer(code: &str, buyer: &str) -> String {
        format!("coupon-buyer:{code}:{buyer}")
    }
    pub fn purchases(sku: &str, buyer: &str) -> String {
        format!("buy:{sku}:{buyer}")
    }
    pub fn buyer_orders(buyer: &str) -> String {
        format!("buyer-orders:{buyer}")
    }
    pub fn code_pool(sku: crate::ProductId) -> String {
        format!("codes:{sku}")
    }
    pub fn address_orders(fingerprint: u64) -> String {
        format!("address-orders:{fingerprint:016x}")
    }
}

/// A placement's facts that name counters. Which counters it needs depends on the
/// shop's settings, so the store asks [`Intake::needs`] once settings are loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    pub shop: ShopId,
    pub buyer: String,
    pub coupons: Vec<String>,
    pub skus: Vec<String>,
    /// Units per line, in line order (virtual ones need codes when prepaid).
    pub quantities: Vec<i64>,
    /// Paid (or cash on delivery) at intake, so virtual lines take their codes at once.
    pub prepaid: bool,
    pub address: Option<u64>,
}

/// One counter a placement reads, and the rule it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub name: String,
    pub rule: Rule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// At most `max` orders use coupon `code`.
    CouponTotal { code: String, max: i64 },
    /// At most `max` orders of this buyer use coupon `code`.
    CouponPerBuyer { code: String, max: i64 },
    /// At most `max` units of `sku` per buyer within the window.
    Purchases {
        sku: String,
        max: i64,
        window_secs: Option<i64>,
    },
    /// The buyer's earlier orders (for the new-buyer review rule).
    BuyerOrders,
    /// Orders to the address within the window (for the address review rule).
    AddressOrders { window_secs: i64 },
}

impl Rule {
    pub fn window_secs(&self) -> Option<i64> {
        match self {
            Rule::Purchases { window_secs, .. } => *window_secs,
            Rule::AddressOrders { window_secs } => Some(*window_secs),
            _ => None,
        }
    }
}

impl Intake {
    /// The counters this placement needs under `settings`; none when no rule is on.
    pub fn needs(&self, settings: &crate::catalog::ShopSettings) -> Vec<Need> {
        needs(
            settings,
            &self.buyer,
            &self.coupons,
            |sku| self.skus.iter().any(|s| s == sku),
            self.address,
        )
    }
}

/// The counters a placement by `buyer` needs under `settings`.
pub fn needs(
    settings: &crate::catalog::ShopSettings,
    buyer: &str,
    coupons: &[String],
    has_sku: impl Fn(&str) -> bool,
    address: Option<u64>,
) -> Vec<Need> {
    let mut needs = Vec::new();
    for code in coupons {
        for p in settings
            .promotions
            .iter()
            .filter(|p| p.coupon_code.as_deref() == Some(code))
        {
            if let Some(max) = p.usage_limit {
                needs.push(Need {
                    name: names::coupon(code),
                    rule: Rule::CouponTotal {
                        code: code.clone(),
                        max,
                    },
                });
            }
            if let Some(max) = p.per_buyer_limit {
                needs.push(Need {
                    name: names::coupon_buyer(code, buyer),
                    rule: Rule::CouponPerBuyer {
                        code: code.clone(),
                        max,
                    },
                });
            }
        }
    }
    for limit in settings.purchase_limits.iter().filter(|l| has_sku(&l.sku)) {
        needs.push(Need {
            name: names::purchases(&limit.sku, buyer),
            rule: Rule::Purchases {
                sku: limit.sku.clone(),
                max: limit.max_units,
                window_secs: limit.window_secs,
            },
        });
    }
    if settings.review.new_buyer_above_minor.is_some() {
        needs.push(Need {
            name: names::buyer_orders(buyer),
            rule: Rule::BuyerOrders,
        });
    }
    if let (Some(rule), Some(fp)) = (settings.review.address_orders, address) {
        needs.push(Need {
            name: names::address_orders(fp),
            rule: Rule::AddressOrders {
                window_secs: rule.window_secs,
            },
        });
    }
    needs
}

/// A stable fingerprint of where an address delivers to: case, spaces and the
/// recipient's name do not matter, so "Room 5, Gate 2" and "room5,gate2" match.
pub fn address_fingerprint(a: &Address) -> u64 {
    // FNV-1a: stable across builds and platforms (std's hasher is not).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |c: char| {
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for part in fingerprint_parts(a) {
        for c in part.chars().filter(|c| !c.is_whitespace()) {
            // The same as `char::to_lowercase` (the fingerprints are stored), without its
            // table search for the characters most addresses are made of.
            if c.is_ascii() {
                feed(c.to_ascii_lowercase());
            } else if is_cjk_ideograph(c) {
                feed(c);
            } else {
                c.to_lowercase().for_each(&mut feed);
            }
        }
        feed('\u{1f}');
    }
    hash
}

/// The fields an address fingerprint is made of, in order.
fn fingerprint_parts(a: &Address) -> [&str; 6] {
    [
        a.country.as_str(),
        &a.province,
        &a.city,
        a.district.as_deref().unwrap_or(""),
        &a.line1,
        a.line2.as_deref().unwrap_or(""),
    ]
}

/// CJK Unified Ideographs (the basic block): letters without case.
fn is_cjk_ideograph(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// Facts about an order's history, taken when it was placed, for the review rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HistoryFacts {
    /// Orders the buyer placed before this one (counted while the rule is on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_orders_before: Option<i64>,
    /// Orders to the same address within the rule's window, this one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_orders_in_window: Option<i64>,
}

impl HistoryFacts {
    pub fn is_empty(&self) -> bool {
        *self == HistoryFacts::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(line1: &str, recipient: &str) -> Address {
        Address {
            recipient: recipient.into(),
            phone: "13812345678".into(),
            country: "CN".into(),
            province: "广东省".into(),
            city: "深圳市".into(),
            district: Some("南山区".into()),
            line1: line1.into(),
            line2: None,
            postal_code: None,
        }
    }

    #[test]
    fn fingerprint_ignores_case_spaces_and_recipient() {
        assert_eq!(
            address_fingerprint(&addr("Room 5, Gate 2", "张三")),
            address_fingerprint(&addr("room5,gate2", "李四"))
        );
        assert_ne!(
            address_fingerprint(&addr("Room 5", "张三")),
            address_fingerprint(&addr("Room 6", "张三"))
        );
    }

    /// `address_fingerprint` of the address in `fingerprints_stay_what_they_were_stored_as`,
    /// worked out independently (FNV-1a over the lowercased UTF-8, as first defined).
    const GOLDEN: u64 = 6_904_675_363_643_408_577;

    /// The fingerprint as first written, which stored fingerprints were made with.
    fn fingerprint_by_lowercase(a: &Address) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for part in fingerprint_parts(a) {
            for c in part.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase) {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    hash ^= u64::from(b);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
            }
            hash ^= 0x1f;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }

    #[test]
    fn fingerprints_stay_what_they_were_stored_as() {
        // Counters are keyed by these: a change to the fields, their order or the
        // hashing would orphan every stored one.
        let mut a = addr("Room 5, Gate 2", "张三");
        a.line2 = Some("ÀÉ İ".into());
        assert_eq!(address_fingerprint(&a), GOLDEN);
    }

    proptest::proptest! {
        #[test]
        fn fingerprint_matches_the_lowercase_definition(
            line1 in "\\PC{0,24}",
            line2 in proptest::option::of("[A-Za-zÀ-ÿΑ-ωА-я一-鿿 ,İẞ]{0,16}"),
            city in "[一-鿿A-Za-z ]{0,8}",
        ) {
            let mut a = addr(&line1, "张三");
            a.line2 = line2;
            a.city = city;
            proptest::prop_assert_eq!(address_fingerprint(&a), fingerprint_by_lowercase(&a));
        }
    }

    #[test]
    fn windows_restart_once_passed() {
        let mut c = Counter::default();
        let first = c.add("n".into(), 2, Some(100), Timestamp(1_000_000));
        assert_eq!(c.window_start, Timestamp(1_000_000));
        c.add("n".into(), 1, Some(100), Timestamp(1_050_000));
        assert_eq!(c.current(Some(100), Timestamp(1_099_999)), 3);
        assert_eq!(c.current(Some(100), Timestamp(1_100_000)), 0);
        let mut given_back = c;
        given_back.give_back(&first);
        assert_eq!(
            given_back.value, 1,
            "an order in the current window gives back what it counted"
        );
        c.add("n".into(), 1, Some(100), Timestamp(1_100_000));
        assert_eq!((c.value, c.window_start), (1, Timestamp(1_100_000)));
        c.give_back(&first);
        assert_eq!(c.value, 1, "an order from a past window owes nothing to the new one");
        let mut forever = Counter::default();
        forever.add("f".into(), 5, None, Timestamp(9));
        assert_eq!(forever.current(None, Timestamp(i64::MAX / 2)), 5);
    }
}
