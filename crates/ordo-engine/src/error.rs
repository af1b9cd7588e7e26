use ordo_core::CommandError;
use ordo_store::StoreError;

/// Everything a use case can fail with; the API maps each variant once.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("missing or invalid credentials")]
    Unauthenticated,
    #[error("your role may not do this")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error(transparent)]
    Rule(#[from] CommandError),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("a request with this Idempotency-Key is still being processed")]
    InFlight,
    #[error("too many requests for this API key; slow down")]
    RateLimited,
    #[error("the order queue is full; retry shortly")]
    Overloaded,
    #[error("payment notification signature is invalid or expired")]
    BadSignature,
    #[error("storage failed: {0}")]
    Store(StoreError),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => EngineError::NotFound,
            StoreError::Conflict(m) => EngineError::Conflict(m),
            other => EngineError::Store(other),
        }
    }
}

impl EngineError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        EngineError::Invalid {
            code,
            message: message.into(),
        }
    }
}

pub type EngineResult<T> = Result<T, EngineError>;
