//! The provider boundary: something that delivers one rendered message to one
//! recipient, and says how it went.

use async_trait::async_trait;
use ordo_core::notify::Message;

/// What a provider reports for a delivered message (the SMTP reply, the gateway's
/// response); it is kept as the attempt's detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderReceipt {
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Retrying cannot help (a malformed address, a 4xx from the gateway, a 5xx SMTP
    /// reply): the notification fails at once.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The provider could not be reached or answered "try later": retried with backoff.
    #[error("{0}")]
    Unavailable(String),
}

impl ProviderError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, ProviderError::Rejected(_))
    }
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// A short name for logs, e.g. `smtp`.
    fn name(&self) -> &'static str;
    async fn send(&self, to: &str, message: &Message) -> Result<ProviderReceipt, ProviderError>;
}

/// Keeps at most `max` characters of a provider's response for the delivery log.
pub(crate) fn clip(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}
