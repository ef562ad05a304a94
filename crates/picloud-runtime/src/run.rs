//! Running a compiled script once, under limits, against a host.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::cell::RefCell;

use rhai::{Dynamic, Engine, Scope};

use crate::compile::Script;
use crate::engine::{apply_limits, hardened_engine};
use crate::error::{classify, ErrorKind, RunError, CANCELLED, TIMED_OUT};
use crate::guard::SizeGuard;
use crate::host::Host;
use crate::limits::Limits;
use crate::log::{LogLevel, LogLine, LogSink};
use crate::sdk;
use crate::value::{dynamic_to_json_checked, json_to_dynamic};

/// Reading the clock costs more than a cheap operation, so the deadline is
/// checked every this many operations; the overshoot is negligible.
const DEADLINE_CHECK_INTERVAL: u64 = 16;

/// Stack the thread calling [`run`] should have. Rhai evaluates recursively,
/// and although the call-depth, expression-depth and nesting limits keep
/// that bounded, the bound at the hard caps (call depth 256, expression
/// depth 256) needed about 8.5 MiB in release builds in our measurements;
/// the default limits need under 1 MiB. A stack overflow aborts the whole
/// process, so size the blocking pool with this (tokio:
/// `runtime::Builder::thread_stack_size`).
pub const RECOMMENDED_STACK_BYTES: usize = 16 * 1024 * 1024;

/// What the script is handling; bound as the variable `request` or `event`.
#[derive(Debug, Clone)]
pub enum Input {
    Request(serde_json::Value),
    Event(serde_json::Value),
}

impl Input {
    fn into_variable(self) -> (&'static str, Dynamic) {
        match self {
            Input::Request(value) => ("request", json_to_dynamic(&value)),
            Input::Event(value) => ("event", json_to_dynamic(&value)),
        }
    }
}

#[derive(Debug)]
pub struct Outcome {
    /// The value of the script's last expression, as JSON.
    pub result: Result<serde_json::Value, RunError>,
    /// Operations the run used (Rhai's count, as seen by the limit check).
    pub operations: u64,
    pub logs: Vec<LogLine>,
    pub duration: Duration,
}

/// Runs `script` to completion or until a limit stops it. Never panics.
///
/// Blocks the calling thread for up to `limits.timeout_ms` plus the duration
/// of any host call in flight, so call it from a blocking thread.
pub fn run(script: &Script, input: Input, host: Arc<dyn Host>, limits: &Limits) -> Outcome {
    run_inner(script, input, host, limits, None)
}

/// Like [`run`], but also stops (with [`ErrorKind::TimeLimit`] and the message
/// "cancelled: server shutting down") once `cancel` is set.
///
/// Takes an `Arc` because Rhai requires the progress callback to be
/// `'static`, so it cannot hold a borrowed flag.
pub fn run_with_cancel(
    script: &Script,
    input: Input,
    host: Arc<dyn Host>,
    limits: &Limits,
    cancel: &Arc<AtomicBool>,
) -> Outcome {
    run_inner(script, input, host, limits, Some(cancel.clone()))
}

fn run_inner(
    script: &Script,
    input: Input,
    host: Arc<dyn Host>,
    limits: &Limits,
    cancel: Option<Arc<AtomicBool>>,
) -> Outcome {
    let started = Instant::now();
    let operations = Arc::new(AtomicU64::new(0));
    let logs = Arc::new(LogSink::new(limits.max_log_lines));

    // A panic in a host method or in Rhai must cost one request, not the
    // worker thread. Everything the closure touches is dropped or only read
    // afterwards (the counter and the poison-tolerant log sink).
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let run = Run {
            started,
            limits,
            operations: operations.clone(),
            logs: logs.clone(),
            cancel,
        };
        run.evaluate(script, input, host)
    }))
    .unwrap_or_else(|_| {
        Err(RunError::new(
            ErrorKind::Panic,
            "internal error: the script runtime panicked",
        ))
    });

    Outcome {
        result,
        operations: operations.load(Ordering::Relaxed),
        logs: logs.take(),
        duration: started.elapsed(),
    }
}

struct Run<'a> {
    started: Instant,
    limits: &'a Limits,
    operations: Arc<AtomicU64>,
    logs: Arc<LogSink>,
    cancel: Option<Arc<AtomicBool>>,
}

/// What the engine's hooks need from the run in progress on this thread.
struct Hooks {
    deadline: Instant,
    operations: Arc<AtomicU64>,
    cancel: Option<Arc<AtomicBool>>,
    guard: SizeGuard,
}

thread_local! {
    /// One engine per thread, reused by every run on it: building an engine (and
    /// registering the SDK) per run was a large share of a small script's cost. Its
    /// hooks read the run in progress from [`HOOKS`] and the SDK's context.
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    static HOOKS: RefCell<Option<Hooks>> = const { RefCell::new(None) };
}

/// Clears the run's hook state when the run ends, however it ends.
struct HooksGuard;

impl Drop for HooksGuard {
    fn drop(&mut self) {
        HOOKS.with(|h| *h.borrow_mut() = None);
    }
}

fn new_engine(limits: &Limits) -> Engine {
    let mut engine = hardened_engine(limits);
    sdk::register(&mut engine);
    engine.on_print(|text| sdk::with_logs(|sink| sink.push(LogLevel::Info, text)));
    engine.on_debug(|text, _, _| sdk::with_logs(|sink| sink.push(LogLevel::Debug, text)));
    engine.on_progress(|count| {
        HOOKS.with(|h| {
            let h = h.borrow();
            let h = h.as_ref()?;
            h.operations.store(count, Ordering::Relaxed);
            if h.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Some(Dynamic::from(CANCELLED));
            }
            if count % DEADLINE_CHECK_INTERVAL == 0 && Instant::now() >= h.deadline {
                return Some(Dynamic::from(TIMED_OUT));
            }
            None
        })
    });
    // `on_var` is marked volatile (its signature may change), not
    // deprecated; it is the only hook that sees variables as they are read.
    #[allow(deprecated)]
    engine.on_var(|name, _, context| {
        if let Some(value) = context.scope().get(name) {
            HOOKS.with(|h| match h.borrow().as_ref() {
                Some(h) => h.guard.check(name, value),
                None => Ok(()),
            })?;
        }
        Ok(None)
    });
    engine
}

impl Run<'_> {
    fn evaluate(
        self,
        script: &Script,
        input: Input,
        host: Arc<dyn Host>,
    ) -> Result<serde_json::Value, RunError> {
        let _context = sdk::RunContext::enter(host, self.logs.clone());
        let endpoint = matches!(input, Input::Request(_));
        let (input_name, input_value) = input.into_variable();
        let mut guard = SizeGuard::new(self.limits, self.operations.clone());
        guard.allow_input(input_name, &input_value);
        HOOKS.with(|h| {
            *h.borrow_mut() = Some(Hooks {
                deadline: self.started + Duration::from_millis(self.limits.timeout_ms),
                operations: self.operations.clone(),
                cancel: self.cancel.clone(),
                guard,
            })
        });
        let _hooks = HooksGuard;

        let mut scope = Scope::new();
        scope.push_dynamic(input_name, input_value);
        let eval = |engine: &Engine, scope: &mut Scope| {
            engine.eval_ast_with_scope::<Dynamic>(scope, script.ast())
        };
        let value = ENGINE
            .with(|cell| match cell.try_borrow_mut() {
                Ok(mut slot) => {
                    let engine = slot.get_or_insert_with(|| new_engine(self.limits));
                    apply_limits(engine, self.limits);
                    eval(engine, &mut scope)
                }
                // Re-entered on this thread (never expected): a fresh engine.
                Err(_) => eval(&new_engine(self.limits), &mut scope),
            })
            .map_err(|err| classify(*err, self.limits))?;
        let result = dynamic_to_json_checked(&value)
            .map_err(|e| RunError::new(ErrorKind::SizeLimit, format!("script result: {e}")))?;
        // An endpoint's answer that cannot be sent is the run's failure, so the invocation
        // record says why the caller got a 500.
        if endpoint {
            crate::response::into_http_response(result.clone())
                .map_err(|e| RunError::new(ErrorKind::Runtime, format!("invalid response: {e}")))?;
        }
        Ok(result)
    }
}
