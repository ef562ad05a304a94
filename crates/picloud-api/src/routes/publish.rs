//! The admin side of the publish path: `POST /api/v1/apps/{app}/topics/{topic}/publish` (one
//! message) and `POST /api/v1/apps/{app}/publish` (many messages, on any topics, in one
//! request and one transaction).

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use picloud_core::capability::Capability;
use picloud_core::topic::TopicName;

use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
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
        (status = 422, description = "Invalid topic name", body = ErrorBody)))]
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
}

/// The one-message publish, after authentication: the handler's body, shared with
/// [`publish_direct`].
async fn publish_one(
    state: &AppState,
    auth: AdminAuth,
    app: &str,
    topic: &str,
    ephemeral: bool,
    body: &[u8],
) -> ApiResult<Response> {
    let app = auth.shared_app_with(app, Capability::AppPublish).await?;
    let topic = TopicName::parse(topic)?;
    let rt = &state.realtime;
    if body.len() > rt.config.max_payload_bytes {
        return Err(too_large(rt.config.max_payload_bytes, ""));
    }
    // Validated once here and stored compact, as written (`payload`).
    let payload = crate::payload::compact(body).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("the message is not JSON: {e}"))
    })?;
    let name = topic.to_string();
    if ephemeral {
        let at = rt
            .publisher
            .publish_ephemeral(app.id.clone(), topic, payload);
        return Ok(published(
            StatusCode::ACCEPTED,
            PublishedBody {
                topic: name,
                seq: None,
                published_at: UtcMillis(at),
            },
        ));
    }
    let done = rt.publisher.publish(app.id.clone(), topic, payload).await?;
    Ok(published(
        StatusCode::CREATED,
        PublishedBody {
            topic: name,
            seq: Some(done.seq),
            published_at: UtcMillis(done.published_at),
        },
    ))
}

/// The one-message publish answer, written by hand: the same bytes as
/// `ApiJson(PublishedBody)`, without serde's machinery (~2.7k of a publish's ~33k
/// instructions, callgrind). Topic names need no escaping (`TopicName`).
fn published(status: StatusCode, body: PublishedBody) -> Response {
    use std::fmt::Write as _;
    let mut at = [0u8; 24];
    let Some(at) = body.published_at.write(&mut at) else {
        return (status, ApiJson(body)).into_response();
    };
    let mut json = String::with_capacity(64 + body.topic.len());
    json.push_str(r#"{"topic":""#);
    json.push_str(&body.topic);
    if let Some(seq) = body.seq {
        let _ = write!(json, r#"","seq":{seq}"#);
    } else {
        json.push('"');
    }
    json.push_str(r#","published_at":""#);
    json.push_str(at);
    json.push_str(r#""}"#);
    // Built in place: the tuple's `into_response` would set `text/plain` first, then
    // replace it.
    let mut res = Response::new(axum::body::Body::from(json));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// A one-message publish the service can answer without axum's router and extractors
/// (routing, `Path`, `Query` and `Bytes` cost ~6k of a publish's ~46k instructions;
/// docs/benchmarks.md): `POST /api/v1/apps/{app}/topics/{topic}/publish`, no query or
/// `ephemeral=true|false`, plain path segments, a `Content-Length` within the message
/// limit and no `Transfer-Encoding`. Anything else goes through the router as before.
pub(crate) struct Direct {
    /// Where `{app}` and `{topic}` are in the path (borrowed back later, not copied).
    app: std::ops::Range<usize>,
    topic: std::ops::Range<usize>,
    ephemeral: bool,
    length: usize,
}

impl Direct {
    pub(crate) fn recognise(req: &Request, state: &AppState) -> Option<Self> {
        if req.method() != Method::POST || req.headers().contains_key(header::TRANSFER_ENCODING) {
            return None;
        }
        let length = req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?;
        let length = length.parse().ok()?;
        Self::from_target(req.uri().path(), req.uri().query(), length, state)
    }

    /// A `POST` with no Transfer-Encoding to `path?query`, of Content-Length `length`.
    pub(crate) fn from_target(
        path: &str,
        query: Option<&str>,
        length: usize,
        state: &AppState,
    ) -> Option<Self> {
        const PREFIX: &str = "/api/v1/apps/";
        let rest = path.strip_prefix(PREFIX)?;
        let mut parts = rest.split('/');
        let (app, lit, topic, tail) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let plain = |s: &str| !s.is_empty() && !s.contains('%');
        if parts.next().is_some()
            || lit != "topics"
            || tail != "publish"
            || !plain(app)
            || !plain(topic)
        {
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
        let app_at = PREFIX.len();
        let topic_at = app_at + app.len() + "/topics/".len();
        (length <= limit).then(|| Self {
            app: app_at..app_at + app.len(),
            topic: topic_at..topic_at + topic.len(),
            ephemeral,
            length,
        })
    }
}

/// Answers a [`Direct`] request as the routed handler would: the same checks in the same
/// order, the same answers. (One difference, for a client already gone: a body cut short
/// of its Content-Length gets `invalid_body` here, axum's own 400 there.)
pub(crate) async fn publish_direct(state: &AppState, req: Request, d: Direct) -> Response {
    let (mut parts, body) = req.into_parts();
    let answer = async {
        let auth = AdminAuth::from_request_parts(&mut parts, state).await?;
        let body = axum::body::to_bytes(body, d.length).await.map_err(|_| {
            ApiError::bad_request("invalid_body", "the body ended before its Content-Length")
        })?;
        let path = parts.uri.path();
        let (app, topic) = (&path[d.app], &path[d.topic]);
        publish_one(state, auth, app, topic, d.ephemeral, &body).await
    };
    answer.await.into_response()
}

/// A [`Direct`] publish read straight off the connection (the keep-alive loop's): no
/// request object is built. `path` is the request target's path, `body` its whole body.
pub(crate) async fn publish_native(
    state: &AppState,
    path: &str,
    authorization: Option<&[u8]>,
    body: &[u8],
    d: Direct,
) -> Response {
    let answer = async {
        let auth = AdminAuth::authenticate(authorization, state).await?;
        let (app, topic) = (&path[d.app], &path[d.topic]);
        publish_one(state, auth, app, topic, d.ephemeral, body).await
    };
    answer.await.into_response()
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
        (status = 422, description = "An invalid topic name, no messages, or more than 1,000", body = ErrorBody)))]
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
    let names: Vec<String> = messages.iter().map(|(t, _)| t.to_string()).collect();
    // Per message, in request order: (seq, published_at).
    let (status, answers): (_, Vec<(Option<i64>, i64)>) = if q.ephemeral.unwrap_or(false) {
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

    #[tokio::test]
    async fn the_answer_is_what_serde_writes() {
        for (seq, at) in [
            (Some(7), 1_764_000_000_123),
            (None, 1_764_000_000_000),
            (Some(-1), 0),
        ] {
            let body = || PublishedBody {
                topic: "a.b-c_d:e@f".into(),
                seq,
                published_at: UtcMillis(at),
            };
            let res = published(StatusCode::CREATED, body());
            assert_eq!(res.status(), StatusCode::CREATED);
            assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
            let got = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
            assert_eq!(got, serde_json::to_vec(&body()).unwrap(), "{seq:?} {at}");
        }
    }
}
