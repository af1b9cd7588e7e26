//! A local SMTP sink: just enough SMTP to take messages and keep them, in the
//! clear, after STARTTLS, or over TLS from the first byte, with an optional
//! AUTH PLAIN / LOGIN check. Its certificate is made fresh by each test.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

#[derive(Debug, Clone)]
pub struct Mail {
    pub rcpt: Vec<String>,
    pub data: String,
    /// Who logged in to send it.
    pub user: Option<String>,
    /// Whether it arrived over TLS.
    pub encrypted: bool,
}

impl Mail {
    pub fn header(&self, name: &str) -> String {
        // Headers end at the first blank line; continuation lines start with space.
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut value = None::<String>;
        for line in head.split("\r\n") {
            match &mut value {
                Some(v) if line.starts_with([' ', '\t']) => v.push_str(line),
                Some(_) => break,
                None => {
                    if let Some(rest) = line.strip_prefix(&format!("{name}: ")) {
                        value = Some(rest.to_string());
                    }
                }
            }
        }
        value.unwrap_or_default()
    }

    /// The subject with RFC 2047 encoded words (`=?utf-8?b?…?=`) decoded.
    pub fn subject(&self) -> String {
        let raw = self.header("Subject");
        // Whitespace between two encoded words is dropped; any other is kept.
        let mut bytes = Vec::new();
        let mut previous_encoded = None;
        for word in raw.split_whitespace() {
            let encoded = word.to_ascii_lowercase().starts_with("=?utf-8?b?") && word.ends_with("?=");
            if previous_encoded.is_some() && !(encoded && previous_encoded == Some(true)) {
                bytes.push(b' ');
            }
            if encoded {
                bytes.extend(b64(&word[10..word.len() - 2]));
            } else {
                bytes.extend(word.as_bytes());
            }
            previous_encoded = Some(encoded);
        }
        String::from_utf8(bytes).expect("UTF-8 subject")
    }

    pub fn body(&self) -> String {
        assert_eq!(self.header("Content-Transfer-Encoding"), "base64");
        let body = self.data.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        String::from_utf8(b64(&body.replace("\r\n", ""))).expect("UTF-8 body")
    }
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).expect("base64")
}

/// How the sink protects its conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    Plain,
    /// Offers STARTTLS (and takes mail without it too).
    StartTls,
    /// TLS from the first byte, as on port 465.
    Wrapped,
}

#[derive(Clone)]
struct Config {
    tls: SinkTls,
    acceptor: Option<TlsAcceptor>,
    /// (user, password) the sink demands before MAIL.
    login: Option<(String, String)>,
}

pub struct SmtpSink {
    pub port: u16,
    /// The sink's self-signed certificate (PEM), for the client to trust.
    pub ca_pem: String,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    /// A plain sink without login.
    pub async fn start() -> SmtpSink {
        SmtpSink::start_with(SinkTls::Plain, None).await
    }

    /// A sink for `localhost` / 127.0.0.1 with a fresh certificate.
    pub async fn start_with(tls: SinkTls, login: Option<(&str, &str)>) -> SmtpSink {
        let (acceptor, ca_pem) = tls_acceptor();
        let config = Config {
            tls,
            acceptor: (tls != SinkTls::Plain).then_some(acceptor),
            login: login.map(|(u, p)| (u.to_string(), p.to_string())),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, config.clone(), kept.clone()));
            }
        });
        SmtpSink { port, ca_pem, mails }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

/// A TLS server side for `localhost` / 127.0.0.1 with a fresh self-signed
/// certificate, and that certificate (PEM) for the client to trust.
pub fn tls_acceptor() -> (TlsAcceptor, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server TLS config");
    (TlsAcceptor::from(Arc::new(server)), cert.cert.pem())
}

async fn serve(stream: TcpStream, config: Config, mails: Arc<Mutex<Vec<Mail>>>) {
    let acceptor = config.acceptor.clone();
    match (config.tls, acceptor) {
        (SinkTls::Wrapped, Some(acceptor)) => {
            if let Ok(tls) = acceptor.accept(stream).await {
                converse(tls, &config, &mails, true, true).await;
            }
        }
        (_, acceptor) => {
            let upgrade = converse(stream, &config, &mails, false, true).await;
            if let (Some(plain), Some(acceptor)) = (upgrade, acceptor)
                && let Ok(tls) = acceptor.accept(plain).await
            {
                // After STARTTLS the client greets again, without a banner.
                converse(tls, &config, &mails, true, false).await;
            }
        }
    }
}

/// One SMTP conversation; gives the stream back when the client asked for STARTTLS.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    config: &Config,
    mails: &Mutex<Vec<Mail>>,
    encrypted: bool,
    banner: bool,
) -> Option<S> {
    let mut conn = BufReader::new(stream);
    if banner {
        reply(&mut conn, "220 sink ESMTP").await;
    }
    let mut rcpt = Vec::new();
    let mut user = None::<String>;
    loop {
        let line = read_line(&mut conn).await?;
        let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                let mut text = String::from("250-sink\r\n");
                if config.tls == SinkTls::StartTls && !encrypted {
                    text.push_str("250-STARTTLS\r\n");
                }
                text.push_str("250 AUTH PLAIN LOGIN");
                reply(&mut conn, &text).await
            }
            "HELO" => reply(&mut conn, "250 sink").await,
            "STARTTLS" if config.tls == SinkTls::StartTls && !encrypted => {
                reply(&mut conn, "220 go ahead").await;
                return Some(conn.into_inner());
            }
            "AUTH" => {
                let words: Vec<&str> = line.split_whitespace().collect();
                let given = match words.get(1).map(|m| m.to_ascii_uppercase()).as_deref() {
                    Some("PLAIN") => {
                        let b = match words.get(2) {
                            Some(b) => b.to_string(),
                            None => {
                                reply(&mut conn, "334 ").await;
                                read_line(&mut conn).await.unwrap_or_default()
                            }
                        };
                        let fields: Vec<String> = String::from_utf8(b64(&b))
                            .unwrap_or_default()
                            .split('\0')
                            .map(String::from)
                            .collect();
                        (fields.len() == 3).then(|| (fields[1].clone(), fields[2].clone()))
                    }
                    Some("LOGIN") => {
                        reply(&mut conn, "334 VXNlcm5hbWU6").await;
                        let u = String::from_utf8(b64(&read_line(&mut conn).await?)).unwrap_or_default();
                        reply(&mut conn, "334 UGFzc3dvcmQ6").await;
                        let p = String::from_utf8(b64(&read_line(&mut conn).await?)).unwrap_or_default();
                        Some((u, p))
                    }
                    _ => None,
                };
                match (given, &config.login) {
                    (Some(g), Some(expected)) if &g == expected => {
                        user = Some(g.0);
                        reply(&mut conn, "235 2.7.0 authenticated").await
                    }
                    _ => reply(&mut conn, "535 5.7.8 bad credentials").await,
                }
            }
            "MAIL" if config.login.is_some() && user.is_none() => {
                reply(&mut conn, "530 5.7.0 authentication required").await
            }
            "MAIL" => {
                rcpt.clear();
                reply(&mut conn, "250 OK").await
            }
            "RCPT" => {
                let addr = line.split_once(':').map(|(_, a)| a.trim()).unwrap_or_default();
                rcpt.push(addr.trim_matches(['<', '>']).to_string());
                reply(&mut conn, "250 OK").await
            }
            "DATA" => {
                reply(&mut conn, "354 go ahead").await;
                let mut data = Vec::new();
                loop {
                    let l = read_line(&mut conn).await?;
                    if l == "." {
                        break;
                    }
                    data.push(l.strip_prefix('.').map(String::from).unwrap_or(l));
                }
                // Kept before the 250, so a sent message is always here once the
                // provider returns.
                mails.lock().unwrap().push(Mail {
                    rcpt: std::mem::take(&mut rcpt),
                    data: data.join("\r\n"),
                    user: user.clone(),
                    encrypted,
                });
                reply(&mut conn, "250 queued as 1").await
            }
            "RSET" | "NOOP" => reply(&mut conn, "250 OK").await,
            "QUIT" => {
                reply(&mut conn, "221 bye").await;
                return None;
            }
            _ => reply(&mut conn, "502 not implemented").await,
        }
    }
}

/// The next line without its end; `None` once the client has gone.
async fn read_line<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut BufReader<S>) -> Option<String> {
    let mut line = String::new();
    match conn.read_line(&mut line).await {
        Ok(n) if n > 0 => Some(line.trim_end_matches(['\r', '\n']).to_string()),
        _ => None,
    }
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut BufReader<S>, text: &str) {
    let _ = conn.get_mut().write_all(format!("{text}\r\n").as_bytes()).await;
    let _ = conn.get_mut().flush().await;
}
