//! The SSE endpoint (DESIGN §5): `GET /realtime/topics/{topic}` and
//! `GET /realtime?topic=a&topic=b` on an app's Host.
//!
//! Order of checks: parse (400) → every topic exists and is external (else one 404 for
//! all cases) → token for token-mode topics (else one generic 401) → subscribe to the hub
//! *before* reading positions or history (so nothing committed in between is missed) →
//! stream ([`stream`]).

mod request;
mod stream;

use crate::codes::Code;
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use picloud_core::app::AppRef;
use picloud_core::topic::{AuthMode, TopicName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::quota::{refusal, Permit, Refused};
use crate::stats::Stats;
use crate::streams::{Peer, StreamKind};
use crate::token::{Grant, VerifyError};
use crate::Realtime;

pub use request::{parse, BadRequest, SubscribeRequest};

/// The subscriber's socket, set on the request by a server that writes the response to it
/// itself (close-delimited, nothing buffered between the body and the socket): a
/// one-topic stream may then have live frames written to it directly by the publishing
/// task while it waits (see the hub's channel). Without it, every frame goes through the
/// response body.
#[derive(Clone)]
pub struct DirectSocket(pub Arc<TcpStream>);

/// On a stream's response, for a server that writes it to the socket itself: how long a
/// write may wait for the client to take any of it before the server gives up on it (the
/// client stopped reading), and the count to add to when it does. hyper, which writes the
/// other streams, knows no such deadline.
#[derive(Clone)]
pub struct SendDeadline {
    pub after: Duration,
    stats: Arc<Stats>,
}

impl SendDeadline {
    /// The stream is dropped: its client took nothing for [`Self::after`].
    pub fn missed(&self) {
        self.stats.slow_consumer_disconnects.add(1);
    }
}

/// The client's address, as the server puts it on each request (axum's `ConnectInfo`).
type Remote = Option<Extension<ConnectInfo<SocketAddr>>>;

fn subscriber(remote: Remote) -> Peer {
    Peer {
        kind: StreamKind::Subscriber,
        remote: remote.map(|Extension(ConnectInfo(a))| a),
    }
}

pub async fn subscribe_one(
    State(rt): State<Realtime>,
    Extension(app): Extension<AppRef>,
    Path(topic): Path<String>,
    RawQuery(query): RawQuery,
    socket: Option<Extension<DirectSocket>>,
    remote: Remote,
    headers: HeaderMap,
) -> Response {
    let socket = socket.map(|Extension(DirectSocket(s))| s);
    let peer = subscriber(remote);
    subscribe(
        rt,
        app,
        Some(&topic),
        query.as_deref(),
        &headers,
        socket,
        peer,
    )
    .await
}

pub async fn subscribe_many(
    State(rt): State<Realtime>,
    Extension(app): Extension<AppRef>,
    RawQuery(query): RawQuery,
    socket: Option<Extension<DirectSocket>>,
    remote: Remote,
    headers: HeaderMap,
) -> Response {
    let socket = socket.map(|Extension(DirectSocket(s))| s);
    let peer = subscriber(remote);
    subscribe(rt, app, None, query.as_deref(), &headers, socket, peer).await
}

async fn subscribe(
    rt: Realtime,
    app: AppRef,
    path_topic: Option<&str>,
    query: Option<&str>,
    headers: &HeaderMap,
    socket: Option<Arc<TcpStream>>,
    peer: Peer,
) -> Response {
    let req = match request::parse(path_topic, query, headers, rt.config.max_topics_per_stream) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    let grant = match authorize(&rt, &app, &req).await {
        Ok(g) => g,
        Err(res) => return res,
    };
    let permit = match rt.quotas.connect(&app.id, req.topics.len()).await {
        Ok(p) => p,
        Err(refused) => return quota_refusal(&app, refused),
    };
    open(rt, app, req, grant, socket, peer, None, Some(permit)).await
}

/// 429 with `Retry-After` for a quota, 503 for a database that cannot say.
pub(crate) fn quota_refusal(app: &AppRef, refused: Refused) -> Response {
    match refused {
        Refused::Over { limit, retry_after } => {
            let secs = refusal(app.slug.as_str(), limit, retry_after);
            let mut res = error(
                StatusCode::TOO_MANY_REQUESTS,
                Code::QuotaExceeded,
                &format!("over the app's {} quota", limit.as_str()),
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            res
        }
        Refused::Store(e) => {
            tracing::warn!(error = %e, "quota lookup failed");
            unavailable()
        }
    }
}

/// The stream's response, or a 503 when its topics' ends cannot be read. `permit`: its
/// place in the app's connection quota (admin tails take none), held while it lives.
#[allow(clippy::too_many_arguments)]
async fn open(
    rt: Realtime,
    app: AppRef,
    req: SubscribeRequest,
    grant: Option<Grant>,
    socket: Option<Arc<TcpStream>>,
    peer: Peer,
    revoked: Option<CancellationToken>,
    permit: Option<Permit>,
) -> Response {
    let deadline = SendDeadline {
        after: rt.config.send_timeout,
        stats: rt.stats.clone(),
    };
    match stream::open(rt, app, req, grant, socket, peer, revoked, permit).await {
        Ok(body) => {
            let mut res = sse_response(body);
            res.extensions_mut().insert(deadline);
            res
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot open stream");
            unavailable()
        }
    }
}

pub(crate) fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::Unavailable,
        "the database is unavailable; retry shortly",
    )
}

/// An administrator's tail of one topic of `app`, internal and token-mode topics included:
/// the frames and resume rules of a subscriber's stream (docs/protocol.md), with no token
/// (so no expiry). The caller has checked the admin key; a token in the request is ignored.
/// `revoked` fires when that key is revoked: the tail then ends with `token_revoked`.
pub async fn tail(
    rt: Realtime,
    app: AppRef,
    topic: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    remote: Option<SocketAddr>,
    revoked: CancellationToken,
) -> Response {
    let req = match request::parse(Some(topic), query, headers, 1) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    match rt.store.get_topic(&app.id, &req.topics[0]).await {
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::NOT_FOUND, Code::NotFound, "topic not found"),
        Err(e) => {
            tracing::warn!(error = %e, "topic lookup failed");
            return unavailable();
        }
    }
    let peer = Peer {
        kind: StreamKind::AdminTail,
        remote,
    };
    open(rt, app, req, None, None, peer, Some(revoked), None).await
}

/// `Ok(Some(grant))` when a token was needed and verified (its expiry then bounds the
/// stream); `Ok(None)` for public topics only.
async fn authorize(
    rt: &Realtime,
    app: &AppRef,
    req: &SubscribeRequest,
) -> Result<Option<Grant>, Response> {
    let mut needs_token: Vec<&TopicName> = Vec::new();
    for name in &req.topics {
        match rt.store.get_topic(&app.id, name).await {
            Ok(Some(t)) if t.external_subscribable => {
                if t.auth_mode == AuthMode::Token {
                    needs_token.push(name);
                }
            }
            Ok(_) => {
                return Err(error(
                    StatusCode::NOT_FOUND,
                    Code::NotFound,
                    "topic not found",
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "topic lookup failed");
                return Err(unavailable());
            }
        }
    }
    let unauthorized = || {
        error(
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
            "a valid subscriber token is required",
        )
    };
    let Some(token) = &req.token else {
        return if needs_token.is_empty() {
            Ok(None)
        } else {
            Err(unauthorized())
        };
    };
    // A token that is presented is always checked, even for public topics: a client with a
    // broken token should learn it now, not when a token-mode topic is added.
    let grant = match rt.tokens.verify(&app.id, token).await {
        Ok(g) => g,
        Err(VerifyError::Invalid) => return Err(unauthorized()),
        Err(VerifyError::Store(e)) => {
            tracing::warn!(error = %e, "secret lookup failed");
            return Err(unavailable());
        }
    };
    if needs_token.iter().any(|t| !grant.allows(t.as_str())) {
        return Err(unauthorized());
    }
    Ok((!needs_token.is_empty()).then_some(grant))
}

/// An event-stream answer (also the admin stats stream's): the headers that keep proxies from
/// buffering or transforming it.
pub fn sse_response(body: Body) -> Response {
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

/// The `{"error":{"code","message"}}` shape of the admin API, for the data plane.
pub(crate) fn error(status: StatusCode, code: Code, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code.as_str(), "message": message } });
    (status, axum::Json(body)).into_response()
}
