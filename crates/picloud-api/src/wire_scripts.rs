//! JSON wire types of the script side of the admin API: scripts, routes, triggers, env,
//! runtime settings, dead letters, invocation logs.

use chrono::{DateTime, Utc};
use picloud_core::data::StaticFile;
use picloud_core::dispatch::{DeadLetter, Invocation};
use picloud_core::script::{Route, ScriptInfo, ScriptVersion};
use picloud_core::trigger::Trigger;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployScript {
    /// `[A-Za-z0-9_.-]`, 1–64 characters.
    pub name: String,
    /// Rhai source, at most 256 KiB.
    pub source: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeployedScript {
    pub name: String,
    pub version: i64,
}

/// A compile error: where and why.
#[derive(Serialize, ToSchema)]
pub struct CompileErrorBody {
    pub error: CompileErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct CompileErrorDetail {
    /// `compile_error`; other refusals (`invalid_field`: the name) carry no position.
    pub code: &'static str,
    pub message: String,
    /// Present for `compile_error`.
    #[schema(required = false)]
    pub line: usize,
    /// Present for `compile_error`.
    #[schema(required = false)]
    pub column: usize,
}

#[derive(Deserialize, ToSchema)]
pub struct CheckScript {
    /// Rhai source.
    pub source: String,
}

/// What a deploy of the source would refuse; empty when it would deploy.
#[derive(Serialize, ToSchema)]
pub struct ScriptCheck {
    pub diagnostics: Vec<DiagnosticBody>,
}

#[derive(Serialize, ToSchema)]
pub struct DiagnosticBody {
    /// 1-based; 0 when the problem has no position.
    pub line: usize,
    /// 1-based; 0 when the problem has no position.
    pub column: usize,
    pub message: String,
    pub severity: SeverityBody,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeverityBody {
    /// A deploy would refuse the script.
    Error,
}

impl From<picloud_runtime::Diagnostic> for DiagnosticBody {
    fn from(d: picloud_runtime::Diagnostic) -> Self {
        Self {
            line: d.line,
            column: d.column,
            message: d.message,
            severity: match d.severity {
                picloud_runtime::Severity::Error => SeverityBody::Error,
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ScriptBody {
    pub name: String,
    pub active_version: i64,
    pub latest_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ScriptInfo> for ScriptBody {
    fn from(s: ScriptInfo) -> Self {
        Self {
            name: s.name.to_string(),
            active_version: s.active_version,
            latest_version: s.latest_version,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ScriptList {
    pub scripts: Vec<ScriptBody>,
}

#[derive(Serialize, ToSchema)]
pub struct ScriptVersionBody {
    pub name: String,
    pub version: i64,
    pub source: String,
    pub created_at: DateTime<Utc>,
}

impl From<ScriptVersion> for ScriptVersionBody {
    fn from(v: ScriptVersion) -> Self {
        Self {
            name: v.name.to_string(),
            version: v.version,
            source: v.source,
            created_at: v.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ScriptDetail {
    #[serde(flatten)]
    pub script: ScriptBody,
    /// Every version, oldest first.
    pub versions: Vec<ScriptVersionBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The version to make active.
    pub version: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoute {
    /// GET, POST, PUT, PATCH, DELETE or ANY.
    pub method: String,
    /// `/items/:id`: literal segments and `:params`.
    pub path: String,
    /// The script's name.
    pub script: String,
}

#[derive(Serialize, ToSchema)]
pub struct RouteBody {
    pub id: String,
    pub method: String,
    pub path: String,
    pub script: String,
    pub created_at: DateTime<Utc>,
}

impl From<Route> for RouteBody {
    fn from(r: Route) -> Self {
        Self {
            id: r.id,
            method: r.method.as_str().to_owned(),
            path: r.path.as_str().to_owned(),
            script: r.script.to_string(),
            created_at: r.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RouteList {
    pub routes: Vec<RouteBody>,
}

#[derive(Serialize, Deserialize, ToSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    pub max_attempts: u32,
    pub base_delay_ms: i64,
    pub max_delay_ms: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTrigger {
    /// kv, docs, files, cron, pubsub or dead_letter.
    pub kind: String,
    pub script: String,
    /// By kind: kv `{"prefix"}`, docs `{"collection"}`, files `{"prefix"}`, cron
    /// `{"schedule"}`, pubsub `{"topic"}` (`prefix.*` allowed), dead_letter `{"trigger"?}`.
    #[schema(value_type = Object)]
    pub filter: Option<serde_json::Value>,
    pub enabled: Option<bool>,
    pub retry: Option<RetryBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTrigger {
    pub script: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    pub enabled: Option<bool>,
    pub retry: Option<RetryBody>,
}

#[derive(Serialize, ToSchema)]
pub struct TriggerBody {
    pub id: String,
    pub kind: String,
    pub script: String,
    #[schema(value_type = Object)]
    pub filter: serde_json::Value,
    pub enabled: bool,
    pub retry: RetryBody,
    pub created_at: DateTime<Utc>,
}

impl From<Trigger> for TriggerBody {
    fn from(t: Trigger) -> Self {
        Self {
            kind: t.filter.kind().as_str().to_owned(),
            filter: t.filter.to_json(),
            id: t.id,
            script: t.script.to_string(),
            enabled: t.enabled,
            retry: RetryBody {
                max_attempts: t.retry.max_attempts,
                base_delay_ms: t.retry.base_delay_ms,
                max_delay_ms: t.retry.max_delay_ms,
            },
            created_at: t.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TriggerList {
    pub triggers: Vec<TriggerBody>,
}

#[derive(Serialize, ToSchema)]
pub struct DeadLetterBody {
    pub id: String,
    pub trigger: String,
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    pub attempts: u32,
    pub last_error: String,
    pub created_at: DateTime<Utc>,
    pub replayed_at: Option<DateTime<Utc>>,
}

fn ms(at: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at).unwrap_or_default()
}

impl From<DeadLetter> for DeadLetterBody {
    fn from(d: DeadLetter) -> Self {
        Self {
            id: d.id,
            trigger: d.trigger_id,
            event: d.event,
            attempts: d.attempts,
            last_error: d.last_error,
            created_at: ms(d.created_at),
            replayed_at: d.replayed_at.map(ms),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetterBody>,
}

#[derive(Serialize, ToSchema)]
pub struct Replayed {
    /// The new delivery's id (its `event.delivery_id`).
    pub delivery_id: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeBody {
    /// Overrides of the script limits: `max_operations`, `max_call_depth`,
    /// `max_expr_depth`, `max_string_bytes`, `max_array_len`, `max_map_len`,
    /// `timeout_ms`, `max_log_lines`.
    #[schema(value_type = Object)]
    pub limits: serde_json::Value,
    /// Script runs of this app at once on one node.
    pub max_concurrency: u32,
    /// The limits in effect (defaults merged with the overrides). Ignored on input (read,
    /// not skipped: utoipa leaves a `skip_deserializing` field out of the document).
    #[serde(default)]
    #[schema(value_type = Object, read_only)]
    pub effective_limits: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct EnvList {
    /// Name → value.
    #[schema(value_type = Object)]
    pub env: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvValue {
    pub value: String,
}

#[derive(Serialize, ToSchema)]
pub struct InvocationBody {
    /// 0 in a try's answer: the stored record gets its id when it is written, just after.
    pub id: i64,
    pub script: String,
    pub version: i64,
    /// `route:GET /items/:id` or `trigger:<id>`.
    pub source: String,
    pub delivery_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub duration_us: i64,
    pub operations: i64,
    /// `ok` or `error`.
    pub outcome: String,
    pub error: Option<String>,
    /// `[{level, message, at_ms}]`
    #[schema(value_type = Vec<Object>)]
    pub logs: serde_json::Value,
}

impl From<Invocation> for InvocationBody {
    fn from(i: Invocation) -> Self {
        Self {
            id: i.id,
            script: i.script,
            version: i.version,
            source: i.source,
            delivery_id: i.delivery_id,
            started_at: ms(i.started_at),
            duration_us: i.duration_us,
            operations: i.operations,
            outcome: i.outcome,
            error: i.error,
            logs: i.logs,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeadLetterCount {
    /// Dead letters not replayed yet.
    pub waiting: u64,
}

#[derive(Serialize, ToSchema)]
pub struct InvocationList {
    pub invocations: Vec<InvocationBody>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Records older than this id.
    pub before: Option<i64>,
}

/// A request to send to the app's script endpoints, as a client on its Host would.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TryRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// Starts with `/`; no query.
    pub path: String,
    /// The query string, without `?` (`a=1&b=2`).
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The request body as text.
    #[serde(default)]
    pub body: String,
}

/// What the app answered, and the record of the script run it caused.
#[derive(Serialize, ToSchema)]
pub struct TryResponse {
    pub status: u16,
    /// `[name, value]` pairs, in order.
    #[schema(value_type = Vec<Vec<String>>)]
    pub headers: Vec<(String, String)>,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
    /// Absent when no script ran (no route matched, or the app was busy).
    pub invocation: Option<InvocationBody>,
}

/// A file of the app's static site.
#[derive(Serialize, ToSchema)]
pub struct StaticFileBody {
    pub path: String,
    pub size: u64,
    /// Hex SHA-256 of the bytes (the served `ETag` is its first 32 characters).
    pub sha256: String,
    /// From the extension.
    pub content_type: String,
    /// Whether gzip and brotli variants are stored (only when smaller).
    pub gzip: bool,
    pub brotli: bool,
    pub updated_at: DateTime<Utc>,
}

impl From<StaticFile> for StaticFileBody {
    fn from(f: StaticFile) -> Self {
        Self {
            path: f.path.as_str().to_owned(),
            size: f.size,
            sha256: f.etag,
            content_type: f.content_type,
            gzip: f.gzip_blob.is_some(),
            brotli: f.br_blob.is_some(),
            updated_at: ms(f.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StaticFileList {
    /// By path.
    pub files: Vec<StaticFileBody>,
    pub total_bytes: u64,
    /// Most bytes the app's static files may hold (`PICLOUD_STATIC_QUOTA_BYTES`).
    pub quota_bytes: u64,
}
