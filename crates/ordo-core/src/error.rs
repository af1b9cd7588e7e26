//! Business-rule errors of the core. Each has a stable machine-readable code that the
//! API turns into a problem+json `type`.

use crate::inventory::StockError;
use crate::money::MoneyError;
use crate::order::TransitionError;
use crate::payment::PaymentTransitionError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("shop not found")]
    ShopNotFound,
    #[error("order not found")]
    OrderNotFound,
    #[error("SKU `{sku}` does not exist in this shop")]
    UnknownSku { sku: String },
    #[error("SKU `{sku}` is not on sale")]
    SkuNotOnSale { sku: String },
    #[error("warehouse not found")]
    WarehouseNotFound,
    #[error("SKU `{sku}` is virtual and holds no warehouse stock")]
    VirtualSkuHasNoStock { sku: String },
    #[error("insufficient stock for SKU `{sku}`: {requested} requested, {available} available")]
    InsufficientStock {
        sku: String,
        requested: i64,
        available: i64,
    },
    #[error("stock change for SKU `{sku}` rejected: {source}")]
    Stock { sku: String, source: StockError },
    #[error("an order needs between 1 and {max} lines")]
    LineCount { max: usize },
    #[error("quantity must be between 1 and {max}")]
    Quantity { max: i64 },
    #[error(transparent)]
    Promotion(#[from] crate::promotion::PromotionError),
    #[error("payment method `{method}` is not offered by this shop")]
    PaymentMethodNotAllowed { method: String },
    #[error("orders with physical goods need a shipping address")]
    AddressRequired,
    #[error(transparent)]
    InvalidAddress(#[from] crate::address::AddressError),
    #[error("{0}")]
    Money(#[from] MoneyError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    PaymentTransition(#[from] PaymentTransitionError),
    #[error("refund of {requested} exceeds the {refundable} still refundable")]
    RefundExceedsCaptured { requested: i64, refundable: i64 },
    #[error("the Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("the order has no payment exception to resolve")]
    NoPaymentException,
    #[error(
        "the channel's amounts do not add up: lines, shipping and tax less discounts make {computed}, but the total is {total}"
    )]
    ChannelTotalsMismatch { computed: i64, total: i64 },
    #[error("the channel order's terms are inconsistent: {reason}")]
    ChannelTerms { reason: &'static str },
    #[error("the code pool of SKU `{sku}` has {available} code(s); {needed} are needed")]
    CodePoolShort { sku: String, needed: i64, available: i64 },
    #[error("the order's virtual lines have all their codes")]
    NoCodesOwed,
    #[error("the order ships in {parcels} parcels; say which one")]
    ParcelRequired { parcels: usize },
    #[error("the order has no such parcel waiting to ship")]
    NoSuchParcel,
    #[error("the parcel holds pre-sale goods that ship from {} (Unix ms)", ships_at.0)]
    PresaleNotReady { ships_at: crate::Timestamp },
    #[error("the order was changed meanwhile: you edited version {expected}, it is at version {current}")]
    VersionConflict { expected: i64, current: i64 },
    #[error("an order that is {status} (or has started to ship) cannot be edited")]
    NotEditable { status: &'static str },
    #[error("these orders cannot ship as one parcel: {0}")]
    CannotMerge(#[from] crate::consolidation::MergeRefused),
    #[error("the order has no line {line}")]
    NoSuchLine { line: usize },
    #[error("line {line} has {left} unit(s) left to refund")]
    LineRefundQuantity { line: usize, left: i64 },
    #[error("the buyer still owes {due_minor} from an edit; it ships once paid")]
    PaymentDue { due_minor: i64 },
    #[error("coupon `{code}` has been used up")]
    CouponUsedUp { code: String },
    #[error("coupon `{code}` may be used on {max} order(s) per buyer, and this buyer has used it up")]
    CouponPerBuyerLimit { code: String, max: i64 },
    #[error("SKU `{sku}` is limited to {max} unit(s) per buyer; this buyer already has {already}")]
    PurchaseLimit { sku: String, max: i64, already: i64 },
}

impl CommandError {
    /// Stable, documented code; the API uses it as the problem `type` suffix.
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::ShopNotFound => "shop-not-found",
            CommandError::OrderNotFound => "order-not-found",
            CommandError::UnknownSku { .. } => "unknown-sku",
            CommandError::SkuNotOnSale { .. } => "sku-not-on-sale",
            CommandError::WarehouseNotFound => "warehouse-not-found",
            CommandError::VirtualSkuHasNoStock { .. } => "virtual-sku-has-no-stock",
            CommandError::InsufficientStock { .. } => "insufficient-stock",
            CommandError::Stock { .. } => "stock-rule",
            CommandError::LineCount { .. } => "line-count",
            CommandError::Quantity { .. } => "quantity-out-of-range",
            CommandError::AddressRequired => "address-required",
            CommandError::PaymentMethodNotAllowed { .. } => "payment-method-not-allowed",
            CommandError::Promotion(crate::promotion::PromotionError::CouponNotApplicable(_)) => {
                "coupon-not-applicable"
            }
            CommandError::Promotion(crate::promotion::PromotionError::Invalid { .. }) => "invalid-promotion",
            CommandError::InvalidAddress(_) => "invalid-address",
            CommandError::Money(MoneyError::CurrencyMismatch { .. }) => "currency-mismatch",
            CommandError::Money(_) => "money-out-of-range",
            CommandError::Transition(_) | CommandError::PaymentTransition(_) => "illegal-transition",
            CommandError::RefundExceedsCaptured { .. } => "refund-exceeds-captured",
            CommandError::IdempotencyKeyReused => "idempotency-key-reused",
            CommandError::Empty { .. } => "empty-field",
            CommandError::NoPaymentException => "no-payment-exception",
            CommandError::CouponUsedUp { .. } => "coupon-used-up",
            CommandError::PaymentDue { .. } => "payment-due",
            CommandError::NoSuchLine { .. } => "no-such-line",
            CommandError::LineRefundQuantity { .. } => "line-refund-quantity",
            CommandError::CannotMerge(_) => "cannot-merge",
            CommandError::VersionConflict { .. } => "version-conflict",
            CommandError::NotEditable { .. } => "not-editable",
            CommandError::ParcelRequired { .. } => "parcel-required",
            CommandError::NoSuchParcel => "no-such-parcel",
            CommandError::PresaleNotReady { .. } => "presale-not-ready",
            CommandError::CodePoolShort { .. } => "code-pool-short",
            CommandError::NoCodesOwed => "no-codes-owed",
            CommandError::ChannelTotalsMismatch { .. } => "channel-totals-mismatch",
            CommandError::ChannelTerms { .. } => "channel-terms",
            CommandError::CouponPerBuyerLimit { .. } => "coupon-per-buyer-limit",
            CommandError::PurchaseLimit { .. } => "purchase-limit",
        }
    }

    /// Whether the error means "no such thing in your shop" (mapped to 404).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            CommandError::ShopNotFound | CommandError::OrderNotFound | CommandError::WarehouseNotFound
        )
    }
}
