//! `/healthz` (the process is alive) and `/readyz` (the database answers and is migrated).
//! Both answer on every Host so that load balancers probing by IP get an answer.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Readiness must answer fast even when the database hangs rather than refuses.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// `/readyz`'s answer while the node can serve.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, or `storage_full` while durable writes are refused for lack of space
    /// (reads, ephemeral publishes and streams still work, so the node stays in service).
    pub status: &'static str,
    /// `ok` or `full`.
    pub storage: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Database reachable and migrated; `storage` says whether it has space for writes", body = Readiness),
        (status = 503, description = "Database unreachable or not migrated", body = crate::error::ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Readiness>> {
    match tokio::time::timeout(READY_TIMEOUT, state.store.readiness()).await {
        Ok(Ok(())) if state.store.storage_full() => Ok(Json(Readiness {
            status: "storage_full",
            storage: "full",
        })),
        Ok(Ok(())) => Ok(Json(Readiness {
            status: "ready",
            storage: "ok",
        })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database is unreachable or not migrated",
            ))
        }
        Err(_) => {
            tracing::warn!("not ready: database did not answer in time");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database did not answer in time",
            ))
        }
    }
}

#[utoipa::path(get, path = "/health/realtime", tag = "health",
    responses((status = 200, description = "Realtime counters of this node", body = RealtimeHealth)))]
pub async fn realtime(State(state): State<AppState>) -> Json<picloud_realtime::Snapshot> {
    Json(state.realtime.snapshot())
}

/// `/health/realtime`: this node's realtime counters.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the shape of `picloud_realtime::Snapshot`
pub struct RealtimeHealth {
    /// Open SSE connections.
    pub connections: i64,
    /// Topic subscriptions across connections.
    pub subscribers: i64,
    pub topics_with_subscribers: u64,
    pub published_durable: u64,
    pub published_ephemeral: u64,
    pub frames_sent: u64,
    pub gap_repairs: u64,
    pub resyncs: u64,
    pub slow_consumer_disconnects: u64,
    pub token_expirations: u64,
    /// `PICLOUD_NODE_ID`, in a cluster.
    pub node_id: Option<String>,
    /// `off` (one node), `live` (the relay's probes come back) or `stale` (they do not:
    /// this node polls the database every second).
    pub relay: String,
    /// Relay frames sent, received from other nodes, and dropped (not sent, or missed).
    pub relay_sent: u64,
    pub relay_received: u64,
    pub relay_dropped: u64,
    /// Gaps this node read from history once for all local subscribers of a topic.
    pub relay_repairs: u64,
    /// Batched reads of every watched topic's committed end (cluster mode).
    pub position_checks: u64,
}
