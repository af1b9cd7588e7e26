//! Request plumbing: the authenticated caller, JSON bodies that reject unknown
//! fields with a problem, and Idempotency-Key claims.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use ordo_core::ShopId;
use ordo_core::auth::Principal;
use ordo_core::batch::IdempotencyClaim;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::problem::ApiError;

/// The authenticated caller and the shop it acts on (a key's own shop; for the
/// platform admin, the shop named by the `X-Ordo-Shop` header, if any).
pub struct Caller {
    pub who: Principal,
    pub shop: Option<ShopId>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::from(ordo_engine::EngineError::Unauthenticated))?;
        let who = state.engine.authenticate(token.trim()).await?;
        state.engine.check_rate(&who)?;
        let shop = match parts.headers.get("x-ordo-shop").and_then(|v| v.to_str().ok()) {
            Some(s) => Some(
                s.parse::<ShopId>()
                    .map_err(|e| ApiError::bad_request("invalid-shop", e.to_string()))?,
            ),
            None => None,
        };
        Ok(Caller { who, shop })
    }
}

/// Parses a JSON body; unknown fields, wrong types and out-of-range values are
/// rejected with a problem naming the field.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
            e.to_string(),
        )
    })
}

/// The Idempotency-Key claim of a request, scoped to the caller so two callers
/// never share a key space.
pub fn idempotency(
    headers: &HeaderMap,
    who: &Principal,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Result<Option<IdempotencyClaim>, ApiError> {
    let Some(key) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = key
        .to_str()
        .map_err(|_| ApiError::bad_request("invalid-idempotency-key", "Idempotency-Key must be visible ASCII"))?;
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::bad_request(
            "invalid-idempotency-key",
            "Idempotency-Key must have 1 to 255 characters",
        ));
    }
    let scope = match who {
        Principal::PlatformAdmin => "admin".to_string(),
        Principal::ShopKey { key, .. } => key.to_string(),
    };
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    Ok(Some(IdempotencyClaim {
        scope,
        key: key.to_string(),
        request_hash: hex::encode(h.finalize()),
    }))
}

/// A POST (or PUT) as every write handler needs it: the caller, its
/// Idempotency-Key claim (hashed over method, path and body) and the raw body.
pub struct Post {
    pub caller: Caller,
    pub claim: Option<IdempotencyClaim>,
    pub body: Bytes,
}

impl FromRequest<AppState> for Post {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let caller = Caller::from_request_parts(&mut parts, state).await?;
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| ApiError::new(e.status(), "invalid-body", e.body_text()))?;
        let claim = idempotency(&parts.headers, &caller.who, &parts.method, parts.uri.path(), &body)?;
        Ok(Post { caller, claim, body })
    }
}

/// Query parameters; unknown or malformed ones are a 400 problem naming them.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request("invalid-query", e.body_text()))
    }
}
