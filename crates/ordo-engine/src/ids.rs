//! Time-ordered 128-bit ids (UUIDv7) for the core's [`IdSource`].

use ordo_core::IdSource;

pub struct UuidV7;

impl IdSource for UuidV7 {
    fn next_id(&mut self) -> u128 {
        uuid::Uuid::now_v7().as_u128()
    }
}

pub fn new_id() -> u128 {
    uuid::Uuid::now_v7().as_u128()
}
