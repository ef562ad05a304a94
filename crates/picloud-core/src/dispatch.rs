//! The outbox as the dispatcher sees it: claimed deliveries, dead letters, invocation
//! records and per-app runtime settings.

/// A delivery claimed by one dispatcher under a lease. `attempt` counts this run (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Stable across retries and re-runs: scripts use it to be idempotent.
    pub id: i64,
    pub app_id: crate::ids::AppId,
    pub trigger_id: String,
    pub event: serde_json::Value,
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: String,
    pub trigger_id: String,
    pub event: serde_json::Value,
    pub attempts: u32,
    pub last_error: String,
    pub created_at: i64,
    pub replayed_at: Option<i64>,
}

/// One script run, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub id: i64,
    pub script: String,
    pub version: i64,
    /// `route:GET /items/:id` or `trigger:<id>`.
    pub source: String,
    pub delivery_id: Option<String>,
    pub started_at: i64,
    pub duration_us: i64,
    pub operations: i64,
    /// `ok` or `error`.
    pub outcome: String,
    pub error: Option<String>,
    /// JSON array of log lines.
    pub logs: serde_json::Value,
}

/// Per-app runtime settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AppRuntime {
    /// Overrides of the default script limits (a JSON object, validated by the runtime).
    pub limits: serde_json::Value,
    /// Script runs of this app at once on one node (endpoints and deliveries).
    pub max_concurrency: u32,
}

/// The most runs at once an app's own keys may give it: half of the node's script threads,
/// so one app never holds them all. Only an `InstanceAdmin` key sets more (up to
/// [`MAX_CONCURRENCY`]).
pub const APP_CONCURRENCY_CAP: u32 = 16;
/// The most runs at once any app may have.
pub const MAX_CONCURRENCY: u32 = 1024;

impl Default for AppRuntime {
    fn default() -> Self {
        Self {
            limits: serde_json::json!({}),
            max_concurrency: 16,
        }
    }
}
