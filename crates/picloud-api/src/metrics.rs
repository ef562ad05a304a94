//! Prometheus metrics: the process-wide recorder and its upkeep, route labels and request
//! metrics for [`crate::service::HttpService`], and `/metrics`.
//!
//! Route labels are route *patterns* (`/api/v1/apps/{app}`), never raw paths, so a tenant's
//! URLs or a scanner cannot blow up label cardinality. Data-plane streams are labelled
//! `app:/realtime…`, script endpoints `app:script` (or `app:/`), static files `app:static`; requests that match
//! nothing, `unmatched`.

use std::collections::HashSet;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

pub const REQUESTS: &str = "picloud_http_requests_total";
pub const DURATION: &str = "picloud_http_request_duration_seconds";

/// How often histogram samples are folded into their buckets. The recorder buffers every
/// sample until then; without this, a server nobody scrapes grows by every request.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The route label a script endpoint's response carries out to [`crate::service`] (tenant
/// route patterns are not ours to label by; they all share one label).
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
                .set_buckets_for_metric(
                    Matcher::Full(picloud_realtime::BATCH_HISTOGRAM.to_owned()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
                )
                .expect("valid buckets")
                .set_buckets_for_metric(
                    Matcher::Full(picloud_realtime::COMMIT_HISTOGRAM.to_owned()),
                    &[
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 1.0,
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
            metrics::describe_counter!(
                crate::server::CONNECTIONS_REFUSED,
                "Connections closed at accept because the maximum were open"
            );
            metrics::describe_gauge!(
                "picloud_storage_full",
                "1 while the database refuses writes for lack of space (docs/operations.md)"
            );
            metrics::describe_gauge!(
                "picloud_runtime_alive_tasks",
                "Tasks alive in the server's tokio runtime"
            );
            metrics::gauge!("picloud_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// Labels a response that no axum route matched (script endpoints). Tenant route patterns
/// are tenants' input, so every script endpoint shares one label: the series count stays
/// bounded however many routes tenants create.
pub fn label_response(res: &mut Response, label: &'static str) {
    res.extensions_mut().insert(RouteLabel(label));
}

/// Standard methods by name; anything else (clients may send any token) is `other`, so a
/// client cannot mint label values (series, interned strings) at will.
pub(crate) fn method_label(method: &Method) -> &'static str {
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

/// Folds buffered histogram samples into buckets every few seconds, for as long as the
/// returned task runs (the recorder is process-wide; one task per server is harmless).
pub fn spawn_upkeep() -> tokio::task::JoinHandle<()> {
    let handle = handle();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

/// Route labels without a layer on every route: the admin plane's patterns matched again
/// by path, with the same matcher axum routes with (matchit), which costs less than
/// carrying `MatchedPath` out of the router. Data-plane streams are `app:`-prefixed;
/// script endpoints label their own responses ([`label_response`]).
pub struct RouteLabels {
    admin: matchit::Router<&'static str>,
    data: matchit::Router<&'static str>,
    publish: &'static str,
}

/// The one-message publish's route, labelled without a match (`routes::publish::PublishCall`).
const PUBLISH_ROUTE: &str = "/api/v1/apps/{app}/topics/{topic}/publish";

impl RouteLabels {
    /// `admin`: every route pattern of the control plane.
    pub fn new<'a>(admin: impl IntoIterator<Item = &'a str>) -> Self {
        let mut labels = Self {
            admin: matchit::Router::new(),
            data: matchit::Router::new(),
            publish: intern(PUBLISH_ROUTE),
        };
        for pattern in admin {
            // A pattern listed twice (several methods) is already in.
            let _ = labels.admin.insert(pattern, intern(pattern));
        }
        for pattern in ["/realtime", "/realtime/topics/{topic}"] {
            let label = intern(&format!("app:{pattern}"));
            labels.data.insert(pattern, label).expect("fixed patterns");
        }
        labels
    }

    pub fn health(&self, path: &str) -> &'static str {
        match path {
            "/healthz" => "/healthz",
            "/readyz" => "/readyz",
            _ => "unmatched",
        }
    }

    /// The label of `POST /api/v1/apps/{app}/topics/{topic}/publish`: the one
    /// [`Self::admin`] gives its paths.
    pub fn publish(&self) -> &'static str {
        self.publish
    }

    pub fn admin(&self, path: &str) -> &'static str {
        self.admin.at(path).map_or("unmatched", |m| *m.value)
    }

    pub fn data(&self, path: &str) -> &'static str {
        self.data.at(path).map_or("unmatched", |m| *m.value)
    }
}

/// Request count and latency, with each label set's handles looked up in the recorder once
/// and kept: `counter!` with labels builds and hashes a key (and allocates) per call.
/// Labels are `&'static str` from a bounded set, so their addresses make the keys.
#[derive(Default)]
pub struct RequestMetrics {
    /// hashbrown's hasher (foldhash): looked up on every request, with keys the server
    /// makes (label addresses and a status), where std's SipHash buys nothing.
    handles: RwLock<hashbrown::HashMap<LabelSet, (Counter, Histogram)>>,
}

/// (route, method, status): the addresses of the two labels, and the status code.
type LabelSet = (usize, usize, u16);

impl RequestMetrics {
    pub fn record(
        &self,
        route: &'static str,
        method: &'static str,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let key = (
            route.as_ptr() as usize,
            method.as_ptr() as usize,
            status.as_u16(),
        );
        let secs = elapsed.as_secs_f64();
        if let Some((count, latency)) = self.handles.read().expect("metrics lock").get(&key) {
            count.increment(1);
            latency.record(secs);
            return;
        }
        let count = metrics::counter!(REQUESTS, "route" => route, "method" => method, "status" => intern(status.as_str()));
        let latency = metrics::histogram!(DURATION, "route" => route);
        count.increment(1);
        latency.record(secs);
        self.handles
            .write()
            .expect("metrics lock")
            .insert(key, (count, latency));
    }
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
    if s.node_id.is_some() {
        for (dir, n) in [
            ("sent", s.relay_sent),
            ("received", s.relay_received),
            ("dropped", s.relay_dropped),
        ] {
            metrics::counter!("picloud_relay_frames_total", "dir" => dir).absolute(n);
        }
        metrics::counter!("picloud_relay_repairs_total").absolute(s.relay_repairs);
        metrics::counter!("picloud_relay_position_checks_total").absolute(s.position_checks);
        let live = s.relay == picloud_realtime::cluster::RelayState::Live;
        metrics::gauge!("picloud_relay_live").set(f64::from(u8::from(live)));
    }
    metrics::gauge!("picloud_storage_full").set(f64::from(u8::from(state.store.storage_full())));
    // A task that outlives its connection or request is a leak no other figure shows;
    // the churn and soak tests watch this one return to its baseline.
    metrics::gauge!("picloud_runtime_alive_tasks").set(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks() as f64,
    );
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}
