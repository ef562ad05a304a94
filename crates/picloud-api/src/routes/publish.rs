//! `POST /api/v1/apps/{app}/topics/{topic}/publish`: the admin side of the publish path.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::DateTime;
use picloud_core::capability::Capability;
use picloud_core::topic::TopicName;

use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire::{PublishQuery, PublishedBody};

#[utoipa::path(post, path = "/api/v1/apps/{app}/topics/{topic}/publish", tag = "topics",
    params(("app" = String, Path, description = "App slug or id"), ("topic" = String, Path, description = "Topic name"), PublishQuery),
    request_body(content = serde_json::Value, description = "The message: any JSON value"),
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "Stored with its seq, then broadcast", body = PublishedBody),
        (status = 202, description = "Ephemeral: broadcast to live subscribers only", body = PublishedBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, description = "Payload over the limit", body = ErrorBody),
        (status = 422, description = "Invalid topic name", body = ErrorBody)))]
pub async fn publish(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, topic)): Path<(String, String)>,
    Query(q): Query<PublishQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, ApiJson<PublishedBody>)> {
    let app = auth.app_with(&app, Capability::AppPublish).await?;
    let topic = TopicName::parse(&topic)?;
    let rt = &state.realtime;
    if body.len() > rt.config.max_payload_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "a message may be at most {} bytes",
                rt.config.max_payload_bytes
            ),
        ));
    }
    // Parsed once here and stored compact: no raw newline can reach an SSE `data:` line.
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("the message is not JSON: {e}"))
    })?;
    let payload: Arc<str> = Arc::from(value.to_string());
    let name = topic.to_string();
    if q.ephemeral.unwrap_or(false) {
        let at = rt.publisher.publish_ephemeral(app.id, topic, payload);
        return Ok((
            StatusCode::ACCEPTED,
            ApiJson(PublishedBody {
                topic: name,
                seq: None,
                published_at: ms(at),
            }),
        ));
    }
    let published = rt.publisher.publish(app.id, topic, payload).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(PublishedBody {
            topic: name,
            seq: Some(published.seq),
            published_at: ms(published.published_at),
        }),
    ))
}

fn ms(at: i64) -> chrono::DateTime<chrono::Utc> {
    DateTime::from_timestamp_millis(at).unwrap_or_default()
}
