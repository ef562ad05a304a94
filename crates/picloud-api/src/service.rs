//! The whole HTTP service as one hand-written layer around the three planes.
//!
//! Every request passes through [`HttpService`] once: a span, the deadline for the response
//! head, a panic net, host dispatch ([`crate::dispatch`]), the JSON shape for error answers
//! ([`crate::json_errors`]), then request count and latency by route label. Why one layer
//! and not a stack of tower/axum middlewares: each `Router::layer` and `from_fn` boxes a
//! clone of the service and a future per request, and with the per-route label layer that
//! came to ~28 allocations and ~12k instructions per request before any handler ran
//! (callgrind, docs/benchmarks.md). The planes themselves stay axum `Router`s. On the
//! keep-alive loop's connections a plain one-message publish is answered from the
//! request's bytes without a request being built ([`HttpService::call_parsed`]: the same
//! wrapper, the same answers).

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::FutureExt;
use hyper::body::{self as http_body, Body as _};
use tower::{Layer, ServiceExt};
use tracing::Instrument;

use crate::dispatch::Plane;
use crate::error::ApiError;
use crate::metrics::{RequestMetrics, RouteLabels};
use crate::routes::publish::{publish_call, PublishCall};
use crate::state::AppState;

/// A plane's router inside the request body limit: applied once around the router rather
/// than with `Router::layer`, which wraps (and per request clones) every route.
type Limited = <DefaultBodyLimit as Layer<Router>>::Service;

/// The planes a request can go to.
struct Planes {
    health: Limited,
    admin: Limited,
    data: Limited,
}

/// The service `serve` runs: cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct HttpService(Arc<Inner>);

struct Inner {
    state: AppState,
    planes: Planes,
    labels: RouteLabels,
    metrics: RequestMetrics,
    /// Deadline for the response head (a streaming body outlives it).
    timeout: Duration,
}

impl HttpService {
    pub(crate) fn new(
        state: AppState,
        health: Router,
        admin: Router,
        data: Router,
        labels: RouteLabels,
    ) -> Self {
        let limit = DefaultBodyLimit::max(state.config.max_body_bytes);
        let timeout = state.config.request_timeout;
        Self(Arc::new(Inner {
            planes: Planes {
                health: limit.layer(health),
                admin: limit.layer(admin),
                data: limit.layer(data),
            },
            labels,
            metrics: RequestMetrics::default(),
            timeout,
            state,
        }))
    }

    /// The largest request body any route takes.
    pub(crate) fn body_limit(&self) -> usize {
        self.0.state.config.max_body_bytes
    }

    /// Open connections at most.
    pub(crate) fn max_connections(&self) -> usize {
        self.0.state.config.max_connections.max(1)
    }

    /// How long a keep-alive connection may sit idle between requests.
    pub(crate) fn keep_alive_idle(&self) -> Duration {
        self.0.state.config.keep_alive_idle
    }

    /// How long a request may take, from its first byte to its response head.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.0.timeout
    }

    /// Answers a request from its parsed parts, as [`tower::Service::call`] would answer
    /// it, without building a request: `None` when the service does not take it that way
    /// (anything but a plain one-message publish on an admin Host in normal form), and the
    /// caller then builds the request and calls the service.
    pub(crate) fn call_parsed<'a>(
        &'a self,
        req: ParsedRequest<'a>,
    ) -> Option<impl Future<Output = Reply> + Send + 'a> {
        let inner = &*self.0;
        let host = std::str::from_utf8(req.host?).ok()?;
        if !crate::dispatch::admin_host_verbatim(&inner.state.config.admin_hosts, host) {
            return None;
        }
        // Only targets `http::Uri` takes as they are (it would refuse some httparse takes,
        // and the request would go to hyper's 400 instead). A table and no early exit:
        // every publish's target goes through this.
        let plain = |s: &str| {
            s.bytes()
                .fold(true, |ok, b| ok & PLAIN_TARGET[usize::from(b)])
        };
        if !plain(req.path) || !req.query.is_none_or(plain) {
            return None;
        }
        let call = PublishCall::from_target(
            req.path,
            req.query,
            req.authorization,
            req.body,
            &inner.state,
        )?;
        let start = Instant::now();
        // The very label the service path gives (metrics key on its address).
        let method = crate::metrics::method_label(&axum::http::Method::POST);
        let span = tracing::debug_span!("http", method, path = %req.path);
        let routed = async move {
            let reply = match publish_call(&inner.state, call).await {
                Ok(published) => published.into_reply(),
                Err(e) => Reply::Full(e.into_response()),
            };
            (reply, inner.labels.publish())
        };
        Some(inner.answer(start, method, span, Box::pin(routed), None))
    }
}

/// The bytes of a request target that [`HttpService::call_parsed`] takes as they are.
const PLAIN_TARGET: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'_' | b'~' | b':' | b'@' | b'/' | b'=' | b'&'
            );
        b += 1;
    }
    table
};

/// A request as a hand reader parsed it (see [`HttpService::call_parsed`]): an HTTP/1.1
/// `POST` with its whole body.
pub(crate) struct ParsedRequest<'a> {
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The Host, when the request has exactly one.
    pub host: Option<&'a [u8]>,
    /// The first `Authorization`.
    pub authorization: Option<&'a [u8]>,
    pub body: &'a [u8],
}

/// An answer as the service gives it: a response, or a JSON body its writer frames itself
/// (a publish's: the keep-alive loop writes it without building a response).
pub(crate) enum Reply {
    Json {
        status: StatusCode,
        /// When it was answered (Unix seconds), for the `date` header.
        secs: i64,
        body: Vec<u8>,
    },
    Full(Response),
}

impl Reply {
    fn status(&self) -> StatusCode {
        match self {
            Reply::Json { status, .. } => *status,
            Reply::Full(res) => res.status(),
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Full(res) => res,
            Reply::Json { status, body, .. } => {
                // Built in place: the tuple's `into_response` would set `text/plain` first,
                // then replace it.
                let mut res = Response::new(axum::body::Body::from(body));
                *res.status_mut() = status;
                res.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                );
                res
            }
        }
    }
}

/// The answer to a handler that panicked.
fn internal_error() -> Response {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
    .into_response()
}

/// The answer to a request that missed its deadline (the client may be the slow part: a
/// body promised and not sent).
pub(crate) fn timed_out() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        "the request took too long",
    )
    .into_response()
}

/// The answer to a request whose body did not arrive in time: the connection paths' `408`.
fn request_timed_out() -> Response {
    let mut res = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "the request did not arrive in time",
    )
    .into_response();
    res.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    res
}

/// A request body that notes when it has all arrived.
struct Arriving {
    body: axum::body::Body,
    done: Arc<AtomicBool>,
}

impl http_body::Body for Arriving {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, axum::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || self.body.is_end_stream() {
            self.done.store(true, Ordering::Release);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl tower::Service<Request> for HttpService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { Ok(inner.serve(req).await.into_response()) })
    }
}

impl Inner {
    async fn serve(&self, req: Request) -> Reply {
        let start = Instant::now();
        let method = crate::metrics::method_label(req.method());
        // DEBUG: method and path, never the query (it may hold a token).
        let span = tracing::debug_span!("http", method, path = %req.uri().path());
        // A body still arriving when the deadline passes is the client's doing: 408, as
        // every connection path answers a request that does not arrive in time.
        let arrived = (!req.body().is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
        let req = match &arrived {
            Some(flag) => req.map(|body| {
                axum::body::Body::new(Arriving {
                    body,
                    done: flag.clone(),
                })
            }),
            None => req,
        };
        let routed = async {
            let (res, label) = self.route(req).await;
            (Reply::Full(res), label)
        };
        self.answer(start, method, span, Box::pin(routed), arrived.as_deref())
            .await
    }

    /// What every request gets around its routing (`routed`: the answer and its route
    /// label): the span, the deadline, the panic net, JSON errors, metrics. `routed` comes
    /// boxed: a handler's whole state, moved into each wrapper in turn, cost a publish
    /// ~2 % of its time in `memcpy` (perf). An answer ready at once (a cached ephemeral
    /// publish) completes on the first poll: nothing here waits unless `routed` does.
    async fn answer(
        &self,
        start: Instant,
        method: &'static str,
        span: tracing::Span,
        routed: Pin<Box<impl Future<Output = (Reply, &'static str)>>>,
        body_arrived: Option<&AtomicBool>,
    ) -> Reply {
        let routed = AssertUnwindSafe(routed).catch_unwind();
        let (reply, label) = match tokio::time::timeout(self.timeout, routed.instrument(span)).await
        {
            Ok(Ok(answer)) => answer,
            Ok(Err(_panic)) => (Reply::Full(internal_error()), "unmatched"),
            Err(_) if body_arrived.is_some_and(|a| !a.load(Ordering::Acquire)) => {
                (Reply::Full(request_timed_out()), "unmatched")
            }
            Err(_) => (Reply::Full(timed_out()), "unmatched"),
        };
        let (reply, label) = match reply {
            Reply::Full(res) => {
                let res = crate::json_errors::ensure_json(res).await;
                // A script endpoint labels its own response (tenants' route patterns are
                // theirs).
                let label = res
                    .extensions()
                    .get::<crate::metrics::RouteLabel>()
                    .map_or(label, |l| l.0);
                (Reply::Full(res), label)
            }
            json => (json, label),
        };
        self.finish(label, method, reply.status(), start);
        reply
    }

    /// Request metrics, and a log line for a server error.
    fn finish(
        &self,
        label: &'static str,
        method: &'static str,
        status: StatusCode,
        start: Instant,
    ) {
        let elapsed = start.elapsed();
        self.metrics.record(label, method, status, elapsed);
        // A full disk answers every durable write 507 until space returns; the store logs
        // that once per change of state, so each refusal is only a debug line here.
        if status == StatusCode::INSUFFICIENT_STORAGE {
            tracing::debug!(%status, method, route = label, "request refused: storage full");
        } else if status.is_server_error() {
            tracing::error!(%status, method, route = label, latency_ms = elapsed.as_millis() as u64, "request failed");
        }
    }

    /// The plane's answer and the request's route label.
    async fn route(&self, req: Request) -> (Response, &'static str) {
        let labels = &self.labels;
        let (plane, label, req) = match crate::dispatch::plane(&self.state, req).await {
            Plane::Health(req) => (&self.planes.health, labels.health(req.uri().path()), req),
            Plane::Admin(req) => (&self.planes.admin, labels.admin(req.uri().path()), req),
            Plane::Data(req) => (&self.planes.data, labels.data(req.uri().path()), req),
            Plane::Refused(res) => return (res, "unmatched"),
        };
        match plane.clone().oneshot(req).await {
            Ok(res) => (res, label),
            Err(never) => match never {},
        }
    }
}
