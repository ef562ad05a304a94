//! `GET /api/v1/apps/{app}/topics/{topic}/subscribers`: the streams on a topic on this node.

use axum::extract::{Path, State};
use picloud_realtime::streams::StreamKind;

use crate::auth::AdminAuth;
use crate::error::{ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::topics::{existing_topic, READ};
use crate::state::AppState;
use crate::wire::{SubscriberBody, SubscriberList};

/// Most streams listed.
const LISTED: usize = 500;

#[utoipa::path(get, path = "/api/v1/apps/{app}/topics/{topic}/subscribers", tag = "topics",
    params(("app" = String, Path, description = "App slug or id"), ("topic" = String, Path, description = "Topic name")),
    security(("admin_key" = [])),
    responses((status = 200, description = "This node's streams on the topic, newest first (at most 500)", body = SubscriberList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_subscribers(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, topic)): Path<(String, String)>,
) -> ApiResult<ApiJson<SubscriberList>> {
    let app = auth.app_with_any(&app, READ).await?;
    let topic = existing_topic(&state, &app.id, &topic).await?.name;
    let found = state.realtime.streams.on_topic(&app.id, &topic, LISTED);
    let streams: Vec<SubscriberBody> = found
        .newest
        .into_iter()
        .map(|l| SubscriberBody {
            id: l.entry.id.to_string(),
            since: chrono::DateTime::from_timestamp_millis(l.entry.since_ms).unwrap_or_default(),
            position: l.position,
            subject: l.entry.subject.clone(),
            remote_addr: l.entry.peer.remote.map(|a| a.to_string()),
            kind: match l.entry.peer.kind {
                StreamKind::Subscriber => "subscriber",
                StreamKind::AdminTail => "admin_tail",
            },
            topics: l.entry.topics.len(),
        })
        .collect();
    Ok(ApiJson(SubscriberList {
        count: found.count,
        truncated: found.count > streams.len(),
        streams,
    }))
}
