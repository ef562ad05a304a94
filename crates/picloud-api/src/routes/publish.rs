//! The admin side of the publish path: `POST /api/v1/apps/{app}/topics/{topic}/publish` (one
//! message) and `POST /api/v1/apps/{app}/publish` (many messages, on any topics, in one
//! request and one transaction).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use picloud_core::app::App;
use picloud_core::capability::Capability;
use picloud_core::topic::TopicName;

use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::service::Reply;
use crate::state::AppState;
use crate::timestamp::UtcMillis;
use crate::wire::{PublishBatch, PublishQuery, PublishedBatch, PublishedBody};

/// Most messages one batch request may carry: the body limit bounds the bytes, this bounds
/// the rows one transaction takes (and the topic row locks it holds).
pub const MAX_BATCH_MESSAGES: usize = 1000;

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
        (status = 422, description = "Invalid topic name", body = ErrorBody),
        (status = 429, description = "Over the app's publish quota (`quota_exceeded`): nothing published; `Retry-After` says when", body = ErrorBody),
        (status = 503, description = "Database unavailable: nothing stored, retry with backoff", body = ErrorBody),
        (status = 507, description = "Storage full (`storage_full`): nothing stored, retry once space is freed", body = ErrorBody)))]
pub async fn publish(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, topic)): Path<(String, String)>,
    Query(q): Query<PublishQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    publish_one(
        &state,
        auth,
        &app,
        &topic,
        q.ephemeral.unwrap_or(false),
        &body,
    )
    .await
    .map(Published::into_response)
}

/// The one-message publish however it was read, after authentication: the routed handler
/// above, and [`publish_call`] for one read straight off a connection. An ephemeral publish
/// whose key and app are cached completes without waiting (the caches answer at once).
async fn publish_one(
    state: &AppState,
    auth: AdminAuth,
    app: &str,
    topic: &str,
    ephemeral: bool,
    body: &[u8],
) -> ApiResult<Published> {
    let app = auth.shared_app_with(app, Capability::AppPublish).await?;
    let (topic, payload) = message(state, topic, body)?;
    let rt = &state.realtime;
    rt.quotas
        .publish(&app.id, !ephemeral, 1)
        .await
        .map_err(|r| ApiError::over_quota(app.slug.as_str(), r))?;
    if ephemeral {
        return Ok(publish_ephemeral(state, &app, topic, payload));
    }
    let done = rt
        .publisher
        .publish(app.id.clone(), topic.clone(), payload)
        .await?;
    Ok(Published {
        status: StatusCode::CREATED,
        topic,
        seq: Some(done.seq),
        published_at: done.published_at,
    })
}

/// The message's checks after the app's, in the handler's order: topic name (422), size
/// (413), JSON (400). Validated once here and stored compact, as written (`payload`).
fn message(state: &AppState, topic: &str, body: &[u8]) -> ApiResult<(TopicName, Arc<str>)> {
    let topic = TopicName::parse(topic)?;
    let max = state.realtime.config.max_payload_bytes;
    if body.len() > max {
        return Err(too_large(max, ""));
    }
    let payload = crate::payload::compact(body).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("the message is not JSON: {e}"))
    })?;
    Ok((topic, payload))
}

fn publish_ephemeral(
    state: &AppState,
    app: &App,
    topic: TopicName,
    payload: Arc<str>,
) -> Published {
    let publisher = &state.realtime.publisher;
    let at = publisher.publish_ephemeral(app.id.clone(), topic.clone(), payload);
    Published {
        status: StatusCode::ACCEPTED,
        topic,
        seq: None,
        published_at: at,
    }
}

/// A one-message publish's answer (201 stored, 202 ephemeral), before it is written: as a
/// [`Response`] on the routed paths, straight into the connection's buffer by the
/// keep-alive loop ([`Reply::Json`]).
pub(crate) struct Published {
    pub status: StatusCode,
    topic: TopicName,
    seq: Option<i64>,
    published_at: i64,
}

impl Published {
    /// Appends the JSON body, the same bytes as `ApiJson(PublishedBody)`, written by hand
    /// (serde's machinery was ~2.7k of a publish's ~33k instructions, callgrind). Topic
    /// names need no escaping (`TopicName`). `false` (nothing written) for a time chrono
    /// must format (a year outside 0000–9999).
    fn write_json(&self, out: &mut Vec<u8>) -> bool {
        let mut at = [0u8; 24];
        let Some(at) = UtcMillis(self.published_at).write(&mut at) else {
            return false;
        };
        out.extend_from_slice(br#"{"topic":""#);
        out.extend_from_slice(self.topic.as_str().as_bytes());
        out.push(b'"');
        if let Some(seq) = self.seq {
            out.extend_from_slice(br#","seq":"#);
            out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        }
        out.extend_from_slice(br#","published_at":""#);
        out.extend_from_slice(at.as_bytes());
        out.extend_from_slice(br#""}"#);
        true
    }

    #[cfg(test)]
    pub(crate) fn for_test(status: StatusCode, topic: &str, seq: Option<i64>, at: i64) -> Self {
        Self {
            status,
            topic: TopicName::parse(topic).expect("a valid topic"),
            seq,
            published_at: at,
        }
    }

    pub(crate) fn into_reply(self) -> Reply {
        let mut json = Vec::with_capacity(64 + self.topic.as_str().len());
        if !self.write_json(&mut json) {
            let body = PublishedBody {
                topic: self.topic.to_string(),
                seq: self.seq,
                published_at: UtcMillis(self.published_at),
            };
            return Reply::Full((self.status, ApiJson(body)).into_response());
        }
        Reply::Json {
            status: self.status,
            secs: self.published_at.div_euclid(1000),
            body: json,
        }
    }

    pub(crate) fn into_response(self) -> Response {
        self.into_reply().into_response()
    }
}

/// A one-message publish read straight off a connection (the keep-alive loop's), with no
/// request built: `POST /api/v1/apps/{app}/topics/{topic}/publish`, no query or
/// `ephemeral=true|false`, plain path segments, a whole body within the message limit.
/// Anything else goes through the router. (Routing, `Path`, `Query` and `Bytes` cost ~6k
/// of a publish's ~46k instructions; docs/benchmarks.md.)
pub(crate) struct PublishCall<'a> {
    app: &'a str,
    topic: &'a str,
    ephemeral: bool,
    authorization: Option<&'a [u8]>,
    body: &'a [u8],
}

impl<'a> PublishCall<'a> {
    /// The call for `path?query`, or `None` when it is not such a publish.
    pub(crate) fn from_target(
        path: &'a str,
        query: Option<&str>,
        authorization: Option<&'a [u8]>,
        body: &'a [u8],
        state: &AppState,
    ) -> Option<Self> {
        // Byte scans rather than `split`: segments are short, and this runs per publish.
        let rest = path.strip_prefix("/api/v1/apps/")?;
        fn segment(s: &str) -> Option<(&str, &str)> {
            let end = s.bytes().position(|b| b == b'/').unwrap_or(s.len());
            let plain = s.as_bytes()[..end]
                .iter()
                .fold(true, |ok, &b| ok & (b != b'%'));
            (end > 0 && plain).then(|| s.split_at(end))
        }
        let (app, rest) = segment(rest)?;
        let (topic, tail) = segment(rest.strip_prefix("/topics/")?)?;
        if tail != "/publish" {
            return None;
        }
        let ephemeral = match query {
            None => false,
            Some("ephemeral=true") => true,
            Some("ephemeral=false") => false,
            Some(_) => return None,
        };
        let limit = state
            .realtime
            .config
            .max_payload_bytes
            .min(state.config.max_body_bytes);
        (body.len() <= limit).then_some(Self {
            app,
            topic,
            ephemeral,
            authorization,
            body,
        })
    }
}

/// Answers a [`PublishCall`] as the routed handler would: the same checks in the same
/// order, the same answers.
pub(crate) async fn publish_call(state: &AppState, call: PublishCall<'_>) -> ApiResult<Published> {
    let auth = AdminAuth::authenticate(call.authorization, state).await?;
    publish_one(state, auth, call.app, call.topic, call.ephemeral, call.body).await
}

#[utoipa::path(post, path = "/api/v1/apps/{app}/publish", tag = "topics",
    params(("app" = String, Path, description = "App slug or id"), PublishQuery),
    request_body(content = PublishBatch, description = "Up to 1,000 messages, on any topics of the app"),
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "All stored in one transaction (or none), then broadcast; answers in request order", body = PublishedBatch),
        (status = 202, description = "Ephemeral: broadcast to live subscribers only", body = PublishedBatch),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, description = "A message over the limit, or the body over the request limit", body = ErrorBody),
        (status = 422, description = "An invalid topic name, no messages, or more than 1,000", body = ErrorBody),
        (status = 429, description = "Over the app's publish quota (`quota_exceeded`; a batch counts each message): nothing published; `Retry-After` says when", body = ErrorBody),
        (status = 503, description = "Database unavailable: nothing stored, retry with backoff", body = ErrorBody),
        (status = 507, description = "Storage full (`storage_full`): nothing stored, retry once space is freed", body = ErrorBody)))]
pub async fn publish_batch(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(q): Query<PublishQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, ApiJson<PublishedBatch>)> {
    let app = auth.app_with(&app, Capability::AppPublish).await?;
    let batch: PublishBatch = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("the body is not a batch: {e}"))
    })?;
    let n = batch.messages.len();
    if n == 0 || n > MAX_BATCH_MESSAGES {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("messages: a batch holds 1 to {MAX_BATCH_MESSAGES} messages, not {n}"),
        ));
    }
    let rt = &state.realtime;
    let max = rt.config.max_payload_bytes;
    // Everything is checked before anything is published: a bad message fails the batch.
    let mut messages = Vec::with_capacity(n);
    for (i, m) in batch.messages.into_iter().enumerate() {
        let topic = TopicName::parse(&m.topic).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("messages[{i}].topic: {e}"),
            )
        })?;
        let payload = crate::payload::compact_raw(&m.data);
        if payload.len() > max {
            return Err(too_large(max, &format!("messages[{i}].data: ")));
        }
        messages.push((topic, payload));
    }
    let ephemeral = q.ephemeral.unwrap_or(false);
    rt.quotas
        .publish(&app.id, !ephemeral, n as u32)
        .await
        .map_err(|r| ApiError::over_quota(app.slug.as_str(), r))?;
    let names: Vec<String> = messages.iter().map(|(t, _)| t.to_string()).collect();
    // Per message, in request order: (seq, published_at).
    let (status, answers): (_, Vec<(Option<i64>, i64)>) = if ephemeral {
        let at = rt.publisher.publish_ephemeral_many(app.id, messages);
        (StatusCode::ACCEPTED, vec![(None, at); n])
    } else {
        let published = rt.publisher.publish_many(app.id, messages).await?;
        let answers = published
            .into_iter()
            .map(|p| (Some(p.seq), p.published_at))
            .collect();
        (StatusCode::CREATED, answers)
    };
    let messages = names
        .into_iter()
        .zip(answers)
        .map(|(topic, (seq, at))| PublishedBody {
            topic,
            seq,
            published_at: UtcMillis(at),
        })
        .collect();
    Ok((status, ApiJson(PublishedBatch { messages })))
}

fn too_large(max: usize, prefix: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("{prefix}a message may be at most {max} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[tokio::test]
    async fn the_answer_is_what_serde_writes() {
        for (seq, at) in [
            (Some(7), 1_764_000_000_123),
            (None, 1_764_000_000_000),
            (Some(-1), 0),
            // Past 9999: chrono's text, through serde.
            (Some(3), 253_402_300_800_000),
        ] {
            let body = || PublishedBody {
                topic: "a.b-c_d:e@f".into(),
                seq,
                published_at: UtcMillis(at),
            };
            let res =
                Published::for_test(StatusCode::CREATED, "a.b-c_d:e@f", seq, at).into_response();
            assert_eq!(res.status(), StatusCode::CREATED);
            assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
            let got = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
            assert_eq!(got, serde_json::to_vec(&body()).unwrap(), "{seq:?} {at}");
        }
    }
}
