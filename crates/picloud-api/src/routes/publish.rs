//! The admin side of the publish path: `POST /api/v1/apps/{app}/topics/{topic}/publish` (one
//! message) and `POST /api/v1/apps/{app}/publish` (many messages, on any topics, in one
//! request and one transaction).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use picloud_core::app::App;
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
        (status = 422, description = "Invalid topic name", body = ErrorBody),
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

/// The one-message publish, after authentication: the handler's body, shared with
/// [`publish_direct`] and [`publish_native`].
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
/// keep-alive loop.
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
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> bool {
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

    /// When it was published, in Unix seconds.
    pub(crate) fn unix_secs(&self) -> i64 {
        self.published_at.div_euclid(1000)
    }

    pub(crate) fn into_response(self) -> Response {
        let mut json = Vec::with_capacity(64 + self.topic.as_str().len());
        if !self.write_json(&mut json) {
            let body = PublishedBody {
                topic: self.topic.to_string(),
                seq: self.seq,
                published_at: UtcMillis(self.published_at),
            };
            return (self.status, ApiJson(body)).into_response();
        }
        // Built in place: the tuple's `into_response` would set `text/plain` first, then
        // replace it.
        let mut res = Response::new(axum::body::Body::from(json));
        *res.status_mut() = self.status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res
    }
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
        // Byte scans rather than `split`: segments are short, and this runs per publish.
        let rest = path.strip_prefix(PREFIX)?;
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
    answer.await.map(Published::into_response).into_response()
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
    answer.await.map(Published::into_response).into_response()
}

/// A [`Direct`] ephemeral publish answered at once, with nothing to wait for: `None` when
/// it is durable or its key or app is not cached (the caller then takes
/// [`publish_native`]). The same checks in the same order, the same answers.
pub(crate) fn publish_native_now(
    state: &AppState,
    path: &str,
    authorization: Option<&[u8]>,
    body: &[u8],
    d: &Direct,
    now: std::time::Instant,
) -> Option<ApiResult<Published>> {
    if !d.ephemeral {
        return None;
    }
    let auth = match AdminAuth::authenticate_cached(authorization, state, now)? {
        Ok(auth) => auth,
        Err(e) => return Some(Err(e)),
    };
    let app = match auth.cached_app_with(&path[d.app.clone()], Capability::AppPublish, now)? {
        Ok(app) => app,
        Err(e) => return Some(Err(e)),
    };
    Some(
        message(state, &path[d.topic.clone()], body)
            .map(|(topic, payload)| publish_ephemeral(state, &app, topic, payload)),
    )
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
