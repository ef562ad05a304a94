//! `/api/v1/instance` and `/api/v1/stats/stream`: what the dashboard's overview shows.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use picloud_core::capability::Capability;
use picloud_realtime::frame;
use serde::Serialize;
use utoipa::ToSchema;

use crate::activity::{AppActivity, StatsSample, Tick, INTERVAL};
use crate::auth::AdminAuth;
use crate::error::ErrorBody;
use crate::json::ApiJson;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct InstanceBody {
    pub version: &'static str,
    /// When this node started.
    pub started_at: DateTime<Utc>,
    pub uptime_secs: u64,
}

/// The stats stream's first event (`event: history`).
#[derive(Serialize, ToSchema)]
pub struct StatsHistory {
    pub interval_ms: u64,
    /// The last five minutes, oldest first.
    pub samples: Vec<StatsSample>,
}

/// Each later event (`event: stats`).
#[derive(Serialize, ToSchema)]
pub struct StatsFrame {
    pub sample: StatsSample,
    /// The apps the key may read, ordered by slug.
    pub apps: Vec<AppActivity>,
}

#[utoipa::path(get, path = "/api/v1/instance", tag = "health",
    security(("admin_key" = [])),
    responses((status = 200, body = InstanceBody), (status = 401, body = ErrorBody)))]
pub async fn instance(_auth: AdminAuth, State(state): State<AppState>) -> ApiJson<InstanceBody> {
    ApiJson(InstanceBody {
        version: env!("CARGO_PKG_VERSION"),
        started_at: state.activity.started_at,
        uptime_secs: state.activity.uptime().as_secs(),
    })
}

/// This node's activity, live: `event: history` (a [`StatsHistory`]) once, then
/// `event: stats` (a [`StatsFrame`]) every second, until the server shuts down or the key
/// is revoked.
#[utoipa::path(get, path = "/api/v1/stats/stream", tag = "health",
    security(("admin_key" = [])),
    responses(
        (status = 200, content_type = "text/event-stream",
            description = "`event: history` with a StatsHistory as its data, then `event: stats` with a StatsFrame every second",
            body = crate::wire::ServerSentEvent),
        (status = 401, body = ErrorBody)))]
pub async fn stats_stream(auth: AdminAuth, State(state): State<AppState>) -> Response {
    let history = StatsHistory {
        interval_ms: INTERVAL.as_millis() as u64,
        samples: state.activity.history(),
    };
    let first = event("history", &history);
    let rx = state.activity.watch();
    let shutdown = state.realtime.shutdown.clone();
    let revoked = state.key_revocations.of(&auth.key.id);
    let visible = Visible::of(&auth);
    let ticks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let tick = rx.borrow_and_update().clone();
        Some((tick, rx))
    })
    .map(move |tick| event("stats", &visible.frame(&tick)))
    .take_until(async move {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = revoked.cancelled() => {}
        }
    });
    let body = futures_util::stream::once(async { first })
        .chain(ticks)
        .map(Ok::<Bytes, std::convert::Infallible>);
    picloud_realtime::sse::sse_response(Body::from_stream(body))
}

fn event(name: &str, data: &impl Serialize) -> Bytes {
    frame::event(name, &serde_json::to_value(data).expect("serialisable"))
}

/// Which apps' rows a key sees: its own app when bound, every app when it may read apps,
/// none otherwise.
enum Visible {
    All,
    One(String),
    None,
}

impl Visible {
    fn of(auth: &AdminAuth) -> Self {
        let reads = [Capability::AppRead, Capability::AppTopicManage]
            .iter()
            .any(|c| auth.key.has(*c));
        match (&auth.key.app_id, reads) {
            (_, false) => Visible::None,
            (Some(app), true) => Visible::One(app.0.clone()),
            (None, true) => Visible::All,
        }
    }

    fn frame(&self, tick: &Arc<Tick>) -> StatsFrame {
        let apps = match self {
            Visible::All => tick.apps.to_vec(),
            Visible::One(id) => tick.apps.iter().filter(|a| &a.id == id).cloned().collect(),
            Visible::None => Vec::new(),
        };
        StatsFrame {
            sample: tick.sample.clone(),
            apps,
        }
    }
}
