//! `GET /api/v1/apps/{app}/topics/{topic}/presence`: who is on a presence topic, on every
//! node of a cluster.

use axum::extract::{Path, State};

use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::topics::{existing_topic, READ};
use crate::state::AppState;
use crate::wire::{MemberBody, PresenceList};

#[utoipa::path(get, path = "/api/v1/apps/{app}/topics/{topic}/presence", tag = "topics",
    params(("app" = String, Path, description = "App slug or id"), ("topic" = String, Path, description = "Topic name")),
    security(("admin_key" = [])),
    responses((status = 200, description = "The topic's members, by sub (none when the topic has no presence)", body = PresenceList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, description = "Where members live (Redis) did not answer", body = ErrorBody)))]
pub async fn list_members(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, topic)): Path<(String, String)>,
) -> ApiResult<ApiJson<PresenceList>> {
    let app = auth.app_with_any(&app, READ).await?;
    let topic = existing_topic(&state, &app.id, &topic).await?.name;
    let members = state
        .realtime
        .presence
        .members(&app.id, &topic)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "presence lookup failed");
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "presence is unavailable; retry shortly",
            )
        })?;
    Ok(ApiJson(PresenceList {
        topic: topic.to_string(),
        members: members
            .into_iter()
            .map(|m| MemberBody {
                data: serde_json::from_str(&m.data).unwrap_or_default(),
                sub: m.sub,
                connections: m.connections,
            })
            .collect(),
    }))
}
