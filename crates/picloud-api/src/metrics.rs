//! Prometheus metrics: the process-wide recorder, the HTTP middleware and `/metrics`.
//!
//! Route labels are route *patterns* (`/api/v1/apps/{app}`), never raw paths, so a tenant's
//! URLs or a scanner cannot blow up label cardinality. Data-plane requests are labelled
//! `data_plane`; requests that match nothing, `unmatched`.

use std::collections::HashSet;
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

use crate::error::ApiError;
use crate::state::AppState;

pub const REQUESTS: &str = "picloud_http_requests_total";
pub const DURATION: &str = "picloud_http_request_duration_seconds";

/// The route label a response carries from the router that matched it to the outer
/// metrics middleware, which runs before routing and so cannot see `MatchedPath` itself.
#[derive(Clone, Copy)]
pub struct RouteLabel(pub &'static str);

/// Label values live for the process: route patterns, methods and status codes are a small
/// fixed set, and `&'static str` labels cost the metrics registry no allocation per request.
fn intern(value: &str) -> &'static str {
    static SET: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    let set = SET.get_or_init(Default::default);
    if let Some(v) = set.read().expect("intern lock").get(value) {
        return v;
    }
    let mut w = set.write().expect("intern lock");
    if let Some(v) = w.get(value) {
        return v;
    }
    let leaked: &'static str = Box::leak(value.to_owned().into_boxed_str());
    w.insert(leaked);
    leaked
}

/// The process-wide recorder's handle. `metrics` has one global recorder, so servers
/// started in one process (tests) share it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(DURATION.to_owned()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0,
                    ],
                )
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program); then our
            // handle renders only what we describe, which is still correct output.
            let _ = metrics::set_global_recorder(recorder);
            metrics::describe_counter!(
                REQUESTS,
                "HTTP requests by route pattern, method and status"
            );
            metrics::describe_histogram!(DURATION, "HTTP request latency by route pattern");
            metrics::gauge!("picloud_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// Inner layer (after routing): stamps the matched route pattern, after `prefix`, onto the
/// response. The data plane uses the prefix `app:` to keep tenant routes apart from ours.
pub async fn label_route(State(prefix): State<&'static str>, req: Request, next: Next) -> Response {
    let label = req.extensions().get::<MatchedPath>().map(|p| {
        let mut label = String::with_capacity(prefix.len() + p.as_str().len());
        label.push_str(prefix);
        label.push_str(p.as_str());
        intern(&label)
    });
    let mut res = next.run(req).await;
    if let Some(label) = label {
        res.extensions_mut().insert(RouteLabel(label));
    }
    res
}

/// Labels a response that no axum route matched (script endpoints). Tenant route patterns
/// are tenants' input, so every script endpoint shares one label: the series count stays
/// bounded however many routes tenants create.
pub fn label_response(res: &mut Response, label: &'static str) {
    res.extensions_mut().insert(RouteLabel(label));
}

/// Standard methods by name; anything else (clients may send any token) is `other`, so a
/// client cannot mint label values (series, interned strings) at will.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The outermost layer, one per request: a span (DEBUG: method and path, never the query,
/// which may hold a token), the deadline for the response head (a streaming body outlives
/// it), request count and latency, and an error line for 5xx answers. One middleware rather
/// than four: each layer costs a service clone and a boxed future per request.
pub async fn observe(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let span = tracing::debug_span!("http", method, path = %req.uri().path());
    let res = match tokio::time::timeout(limit, next.run(req).instrument(span)).await {
        Ok(res) => res,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long",
        )
        .into_response(),
    };
    let route = res
        .extensions()
        .get::<RouteLabel>()
        .map_or("unmatched", |l| l.0);
    let status = res.status();
    metrics::counter!(REQUESTS, "route" => route, "method" => method, "status" => intern(status.as_str()))
        .increment(1);
    let elapsed = start.elapsed();
    metrics::histogram!(DURATION, "route" => route).record(elapsed.as_secs_f64());
    if status.is_server_error() {
        tracing::error!(%status, method, route, latency_ms = elapsed.as_millis() as u64, "request failed");
    }
    res
}

/// `GET /metrics`: Prometheus text exposition. Realtime counters live in atomics (cheap on
/// the hot path) and are copied into the registry here, at scrape time.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let s = state.realtime.snapshot();
    metrics::gauge!("picloud_realtime_connections").set(s.connections as f64);
    metrics::gauge!("picloud_realtime_subscribers").set(s.subscribers as f64);
    metrics::gauge!("picloud_realtime_topics_with_subscribers")
        .set(s.topics_with_subscribers as f64);
    for (kind, n) in [
        ("durable", s.published_durable),
        ("ephemeral", s.published_ephemeral),
    ] {
        metrics::counter!("picloud_realtime_published_total", "kind" => kind).absolute(n);
    }
    metrics::counter!("picloud_realtime_frames_sent_total").absolute(s.frames_sent);
    metrics::counter!("picloud_realtime_gap_repairs_total").absolute(s.gap_repairs);
    metrics::counter!("picloud_realtime_resyncs_total").absolute(s.resyncs);
    metrics::counter!("picloud_realtime_slow_consumer_disconnects_total")
        .absolute(s.slow_consumer_disconnects);
    metrics::counter!("picloud_realtime_token_expirations_total").absolute(s.token_expirations);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}
