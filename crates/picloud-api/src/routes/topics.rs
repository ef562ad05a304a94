//! `/api/v1/apps/{app}/topics`: create, list, get, update, delete topics.

use axum::extract::{ConnectInfo, Extension, Path, Query, RawQuery, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::Response;
use picloud_core::app::AppRef;
use picloud_core::capability::Capability;
use picloud_core::ids::AppId;
use picloud_core::message::HistoryCount;
use picloud_core::topic::{AuthMode, NewTopic, Retention, Topic, TopicName, TopicPatch};
use picloud_core::ValidationError;
use std::collections::HashMap;
use std::net::SocketAddr;

use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire::{
    CreateTopic, HistoryMessage, HistoryPage, HistoryQuery, RateLimitBody, RetentionBody,
    TopicBody, TopicList, TopicStats, UpdateTopic,
};

pub(crate) const READ: &[Capability] = &[Capability::AppRead, Capability::AppTopicManage];

fn retention(body: RetentionBody) -> Result<Retention, ValidationError> {
    Retention {
        max_messages: body.max_messages,
        max_age_secs: body.max_age_secs,
    }
    .validate()
}

fn description(d: &str) -> Result<String, ValidationError> {
    if d.chars().count() > 1000 || d.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ValidationError::new(
            "description",
            "at most 1000 characters, no control characters",
        ));
    }
    Ok(d.to_owned())
}

/// A `{topic}` path segment. An invalid name cannot exist, so it is a 404 on reads.
pub(crate) fn topic_segment(s: &str) -> ApiResult<TopicName> {
    TopicName::parse(s).map_err(|_| ApiError::not_found("topic"))
}

/// The topic a `{topic}` path segment names in `app`, or 404.
pub(crate) async fn existing_topic(
    state: &AppState,
    app: &AppId,
    segment: &str,
) -> ApiResult<picloud_core::topic::Topic> {
    let name = topic_segment(segment)?;
    state
        .store
        .get_topic(app, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("topic"))
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/topics", tag = "topics",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses((status = 200, body = TopicList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_topics(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<ApiJson<TopicList>> {
    let app = auth.app_with_any(&app, READ).await?;
    let topics = state.store.list_topics(&app.id).await?;
    let topics = with_stats(&state, &app.id, topics, None).await?;
    Ok(ApiJson(TopicList { topics }))
}

/// The topics' bodies with their activity now ([`TopicStats`]); `one`: `topics` is that
/// one topic, whose history alone is counted.
async fn with_stats(
    state: &AppState,
    app: &AppId,
    topics: Vec<Topic>,
    one: Option<&TopicName>,
) -> ApiResult<Vec<TopicBody>> {
    let since = chrono::Utc::now().timestamp_millis() - 60_000;
    let counts: HashMap<String, HistoryCount> = state
        .store
        .history_counts(app, one, since)
        .await?
        .into_iter()
        .map(|c| (c.topic.clone(), c))
        .collect();
    let hub = &state.realtime.hub;
    Ok(topics
        .into_iter()
        .map(|t| {
            let count = counts.get(t.name.as_str());
            let stats = TopicStats {
                retained_messages: count.map_or(0, |c| c.retained),
                live_subscribers: hub.subscribers(app, &t.name),
                publishes_last_minute: count.map_or(0, |c| c.since),
            };
            TopicBody {
                stats: Some(stats),
                ..t.into()
            }
        })
        .collect())
}

#[utoipa::path(post, path = "/api/v1/apps/{app}/topics", tag = "topics",
    params(("app" = String, Path, description = "App slug or id")),
    request_body = CreateTopic,
    security(("admin_key" = [])),
    responses((status = 201, body = TopicBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The app has a topic of that name", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_topic(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<CreateTopic>,
) -> ApiResult<(StatusCode, ApiJson<TopicBody>)> {
    let app = auth.app_with(&app, Capability::AppTopicManage).await?;
    let new = NewTopic {
        name: TopicName::parse(&body.name)?,
        description: description(body.description.as_deref().unwrap_or_default())?,
        external_subscribable: body.external_subscribable.unwrap_or(false),
        auth_mode: body
            .auth_mode
            .as_deref()
            .map_or(Ok(AuthMode::Token), AuthMode::parse)?,
        retention: body.retention.map_or(Ok(Retention::DEFAULT), retention)?,
        client_publish: body.client_publish.unwrap_or(false),
        presence: body.presence.unwrap_or(false),
        client_event_limit: body
            .client_event_limit
            .map(RateLimitBody::parse)
            .transpose()?,
    };
    let topic = state.store.create_topic(&app.id, new).await?;
    Ok((StatusCode::CREATED, ApiJson(topic.into())))
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/topics/{topic}", tag = "topics",
    params(("app" = String, Path, description = "App slug or id"), ("topic" = String, Path, description = "Topic name")),
    security(("admin_key" = [])),
    responses((status = 200, body = TopicBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_topic(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, topic)): Path<(String, String)>,
) -> ApiResult<ApiJson<TopicBody>> {
    let app = auth.app_with_any(&app, READ).await?;
    let topic = existing_topic(&state, &app.id, &topic).await?;
    let name = topic.name.clone();
    let mut bodies = with_stats(&state, &app.id, vec![topic], Some(&name)).await?;
    Ok(ApiJson(bodies.pop().expect("one topic in, one out")))
}

#[utoipa::path(patch, path = "/api/v1/apps/{app}/topics/{topic}", tag = "topics",
    params(("app" = String, Path, description = "App slug or id"), ("topic" = String, Path, description = "Topic name")),
    request_body = UpdateTopic,
    security(("admin_key" = [])),
    responses((status = 200, body = TopicBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn update_topic(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, topic)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateTopic>,
) -> ApiResult<ApiJson<TopicBody>> {
    let app = auth.app_with(&app, Capability::AppTopicManage).await?;
    let name = topic_segment(&topic)?;
    let patch = TopicPatch {
        description: body.description.as_deref().map(description).transpose()?,
        external_subscribable: body.external_subscribable,
        auth_mode: body.auth_mode.as_deref().map(AuthMode::parse).transpose()?,
        retention: body.retention.map(retention).transpose()?,
        client_publish: body.client_publish,
        presence: body.presence,
        client_event_limit: body
            .client_event_limit
            .map(|l| l.map(RateLimitBody::parse).transpose())
            .transpose()?,
    };
    let tightened =
        patch.external_subscribable == Some(false) || patch.auth_mode == Some(AuthMode::Token);
    let topic = state
        .store
        .update_topic(&app.id, &name, patch)
        .await?
        .ok_or_else(|| ApiError::not_found("topic"))?;
    if tightened {
        // Streams opened under the old rules must not outlive them: end them, and let
        // clients reconnect under the new ones.
        state.realtime.hub.close_topic(&app.id, &name);
    }
    Ok(ApiJson(topic.into()))
}

#[utoipa::path(delete, path = "/api/v1/apps/{app}/topics/{topic}", tag = "topics",
    params(("app" = String, Path, description = "App slug or id"), ("topic" = String, Path, description = "Topic name")),
    security(("admin_key" = [])),
    responses((status = 204, description = "Deleted with its history; its live streams end"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_topic(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, topic)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = auth.app_with(&app, Capability::AppTopicManage).await?;
    let name = topic_segment(&topic)?;
    if !state.store.delete_topic(&app.id, &name).await? {
        return Err(ApiError::not_found("topic"));
    }
    state.realtime.hub.close_topic(&app.id, &name);
    Ok(StatusCode::NO_CONTENT)
}

/// Most messages one history page holds.
const MAX_PAGE: u32 = 500;

#[utoipa::path(get, path = "/api/v1/apps/{app}/topics/{topic}/messages", tag = "topics",
    params(("app" = String, Path, description = "App slug or id"), ("topic" = String, Path, description = "Topic name"), HistoryQuery),
    security(("admin_key" = [])),
    responses((status = 200, description = "Durable messages, newest first", body = HistoryPage),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "A limit outside 1–500", body = ErrorBody)))]
pub async fn topic_history(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, topic)): Path<(String, String)>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<ApiJson<HistoryPage>> {
    let app = auth.app_with_any(&app, READ).await?;
    let name = topic_segment(&topic)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ValidationError::new("limit", "1 to 500").into());
    }
    if state.store.get_topic(&app.id, &name).await?.is_none() {
        return Err(ApiError::not_found("topic"));
    }
    let page = state
        .store
        .read_before(&app.id, &name, q.before_seq, limit)
        .await?;
    let oldest_seq = state.store.oldest_seq(&app.id, &name).await?;
    let next_before_seq = page
        .last()
        .and_then(|m| m.seq)
        .filter(|&seq| oldest_seq.is_some_and(|oldest| seq > oldest));
    let messages = page
        .into_iter()
        .filter_map(|m| {
            Some(HistoryMessage {
                seq: m.seq?,
                message: serde_json::value::RawValue::from_string(m.payload.to_string()).ok()?,
                published_at: crate::timestamp::UtcMillis(m.published_at),
            })
        })
        .collect();
    Ok(ApiJson(HistoryPage {
        messages,
        oldest_seq,
        next_before_seq,
    }))
}

/// The admin's live tail of a topic: a `text/event-stream` with the frames and resume rules
/// of docs/protocol.md (`Last-Event-ID` or `?last_event_id=`), for any topic of the app,
/// internal and token-mode ones included, and with no token to expire.
#[utoipa::path(get, path = "/api/v1/apps/{app}/topics/{topic}/stream", tag = "topics",
    params(("app" = String, Path, description = "App slug or id"), ("topic" = String, Path, description = "Topic name")),
    security(("admin_key" = [])),
    responses((status = 200, description = "An SSE stream of docs/protocol.md's events (`message`, `position`, …)", content_type = "text/event-stream", body = crate::wire::ServerSentEvent),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn tail_topic(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, topic)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    remote: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let app = auth.app_with_any(&app, READ).await?;
    // A name no topic can have is a topic that does not exist, as on the other topic
    // routes (the stream itself would answer the protocol's 400 `invalid_topic`).
    topic_segment(&topic)?;
    let app = AppRef {
        id: app.id,
        slug: app.slug,
    };
    let rt = state.realtime.clone();
    let remote = remote.map(|Extension(ConnectInfo(a))| a);
    let revoked = state.key_revocations.of(&auth.key.id);
    let query = query.as_deref();
    Ok(picloud_realtime::sse::tail(rt, app, &topic, query, &headers, remote, revoked).await)
}
