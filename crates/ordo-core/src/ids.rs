//! Identifier newtypes. Every entity has its own type so an order id can never be
//! passed where a shop id is expected. Ids are 128-bit and time-ordered (UUIDv7 in
//! the shell); the text form carries a readable prefix, e.g. `ord_0193…`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid {kind} id (expected `{prefix}_` followed by 32 hex digits)")]
pub struct ParseIdError {
    pub kind: &'static str,
    pub prefix: &'static str,
    pub input: String,
}

macro_rules! id_type {
    ($name:ident, $prefix:literal, $kind:literal) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u128);

        impl $name {
            pub const PREFIX: &'static str = $prefix;
        }

        // The prefix, `_` and 32 digits must fit an `IdText`.
        const _: () = assert!($prefix.len() <= 7);

        impl $name {
            /// The text form (`ord_…`) without a heap allocation.
            pub fn text(&self) -> IdText {
                IdText::new($prefix, self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.text())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = || ParseIdError {
                    kind: $kind,
                    prefix: $prefix,
                    input: s.chars().take(64).collect(),
                };
                let hex = s
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .ok_or_else(err)?;
                if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err());
                }
                u128::from_str_radix(hex, 16).map($name).map_err(|_| err())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.text())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(ShopId, "shop", "shop");
id_type!(ProductId, "sku", "SKU");
id_type!(WarehouseId, "wh", "warehouse");
id_type!(OrderId, "ord", "order");
id_type!(PaymentId, "pay", "payment");
id_type!(RefundId, "ref", "refund");
id_type!(ApiKeyId, "key", "API key");
id_type!(ExceptionId, "exc", "exception");
id_type!(ChannelOrderId, "cho", "channel order");
id_type!(CodeId, "code", "code");

/// An id's text form on the stack: prefix, `_`, 32 lowercase hex digits. Ids are
/// formatted on every write and every response, so this avoids the general
/// formatting machinery and the heap.
#[derive(Clone, Copy)]
pub struct IdText {
    buf: [u8; 40],
    len: usize,
}

impl IdText {
    fn new(prefix: &str, v: u128) -> IdText {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 40];
        let p = prefix.len();
        buf[..p].copy_from_slice(prefix.as_bytes());
        buf[p] = b'_';
        for (i, b) in buf[p + 1..p + 33].iter_mut().enumerate() {
            *b = DIGITS[((v >> (124 - 4 * i)) & 0xf) as usize];
        }
        IdText { buf, len: p + 33 }
    }
}

impl std::ops::Deref for IdText {
    type Target = str;
    fn deref(&self) -> &str {
        // Only an ASCII prefix and hex digits were written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// Position in the event log; assigned by the store on commit, strictly increasing
/// in commit order.
pub type EventSeq = i64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id = OrderId(0x0193_0000_0000_7000_8000_0000_0000_00ff);
        let text = id.to_string();
        assert_eq!(text, "ord_019300000000700080000000000000ff");
        assert_eq!(text.parse::<OrderId>().unwrap(), id);
    }

    #[test]
    fn an_id_of_another_kind_is_rejected() {
        let shop = ShopId(7).to_string();
        let err = shop.parse::<OrderId>().unwrap_err();
        assert_eq!(err.kind, "order");
        assert!("ord_xyz".parse::<OrderId>().is_err());
        assert!("ord_".parse::<OrderId>().is_err());
    }
}
