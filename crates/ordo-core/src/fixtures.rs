//! Values for the core's unit tests.

use crate::order::{Address, Buyer, Order, OrderStatus, Pricing};
use crate::{Currency, OrderId, ShopId, Timestamp};

/// A fulfilling order of `buyer` placed at `at`, with an address in Shenzhen and no lines.
pub fn order(id: u128, buyer: &str, at: Timestamp) -> Order {
    Order {
        id: OrderId(id),
        shop: ShopId(1),
        channel: "api".into(),
        external_id: None,
        status: OrderStatus::Fulfilling,
        cancel_reason: None,
        hold_reason: None,
        payment_exception: None,
        buyer: Buyer {
            id: buyer.into(),
            ..Buyer::default()
        },
        shipping_address: Some(Address {
            recipient: "张三".into(),
            phone: "13812345678".into(),
            country: "CN".into(),
            province: "广东省".into(),
            city: "深圳市".into(),
            district: None,
            line1: "科技园路 1 号".into(),
            line2: None,
            postal_code: None,
        }),
        lines: vec![],
        pricing: Pricing {
            currency: Currency::CNY,
            items_minor: 0,
            shipping_minor: 0,
            tax_minor: 0,
            discount_minor: 0,
            total_minor: 0,
        },
        note: None,
        payment_method: None,
        promotions: vec![],
        shipment: None,
        parcels: vec![],
        revisions: vec![],
        paid_minor: 0,
        refunded_minor: 0,
        payment_due_at: None,
        payment_reminder_at: None,
        counted: vec![],
        history: Default::default(),
        created_at: at,
        updated_at: at,
        version: 1,
    }
}
