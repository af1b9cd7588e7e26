//! Starting the notification worker (K1) from the `serve` options.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ordo_core::{OrderId, ShopId};
use ordo_engine::{Clock, Engine};
use ordo_notify::{FileProvider, HttpSmsProvider, Notifier, Providers, SmtpProvider};

use crate::anyhow_like::Result;

/// Where the demo writes its notifications when no provider is named.
pub const DEMO_FILE: &str = "ordo-notifications.jsonl";

/// The `--notify-*` options of `ordo serve`.
#[derive(Debug, Clone, Default)]
pub struct NotifyOptions {
    /// The SMTP server: `smtps://user:password@host`, `smtp://…?tls=required`, or
    /// `HOST:PORT` for plain SMTP to a local relay.
    pub smtp: Option<String>,
    /// The From mailbox of e-mails, e.g. `Shop <shop@example.com>`.
    pub smtp_from: Option<String>,
    /// `https://…` (or `http://…`) endpoint of the SMS gateway.
    pub sms_url: Option<String>,
    /// Bearer key of the SMS gateway (`ORDO_NOTIFY_SMS_KEY`).
    pub sms_key: Option<String>,
    /// Sender name shown on text messages.
    pub sms_sender: String,
    /// Append every message to this file as a JSON line (both channels, unless
    /// SMTP or the SMS gateway is given for one).
    pub file: Option<PathBuf>,
    /// A PEM file of CA certificates trusted besides the public roots, for an
    /// SMTP server or SMS gateway with a private CA.
    pub trusted_ca: Option<PathBuf>,
}

impl NotifyOptions {
    /// The provider of each channel: SMTP / the SMS gateway when given, else the
    /// file, else (the demo only) `./ordo-notifications.jsonl`. A channel left without
    /// a provider records its notifications as failed, "no provider configured".
    pub fn providers(&self, demo: bool) -> Result<Providers> {
        let file = self
            .file
            .clone()
            .or_else(|| demo.then(|| PathBuf::from(DEMO_FILE)))
            .map(|path| Arc::new(FileProvider::new(path)) as Arc<dyn ordo_notify::Provider>);
        let trusted = match &self.trusted_ca {
            Some(path) => Some(std::fs::read(path).map_err(|e| format!("--notify-ca {}: {e}", path.display()))?),
            None => None,
        };
        let email = match &self.smtp {
            Some(server) => {
                let from = self
                    .smtp_from
                    .as_deref()
                    .ok_or("--notify-smtp needs --notify-smtp-from ADDRESS")?;
                let smtp = SmtpProvider::connect(server, from, trusted.as_deref())?;
                Some(Arc::new(smtp) as Arc<dyn ordo_notify::Provider>)
            }
            None => file.clone(),
        };
        let sms = match &self.sms_url {
            Some(url) => {
                let key = self
                    .sms_key
                    .as_deref()
                    .filter(|k| !k.is_empty())
                    .ok_or("--notify-sms-url needs the gateway key in ORDO_NOTIFY_SMS_KEY")?;
                let sms = HttpSmsProvider::with_trusted_ca(url, key, &self.sms_sender, trusted.as_deref())?;
                Some(Arc::new(sms) as Arc<dyn ordo_notify::Provider>)
            }
            None => file,
        };
        Ok(Providers { email, sms })
    }
}

/// Starts the worker on the engine's store: a round every second.
pub fn spawn(engine: &Engine, clock: Arc<dyn Clock>, providers: Providers) -> tokio::task::JoinHandle<()> {
    let configured = |p: &Option<Arc<dyn ordo_notify::Provider>>| p.as_ref().map_or("none", |p| p.name());
    tracing::info!(
        email = configured(&providers.email),
        sms = configured(&providers.sms),
        "notifications"
    );
    Notifier::new(engine.store().clone(), clock, providers)
        .with_code_source(Arc::new(EngineCodes(engine.clone())))
        .spawn(Duration::from_secs(1))
}

/// Opens delivered codes for the buyer's message through the engine (which holds the key).
struct EngineCodes(Engine);

#[async_trait::async_trait]
impl ordo_notify::CodeSource for EngineCodes {
    async fn delivered_codes(&self, shop: ShopId, order: OrderId) -> std::result::Result<Vec<String>, String> {
        let codes = self.0.delivered_codes(shop, order).await.map_err(|e| e.to_string())?;
        Ok(codes.into_iter().map(|c| format!("{}: {}", c.sku, c.code)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_follow_the_flags() {
        let none = NotifyOptions::default().providers(false).unwrap();
        assert!(none.email.is_none() && none.sms.is_none());
        let demo = NotifyOptions::default().providers(true).unwrap();
        assert_eq!(demo.email.unwrap().name(), "file");
        assert_eq!(demo.sms.unwrap().name(), "file");

        let opts = NotifyOptions {
            smtp: Some("127.0.0.1:2525".into()),
            smtp_from: Some("shop@example.com".into()),
            sms_url: Some("http://127.0.0.1:9/sms".into()),
            sms_key: Some("k".into()),
            sms_sender: "Ordo".into(),
            file: None,
            trusted_ca: None,
        };
        let p = opts.providers(true).unwrap();
        assert_eq!((p.email.unwrap().name(), p.sms.unwrap().name()), ("smtp", "http-sms"));

        let no_from = NotifyOptions {
            smtp_from: None,
            ..opts.clone()
        };
        assert!(no_from.providers(false).is_err());
        let no_key = NotifyOptions {
            sms_key: None,
            ..opts.clone()
        };
        assert!(no_key.providers(false).is_err());
        let https = NotifyOptions {
            smtp: Some("smtps://shop%40example.com:secret@smtp.example.com".into()),
            sms_url: Some("https://sms.example.com/send".into()),
            ..opts.clone()
        };
        assert!(https.providers(false).is_ok());
        let login_in_clear = NotifyOptions {
            smtp: Some("smtp://shop:secret@relay.internal".into()),
            ..opts.clone()
        };
        assert!(login_in_clear.providers(false).is_err());
        let missing_ca = NotifyOptions {
            trusted_ca: Some("no-such-ca.pem".into()),
            ..opts
        };
        assert!(missing_ca.providers(false).is_err());
    }
}
