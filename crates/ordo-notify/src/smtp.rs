//! E-mail over SMTP (lettre): plain SMTP to a local relay, STARTTLS, or TLS from
//! the first byte (rustls, trusting the public web roots and any CA the operator
//! adds), with a login when the server asks for one.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use ordo_core::notify::Message;
use percent_encoding::percent_decode_str;

use crate::provider::{Provider, ProviderError, ProviderReceipt, clip};

/// How long one SMTP conversation may take.
const TIMEOUT: Duration = Duration::from_secs(15);

pub struct SmtpProvider {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// How the conversation is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protection {
    Plain,
    /// STARTTLS, refusing to go on without it.
    StartTls,
    /// STARTTLS when the server offers it.
    Opportunistic,
    /// TLS from the first byte (`smtps://`, port 465).
    Wrapped,
}

impl SmtpProvider {
    /// Plain SMTP to `host:port` (a local relay or sink). `from` is a mailbox,
    /// e.g. `Ordo Shop <shop@example.com>`.
    pub fn new(host: &str, port: u16, from: &str) -> Result<SmtpProvider, ProviderError> {
        SmtpProvider::connect(&format!("{host}:{port}"), from, None)
    }

    /// `server` is one of
    /// - `smtps://[user:password@]host[:port]`: TLS from the first byte (port 465);
    /// - `smtp://[user:password@]host[:port]?tls=required`: STARTTLS, or no mail (port 587);
    ///   `tls=opportunistic` uses STARTTLS when offered;
    /// - `smtp://host[:port]` or `host:port`: plain SMTP (port 25), without a login.
    ///
    /// `trusted_pem` adds CA certificates (PEM) to the public roots, for a relay
    /// with a private CA. User and password are percent-decoded.
    pub fn connect(server: &str, from: &str, trusted_pem: Option<&[u8]>) -> Result<SmtpProvider, ProviderError> {
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| ProviderError::Rejected(format!("sender address `{from}`: {e}")))?;
        Ok(SmtpProvider {
            transport: transport(server, trusted_pem)?,
            from,
        })
    }
}

/// The transport `server` names (see [`SmtpProvider::connect`]). Errors never
/// repeat the address, which may hold a password.
fn transport(server: &str, trusted_pem: Option<&[u8]>) -> Result<AsyncSmtpTransport<Tokio1Executor>, ProviderError> {
    let bad = |why: &str| ProviderError::Rejected(format!("SMTP server: {why}"));
    let url = if server.contains("://") {
        url::Url::parse(server)
    } else {
        url::Url::parse(&format!("smtp://{server}"))
    }
    .map_err(|e| bad(&e.to_string()))?;
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host"))?;
    let tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    let (protection, default_port) = match (url.scheme(), tls.as_deref()) {
        ("smtps", None) => (Protection::Wrapped, 465),
        ("smtp", None | Some("none")) => (Protection::Plain, 25),
        ("smtp", Some("required")) => (Protection::StartTls, 587),
        ("smtp", Some("opportunistic")) => (Protection::Opportunistic, 587),
        _ => return Err(bad("expected smtps://… or smtp://…[?tls=required|opportunistic|none]")),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(url.port().unwrap_or(default_port))
        .timeout(Some(TIMEOUT));
    if protection != Protection::Plain {
        let mut params = TlsParameters::builder(host.to_string());
        for cert in trusted_pem
            .map(crate::tls::certificates)
            .transpose()?
            .unwrap_or_default()
        {
            let ca = Certificate::from_der(cert.to_vec()).map_err(|e| bad(&describe(&e)))?;
            params = params.add_root_certificate(ca);
        }
        let params = params.build_rustls().map_err(|e| bad(&describe(&e)))?;
        builder = builder.tls(match protection {
            Protection::StartTls => Tls::Required(params),
            Protection::Opportunistic => Tls::Opportunistic(params),
            _ => Tls::Wrapper(params),
        });
    }
    if !url.username().is_empty() {
        // A password never crosses the network in the clear (opportunistic may stay plain).
        if matches!(protection, Protection::Plain | Protection::Opportunistic) {
            return Err(bad("a login needs TLS: use smtps:// or ?tls=required"));
        }
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        builder = builder.credentials(Credentials::new(
            decode(url.username()),
            decode(url.password().unwrap_or_default()),
        ));
    }
    Ok(builder.build())
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
pub(crate) fn describe(err: &dyn std::error::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_read_as_an_operator_writes_them() {
        let from = "shop@example.com";
        for ok in [
            "127.0.0.1:2525",
            "smtp://relay.internal",
            "smtp://relay.internal:2525?tls=none",
            "smtps://shop%40example.com:p%40ss@smtp.example.com",
            "smtp://user:secret@smtp.example.com:587?tls=required",
            "smtp://smtp.example.com?tls=opportunistic",
        ] {
            assert!(SmtpProvider::connect(ok, from, None).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("smtp://user:secret@relay.internal", "a login needs TLS"),
            ("smtp://u:p@smtp.example.com?tls=opportunistic", "a login needs TLS"),
            ("http://smtp.example.com", "expected smtps://"),
            ("smtp://smtp.example.com?tls=maybe", "expected smtps://"),
        ] {
            let Err(ProviderError::Rejected(e)) = SmtpProvider::connect(bad, from, None) else {
                panic!("{bad} was accepted");
            };
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("secret"), "the error repeats the password: {e}");
        }
        let Err(ProviderError::Rejected(e)) = SmtpProvider::connect("smtps://h", from, Some(b"not a pem")) else {
            panic!("a CA file without certificates was accepted");
        };
        assert!(e.contains("no PEM certificate"), "{e}");
    }
}
