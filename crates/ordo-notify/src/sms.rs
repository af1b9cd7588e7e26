//! Text messages through an HTTP SMS gateway: `POST {url}` with
//! `Authorization: Bearer {api_key}` and the JSON body
//! `{"to": "...", "text": "...", "sender": "..."}`; any 2xx is a delivery.
//! `https://` (rustls, the public web roots plus any CA the operator adds) or
//! plain `http://` for a gateway on the same host or network.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use ordo_core::notify::Message;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::provider::{Provider, ProviderError, ProviderReceipt, clip};

/// How long one request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(15);

pub struct HttpSmsProvider {
    url: Uri,
    api_key: String,
    sender: String,
    /// `Some` for an `https://` gateway.
    tls: Option<tokio_rustls::TlsConnector>,
}

impl HttpSmsProvider {
    pub fn new(url: &str, api_key: &str, sender: &str) -> Result<HttpSmsProvider, ProviderError> {
        HttpSmsProvider::with_trusted_ca(url, api_key, sender, None)
    }

    /// Like [`HttpSmsProvider::new`], trusting the CA certificates in
    /// `trusted_pem` (PEM) besides the public roots for an `https://` gateway.
    pub fn with_trusted_ca(
        url: &str,
        api_key: &str,
        sender: &str,
        trusted_pem: Option<&[u8]>,
    ) -> Result<HttpSmsProvider, ProviderError> {
        let url: Uri = url
            .parse()
            .map_err(|e| ProviderError::Rejected(format!("SMS gateway URL `{url}`: {e}")))?;
        let tls = match (url.scheme_str(), url.host()) {
            (Some("https"), Some(_)) => Some(crate::tls::connector(trusted_pem)?),
            (Some("http"), Some(_)) => None,
            _ => return Err(bad_url(&url)),
        };
        Ok(HttpSmsProvider {
            url,
            api_key: api_key.to_string(),
            sender: sender.to_string(),
            tls,
        })
    }

    async fn post(&self, body: String) -> Result<(StatusCode, Bytes), ProviderError> {
        let host = self.url.host().unwrap_or_default();
        let port = self.url.port_u16().unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| unavailable("connect", &e))?;
        let authority = self.url.authority().map(|a| a.as_str()).unwrap_or(host);
        let path = self.url.path_and_query().map_or("/", |p| p.as_str());
        let request = Request::post(path)
            .header(HOST, authority)
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, format!("Bearer {}", self.api_key))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ProviderError::Rejected(format!("request: {e}")))?;
        match &self.tls {
            None => exchange(stream, request).await,
            Some(tls) => {
                let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())
                    .map_err(|e| ProviderError::Rejected(format!("SMS gateway host: {e}")))?;
                let stream = tls.connect(name, stream).await.map_err(|e| unavailable("TLS", &e))?;
                exchange(stream, request).await
            }
        }
    }
}

fn bad_url(url: &Uri) -> ProviderError {
    ProviderError::Rejected(format!(
        "SMS gateway URL `{url}`: expected https://host[:port]/path or http://…"
    ))
}

fn unavailable(what: &str, e: &dyn std::fmt::Display) -> ProviderError {
    ProviderError::Unavailable(format!("{what}: {e}"))
}

/// One HTTP/1.1 request on a fresh connection, plain or TLS.
async fn exchange<S>(stream: S, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), ProviderError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unavailable("handshake", &e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unavailable("request", &e))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| unavailable("response", &e))?
        .to_bytes();
    Ok((status, bytes))
}

#[async_trait]
impl Provider for HttpSmsProvider {
    fn name(&self) -> &'static str {
        "http-sms"
    }

    async fn send(&self, to: &str, message: &Message) -> Result<ProviderReceipt, ProviderError> {
        let body = serde_json::json!({ "to": to, "text": message.body, "sender": self.sender }).to_string();
        let (status, response) = tokio::time::timeout(TIMEOUT, self.post(body))
            .await
            .map_err(|_| ProviderError::Unavailable(format!("no answer within {}s", TIMEOUT.as_secs())))??;
        let detail = clip(
            &format!("HTTP {}: {}", status.as_u16(), String::from_utf8_lossy(&response)),
            500,
        );
        if status.is_success() {
            Ok(ProviderReceipt { detail })
        } else if status.is_client_error()
            && status != StatusCode::REQUEST_TIMEOUT
            && status != StatusCode::TOO_MANY_REQUESTS
        {
            Err(ProviderError::Rejected(detail))
        } else {
            Err(ProviderError::Unavailable(detail))
        }
    }
}
