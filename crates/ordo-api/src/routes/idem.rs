//! Idempotency-Key handling for POSTs outside the order path (orders and refunds
//! record their key inside the command's own transaction instead).

use ordo_core::batch::{IdempotencyClaim, IdempotencyRecord};
use ordo_engine::Engine;
use ordo_engine::orders::InFlight;

use crate::problem::ApiResult;

pub struct Idem {
    claim: Option<IdempotencyClaim>,
    _guard: Option<InFlight>,
}

/// Claims the key (409 while another request holds it) and returns the earlier
/// result if this request was seen before (422 if the body differed).
pub async fn begin(engine: &Engine, claim: Option<IdempotencyClaim>) -> ApiResult<(Idem, Option<IdempotencyRecord>)> {
    let Some(c) = claim else {
        return Ok((
            Idem {
                claim: None,
                _guard: None,
            },
            None,
        ));
    };
    let guard = engine.claim_in_flight(&c.scope, &c.key)?;
    let replay = engine.idempotent_replay(&c).await?;
    Ok((
        Idem {
            claim: Some(c),
            _guard: Some(guard),
        },
        replay,
    ))
}

/// Claims the key for a request whose command records it durably itself.
pub fn hold(engine: &Engine, claim: &Option<IdempotencyClaim>) -> ApiResult<Option<InFlight>> {
    Ok(match claim {
        Some(c) => Some(engine.claim_in_flight(&c.scope, &c.key)?),
        None => None,
    })
}

impl Idem {
    pub async fn finish(self, engine: &Engine, status: u16, resource: String) -> ApiResult<()> {
        if let Some(c) = &self.claim {
            engine.remember(c, status, resource).await?;
        }
        Ok(())
    }
}
