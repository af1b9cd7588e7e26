//! Providers over TLS, against local servers with certificates made by the test:
//! SMTP with STARTTLS and with TLS from the first byte, logging in; an SMS gateway
//! over https. A certificate the operator did not trust is refused, and so is a
//! server that will not encrypt when TLS is required.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ordo_core::notify::Message;
use ordo_notify::{HttpSmsProvider, Provider, ProviderError, SmtpProvider};
use tokio::net::TcpListener;

mod sink;

use sink::{Mail, SinkTls, SmtpSink};

const FROM: &str = "Ordo Shop <shop@example.com>";
const TO: &str = "meimei@example.com";
/// The shop's login at its mail provider: both need percent-encoding in the URL.
const USER: &str = "shop@example.com";
const PASSWORD: &str = "p@ss:word";
const LOGIN: &str = "shop%40example.com:p%40ss%3Aword";

fn message() -> Message {
    Message {
        subject: "订单已发货".into(),
        body: "您的订单已由顺丰发出。".into(),
    }
}

/// Sends one message through a sink protected by `tls`, trusting its certificate;
/// `url` names the sink from its port. Returns what the sink received.
async fn send_through(tls: SinkTls, url: impl Fn(u16) -> String) -> Vec<Mail> {
    let sink = SmtpSink::start_with(tls, Some((USER, PASSWORD))).await;
    let smtp = SmtpProvider::connect(&url(sink.port), FROM, Some(sink.ca_pem.as_bytes())).unwrap();
    smtp.send(TO, &message()).await.expect("sent");
    sink.mails()
}

#[tokio::test]
async fn mail_goes_out_after_starttls_with_a_login() {
    let mails = send_through(SinkTls::StartTls, |port| {
        format!("smtp://{LOGIN}@localhost:{port}?tls=required")
    })
    .await;
    assert_eq!(mails.len(), 1);
    assert_eq!((mails[0].encrypted, mails[0].user.as_deref()), (true, Some(USER)));
    assert_eq!(mails[0].rcpt, [TO]);
    assert_eq!(mails[0].subject(), "订单已发货");
    assert_eq!(mails[0].body(), "您的订单已由顺丰发出。");
}

#[tokio::test]
async fn mail_goes_out_over_tls_from_the_first_byte() {
    let mails = send_through(SinkTls::Wrapped, |port| format!("smtps://{LOGIN}@127.0.0.1:{port}")).await;
    assert_eq!(mails.len(), 1);
    assert_eq!((mails[0].encrypted, mails[0].user.as_deref()), (true, Some(USER)));
}

#[tokio::test]
async fn nothing_is_sent_to_an_untrusted_certificate_a_plain_server_or_with_a_wrong_password() {
    let sink = SmtpSink::start_with(SinkTls::Wrapped, Some((USER, PASSWORD))).await;
    let untrusted = SmtpProvider::connect(&format!("smtps://{LOGIN}@localhost:{}", sink.port), FROM, None).unwrap();
    let err = untrusted.send(TO, &message()).await.unwrap_err();
    assert!(format!("{err:?}").to_lowercase().contains("certificate"), "{err:?}");

    let wrong = format!("smtps://shop%40example.com:guess@localhost:{}", sink.port);
    let wrong = SmtpProvider::connect(&wrong, FROM, Some(sink.ca_pem.as_bytes())).unwrap();
    let err = wrong.send(TO, &message()).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected(_)),
        "a refused login is not retried: {err:?}"
    );

    // STARTTLS required, but the server does not offer it: the password stays home.
    let plain = SmtpSink::start_with(SinkTls::Plain, Some((USER, PASSWORD))).await;
    let url = format!("smtp://{LOGIN}@localhost:{}?tls=required", plain.port);
    let required = SmtpProvider::connect(&url, FROM, Some(sink.ca_pem.as_bytes())).unwrap();
    assert!(required.send(TO, &message()).await.is_err());
    assert!(sink.mails().is_empty() && plain.mails().is_empty());
}

/// An https SMS gateway: keeps each request's body and answers 200.
async fn https_gateway() -> (u16, String, Arc<Mutex<Vec<String>>>) {
    let (acceptor, ca_pem) = sink::tls_acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, kept) = (acceptor.clone(), kept.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let kept = kept.clone();
                    async move {
                        let auth = req.headers().get("authorization").cloned();
                        let body = req.into_body().collect().await?.to_bytes();
                        let status = if auth.as_ref().is_some_and(|a| a == "Bearer key-123") {
                            kept.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
                            200
                        } else {
                            401
                        };
                        let mut response = Response::new(Full::new(Bytes::from_static(b"{\"id\":\"sms-1\"}")));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, hyper::Error>(response)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    (port, ca_pem, bodies)
}

#[tokio::test]
async fn text_messages_go_to_an_https_gateway_it_trusts() {
    let (port, ca, bodies) = https_gateway().await;
    let url = format!("https://localhost:{port}/v1/sms");
    let sms = HttpSmsProvider::with_trusted_ca(&url, "key-123", "OrdoShop", Some(ca.as_bytes())).unwrap();
    let receipt = sms.send("13800000000", &message()).await.expect("sent");
    assert!(receipt.detail.starts_with("HTTP 200"), "{receipt:?}");
    let sent: Vec<serde_json::Value> = bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["to"], "13800000000");
    assert_eq!(sent[0]["text"], "您的订单已由顺丰发出。");

    let untrusted = HttpSmsProvider::new(&url, "key-123", "OrdoShop").unwrap();
    let err = untrusted.send("13800000000", &message()).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Unavailable(ref e) if e.starts_with("TLS")),
        "{err:?}"
    );
    assert_eq!(bodies.lock().unwrap().len(), 1, "nothing reached the gateway untrusted");
}
