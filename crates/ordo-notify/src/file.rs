//! A provider for the demo and for development: appends one JSON line per message
//! (`{"to", "subject", "body"}`) to a file instead of sending anything.

use std::path::PathBuf;

use async_trait::async_trait;
use ordo_core::notify::Message;
use tokio::io::AsyncWriteExt;

use crate::provider::{Provider, ProviderError, ProviderReceipt};

pub struct FileProvider {
    path: PathBuf,
    /// One writer at a time, so lines never interleave.
    lock: tokio::sync::Mutex<()>,
}

impl FileProvider {
    pub fn new(path: impl Into<PathBuf>) -> FileProvider {
        FileProvider {
            path: path.into(),
            lock: tokio::sync::Mutex::new(()),
        }
    }
}

#[async_trait]
impl Provider for FileProvider {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn send(&self, to: &str, message: &Message) -> Result<ProviderReceipt, ProviderError> {
        let mut line = serde_json::json!({ "to": to, "subject": message.subject, "body": message.body }).to_string();
        line.push('\n');
        let _guard = self.lock.lock().await;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("{}: {e}", self.path.display())))?;
        // tokio's File hands writes to a blocking thread; only flush waits until the
        // line is really in the file.
        let written = match file.write_all(line.as_bytes()).await {
            Ok(()) => file.flush().await,
            Err(e) => Err(e),
        };
        written.map_err(|e| ProviderError::Unavailable(format!("{}: {e}", self.path.display())))?;
        Ok(ProviderReceipt {
            detail: format!("appended to {}", self.path.display()),
        })
    }
}
