//! Per-key rate limiting (M4): a token bucket per API key, refilled by the
//! injected clock. The platform admin is not limited.

use std::collections::HashMap;
use std::sync::Mutex;

use ordo_core::auth::Principal;
use ordo_core::{ApiKeyId, Timestamp};

use crate::{Engine, EngineError, EngineResult};

#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Sustained requests per second per key; 0 turns limiting off.
    pub per_sec: u32,
    /// Requests a key may send at once after being idle.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_sec: 2_000,
            burst: 5_000,
        }
    }
}

#[derive(Default)]
pub(crate) struct Buckets(Mutex<HashMap<ApiKeyId, (f64, Timestamp)>>);

impl Engine {
    /// Takes one token from the caller's bucket, or fails with `RateLimited`.
    pub fn check_rate(&self, who: &Principal) -> EngineResult<()> {
        let limit = self.inner.config.rate_limit;
        let Principal::ShopKey { key, .. } = who else {
            return Ok(());
        };
        if limit.per_sec == 0 {
            return Ok(());
        }
        let now = self.now();
        let mut buckets = self.inner.buckets.0.lock().map_err(|_| EngineError::RateLimited)?;
        let (tokens, at) = buckets.entry(*key).or_insert((f64::from(limit.burst), now));
        let elapsed_secs = (now.0 - at.0).max(0) as f64 / 1000.0;
        *tokens = (*tokens + elapsed_secs * f64::from(limit.per_sec)).min(f64::from(limit.burst));
        *at = now;
        if *tokens < 1.0 {
            return Err(EngineError::RateLimited);
        }
        *tokens -= 1.0;
        Ok(())
    }
}
