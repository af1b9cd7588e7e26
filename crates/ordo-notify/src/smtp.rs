//! E-mail over SMTP (lettre, plain TCP: point it at a local relay or an SMTP
//! sink; this build carries no TLS).

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use ordo_core::notify::Message;

use crate::provider::{Provider, ProviderError, ProviderReceipt, clip};

/// How long one SMTP conversation may take.
const TIMEOUT: Duration = Duration::from_secs(15);

pub struct SmtpProvider {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpProvider {
    /// `from` is a mailbox, e.g. `Ordo Shop <shop@example.com>`.
    pub fn new(host: &str, port: u16, from: &str) -> Result<SmtpProvider, ProviderError> {
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| ProviderError::Rejected(format!("sender address `{from}`: {e}")))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(TIMEOUT))
            .build();
        Ok(SmtpProvider { transport, from })
    }
}

#[async_trait]
impl Provider for SmtpProvider {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, to: &str, message: &Message) -> Result<ProviderReceipt, ProviderError> {
        let to = to
            .parse::<Mailbox>()
            .map_err(|e| ProviderError::Rejected(format!("recipient address: {e}")))?;
        // Base64 always: the texts are mostly Chinese, and one encoding keeps them intact.
        let body = Body::new_with_encoding(message.body.clone(), ContentTransferEncoding::Base64)
            .map_err(|_| ProviderError::Rejected("body cannot be encoded".into()))?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| ProviderError::Rejected(format!("message: {e}")))?;
        match self.transport.send(email).await {
            Ok(response) => Ok(ProviderReceipt {
                detail: clip(
                    &format!("{} {}", response.code(), response.first_line().unwrap_or_default()),
                    200,
                ),
            }),
            Err(e) if e.is_permanent() => Err(ProviderError::Rejected(clip(&describe(&e), 500))),
            Err(e) => Err(ProviderError::Unavailable(clip(&describe(&e), 500))),
        }
    }
}

/// The error and its causes ("Connection refused" is in a cause).
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}
