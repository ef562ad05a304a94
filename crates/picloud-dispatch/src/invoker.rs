//! Runs a script for an app: finds the active version (compiled once, cached briefly),
//! applies the app's limits and concurrency cap, runs it on a script thread (`pool.rs`) with the
//! SDK bound to the app, and records the invocation.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use picloud_core::dispatch::Invocation;
use picloud_core::ids::AppId;
use picloud_core::script::ScriptName;
use picloud_core::StoreError;
use picloud_runtime::{Input, Limits, Outcome, Script};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::host::{AppHost, HostDeps};
use crate::recorder::Recorder;

#[derive(Clone, Debug)]
pub struct InvokerConfig {
    /// How long a resolved (script → active version) or an app's settings may be served
    /// from cache. Changes through this node invalidate at once; this bounds how long
    /// another node's deploy or rollback takes to be seen here.
    pub cache_ttl: Duration,
    /// How long an endpoint request waits for one of its app's run slots before 503.
    pub endpoint_wait: Duration,
    /// Threads that run scripts (endpoints and deliveries). Runs beyond this many wait
    /// in a queue; scripts mostly compute or wait briefly on the database.
    pub script_threads: usize,
}

impl Default for InvokerConfig {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(2),
            endpoint_wait: Duration::from_secs(2),
            script_threads: 32,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    #[error("script {0:?} is not deployed")]
    NoScript(String),
    #[error("the app's run slots are all busy")]
    Busy,
    #[error("the app's runtime settings are invalid: {0}")]
    Settings(String),
    #[error("stored script does not compile: {0}")]
    Compile(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the server is shutting down")]
    Stopped,
}

/// What the caches that load once for many waiters hand each waiter.
impl From<Arc<InvokeError>> for InvokeError {
    fn from(e: Arc<InvokeError>) -> Self {
        Arc::unwrap_or_clone(e)
    }
}

/// A finished run.
pub struct Ran {
    pub outcome: Outcome,
    /// A store call of the run was refused because the database is full.
    pub storage_full: bool,
    /// What the app's invocation log records of the run, the script's version included (its
    /// id is assigned when it is written, after the run).
    pub record: Invocation,
}

struct Compiled {
    version: i64,
    script: Script,
    /// What it was compiled under: the expression depth and literal sizes are checked at
    /// compile time, so new app limits mean a new compile.
    limits: Limits,
}

struct Settings {
    limits: Limits,
    slots: Arc<Semaphore>,
}

/// Metric handles, resolved on the first run (a registry lookup per run shows up at
/// endpoint rates; resolving at construction could predate the exporter's install).
struct RunMetrics {
    ok: metrics::Counter,
    failed: metrics::Counter,
    seconds: metrics::Histogram,
}

impl RunMetrics {
    fn new() -> Self {
        Self {
            ok: metrics::counter!("picloud_script_runs_total", "outcome" => "ok"),
            failed: metrics::counter!("picloud_script_runs_total", "outcome" => "error"),
            seconds: metrics::histogram!("picloud_script_run_seconds"),
        }
    }
}

#[derive(Clone)]
pub struct Invoker(Arc<Inner>);

struct Inner {
    deps: Arc<HostDeps>,
    config: InvokerConfig,
    metrics: std::sync::OnceLock<RunMetrics>,
    pool: crate::pool::ScriptPool,
    scripts: Cache<(AppId, ScriptName), Arc<Compiled>>,
    settings: Cache<AppId, Arc<Settings>>,
    recorder: Recorder,
    /// Set at shutdown once the grace period is over: running scripts stop.
    cancel: Arc<AtomicBool>,
}

impl Invoker {
    pub fn new(deps: HostDeps, config: InvokerConfig) -> Self {
        let recorder = Recorder::start(deps.store.clone());
        let pool = crate::pool::ScriptPool::new(
            config.script_threads,
            picloud_runtime::RECOMMENDED_STACK_BYTES,
        )
        .expect("starting script threads");
        Self(Arc::new(Inner {
            scripts: Cache::builder()
                .time_to_live(config.cache_ttl)
                .max_capacity(10_000)
                .build(),
            settings: Cache::builder()
                .time_to_live(config.cache_ttl)
                .max_capacity(10_000)
                .build(),
            deps: Arc::new(deps),
            config,
            recorder,
            metrics: std::sync::OnceLock::new(),
            pool,
            cancel: Arc::new(AtomicBool::new(false)),
        }))
    }

    pub fn deps(&self) -> &HostDeps {
        &self.0.deps
    }

    /// A deploy or rollback through this node.
    pub async fn script_changed(&self, app: &AppId, name: &ScriptName) {
        self.0
            .scripts
            .invalidate(&(app.clone(), name.clone()))
            .await;
    }

    /// Limits or concurrency changed through this node.
    pub async fn settings_changed(&self, app: &AppId) {
        self.0.settings.invalidate(app).await;
    }

    /// Stops running scripts (they fail with "cancelled: server shutting down").
    pub fn cancel_running(&self) {
        self.0
            .cancel
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Runs `script` for `app`. `wait`: how long to wait for a run slot (`None`: as long
    /// as it takes, for background deliveries). `source` labels the invocation record.
    pub async fn invoke(
        &self,
        app: &AppId,
        script: &ScriptName,
        source: String,
        input: Input,
        delivery_id: Option<i64>,
        wait: Option<Duration>,
    ) -> Result<Ran, InvokeError> {
        let settings = self.settings(app).await?;
        let compiled = self.compiled(app, script, &settings.limits).await?;
        let _permit = acquire(&settings.slots, wait).await?;
        let started_at = chrono::Utc::now().timestamp_millis();
        let started = Instant::now();
        let host = Arc::new(AppHost::new(
            app.clone(),
            self.0.deps.clone(),
            tokio::runtime::Handle::current(),
        ));
        let (limits, cancel) = (settings.limits.clone(), self.0.cancel.clone());
        let c = compiled.clone();
        let run_host = host.clone();
        let outcome = self
            .0
            .pool
            .run(app.as_str(), move || {
                picloud_runtime::run_with_cancel(&c.script, input, run_host, &limits, &cancel)
            })
            .await
            .ok_or(InvokeError::Stopped)?;
        let ok = outcome.result.is_ok();
        let m = self.0.metrics.get_or_init(RunMetrics::new);
        if ok { &m.ok } else { &m.failed }.increment(1);
        m.seconds.record(started.elapsed().as_secs_f64());
        let record = Invocation {
            id: 0,
            script: script.to_string(),
            version: compiled.version,
            source,
            delivery_id: delivery_id.map(|d| d.to_string()),
            started_at,
            duration_us: outcome.duration.as_micros() as i64,
            operations: outcome.operations as i64,
            outcome: if ok { "ok" } else { "error" }.into(),
            error: outcome
                .result
                .as_ref()
                .err()
                .map(|e| format!("{:?}: {}", e.kind, e.message)),
            logs: serde_json::to_value(&outcome.logs).unwrap_or_default(),
        };
        self.0.recorder.record(app.clone(), record.clone()).await;
        Ok(Ran {
            outcome,
            storage_full: host.hit_storage_full(),
            record,
        })
    }

    /// The app's active version, compiled under the app's limits (as its deploy was
    /// checked). Loaded once for all concurrent callers (a cold script under load is
    /// fetched and compiled once, not once per request).
    async fn compiled(
        &self,
        app: &AppId,
        name: &ScriptName,
        limits: &Limits,
    ) -> Result<Arc<Compiled>, InvokeError> {
        let key = (app.clone(), name.clone());
        if let Some(c) = self.0.scripts.get(&key).await {
            if c.limits == *limits {
                return Ok(c);
            }
            self.0.scripts.invalidate(&key).await;
        }
        let load = async {
            let v = self
                .0
                .deps
                .store
                .get_script_version(app, name, None)
                .await?
                .ok_or_else(|| InvokeError::NoScript(name.to_string()))?;
            let script = picloud_runtime::compile_with_limits(&v.source, limits)
                .map_err(|e| InvokeError::Compile(e.to_string()))?;
            Ok(Arc::new(Compiled {
                version: v.version,
                script,
                limits: limits.clone(),
            }))
        };
        self.0
            .scripts
            .try_get_with(key, load)
            .await
            .map_err(InvokeError::from)
    }

    /// The app's limits and run slots. Loaded once for all concurrent callers: two loads
    /// would make two semaphores, and the app's concurrency cap would briefly double.
    async fn settings(&self, app: &AppId) -> Result<Arc<Settings>, InvokeError> {
        let load = async {
            let rt = self.0.deps.store.get_runtime(app).await?;
            let limits = Limits::from_overrides(&rt.limits).map_err(InvokeError::Settings)?;
            Ok(Arc::new(Settings {
                limits,
                slots: Arc::new(Semaphore::new(rt.max_concurrency.max(1) as usize)),
            }))
        };
        self.0
            .settings
            .try_get_with(app.clone(), load)
            .await
            .map_err(InvokeError::from)
    }

    pub fn endpoint_wait(&self) -> Duration {
        self.0.config.endpoint_wait
    }

    /// Waits until every queued invocation record is written (tests, shutdown).
    pub async fn flush_records(&self) {
        self.0.recorder.flush().await;
    }
}

async fn acquire(
    slots: &Arc<Semaphore>,
    wait: Option<Duration>,
) -> Result<OwnedSemaphorePermit, InvokeError> {
    let fut = slots.clone().acquire_owned();
    match wait {
        None => fut.await.map_err(|_| InvokeError::Stopped),
        Some(d) => match tokio::time::timeout(d, fut).await {
            Ok(p) => p.map_err(|_| InvokeError::Stopped),
            Err(_) => Err(InvokeError::Busy),
        },
    }
}
