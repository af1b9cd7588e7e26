use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use crate::AppState;
use crate::dto::{EventPage, EventView};
use crate::extract::{Caller, Query};
use crate::problem::ApiResult;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Return events with an id greater than this.
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventParams), responses((status = 200, body = EventPage)))]
pub async fn list(State(s): State<AppState>, c: Caller, Query(q): Query<EventParams>) -> ApiResult<Json<EventPage>> {
    let after = q.after.unwrap_or(0);
    let events = s
        .engine
        .events_after(&c.who, c.shop, after, q.limit.unwrap_or(100))
        .await?;
    let next_after = events.last().map_or(after, |e| e.seq);
    Ok(Json(EventPage {
        items: events.iter().map(EventView::from).collect(),
        next_after,
    }))
}

/// Live stream of the caller's events as Server-Sent Events (`id` = event id, so a
/// reconnecting client resumes with `Last-Event-ID`).
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events", params(EventParams), responses((status = 200, description = "text/event-stream of events")))]
pub async fn stream(
    State(s): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    Query(q): Query<EventParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let after = resume.or(q.after).unwrap_or(0);
    // Fail early (401/403) rather than inside the stream.
    s.engine.events_after(&c.who, c.shop, after, 1).await?;
    let engine = s.engine.clone();
    let (who, shop) = (c.who, c.shop);
    let stream = stream::unfold((after, Vec::<SseEvent>::new()), move |(mut after, mut buffered)| {
        let engine = engine.clone();
        async move {
            loop {
                if let Some(next) = buffered.pop() {
                    return Some((Ok(next), (after, buffered)));
                }
                match engine.events_after(&who, shop, after, 500).await {
                    Ok(events) if !events.is_empty() => {
                        after = events.last().map_or(after, |e| e.seq);
                        buffered = events
                            .iter()
                            .rev()
                            .map(|e| {
                                let view = EventView::from(e);
                                SseEvent::default()
                                    .id(e.seq.to_string())
                                    .event(e.kind.clone())
                                    .json_data(view)
                                    .unwrap_or_default()
                            })
                            .collect();
                    }
                    Ok(_) => engine.wait_for_events(Duration::from_millis(500)).await,
                    Err(_) => return None,
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
