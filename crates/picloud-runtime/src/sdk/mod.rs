//! The tenant SDK: Rhai static modules (`kv::`, `docs::`, ...) whose
//! functions call the run's [`Host`].
//!
//! The modules are built once per process and shared by every engine; a run
//! makes its host and log collector current on its thread ([`RunContext`])
//! for the duration of the evaluation. Building them per run (closures owning
//! the run's host) was measured as a large share of a hello-world endpoint's
//! cost: module indexing, hashing and freeing a few dozen functions each time.

mod docs;
mod env;
mod files;
mod kv;
mod log;
mod pubsub;
mod time;

use std::sync::Arc;

use rhai::{Dynamic, Engine, EvalAltResult, FuncRegistration, NativeCallContext, INT};

use crate::host::{Host, HostResult};
use crate::log::LogSink;
use crate::value::dynamic_to_json_checked;

/// Marks errors raised by SDK functions so the run can report them as
/// runtime errors rather than as values the script threw. The script sees a
/// plain string either way. Rhai's tag is `i32`, or `i16` on 32-bit targets such as
/// wasm32: the constant is an `i16` and converts into either with `.into()`.
pub(crate) const SDK_ERROR_TAG: i16 = 0x5043;

/// Whether a thrown value's tag (whichever width Rhai's tag has here) is the SDK's.
pub(crate) fn is_sdk_error_tag(tag: impl Into<i32>) -> bool {
    tag.into() == i32::from(SDK_ERROR_TAG)
}

/// What every SDK function returns to Rhai.
type RhaiResultOf<T> = Result<T, Box<EvalAltResult>>;

type SharedModules = Vec<(&'static str, rhai::Shared<rhai::Module>)>;

fn modules() -> &'static SharedModules {
    static MODULES: std::sync::OnceLock<SharedModules> = std::sync::OnceLock::new();
    MODULES.get_or_init(|| {
        [
            ("kv", kv::module()),
            ("docs", docs::module()),
            ("files", files::module()),
            ("pubsub", pubsub::module()),
            ("env", env::module()),
            ("log", log::module()),
            ("time", time::module()),
        ]
        .into_iter()
        .map(|(name, mut module)| {
            module.build_index();
            (name, rhai::Shared::new(module))
        })
        .collect()
    })
}

pub(crate) fn register(engine: &mut Engine) {
    for (name, module) in modules() {
        engine.register_static_module(*name, module.clone());
    }
}

/// The running script's host and log collector.
type Current = Option<(Arc<dyn Host>, Arc<LogSink>)>;

thread_local! {
    static CURRENT: std::cell::RefCell<Current> = const { std::cell::RefCell::new(None) };
}

/// Makes a run's host and log collector current on this thread until dropped.
/// A run evaluates synchronously on one thread, so every SDK call it makes
/// sees its own run's context.
pub(crate) struct RunContext(());

impl RunContext {
    pub(crate) fn enter(host: Arc<dyn Host>, logs: Arc<LogSink>) -> Self {
        CURRENT.with(|c| *c.borrow_mut() = Some((host, logs)));
        Self(())
    }
}

impl Drop for RunContext {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

/// The current run's host; an SDK function called outside a run fails cleanly.
fn current_host(ctx: &NativeCallContext) -> RhaiResultOf<Arc<dyn Host>> {
    CURRENT
        .with(|c| c.borrow().as_ref().map(|(h, _)| h.clone()))
        .ok_or_else(|| sdk_error(ctx, "the SDK is only available while a script runs"))
}

pub(crate) fn with_logs(f: impl FnOnce(&LogSink)) {
    CURRENT.with(|c| {
        if let Some((_, logs)) = c.borrow().as_ref() {
            f(logs);
        }
    });
}

/// A runtime error the script can catch; `catch (e)` binds `e` to `message`.
/// Rhai does not fill in the position of errors from module functions, so
/// it is taken from the call context.
pub(crate) fn sdk_error(ctx: &NativeCallContext, message: impl Into<String>) -> Box<EvalAltResult> {
    let mut value = Dynamic::from(message.into());
    value.set_tag(SDK_ERROR_TAG.into());
    EvalAltResult::ErrorRuntime(value, ctx.call_position()).into()
}

fn host_call<T>(ctx: &NativeCallContext, result: HostResult<T>) -> RhaiResultOf<T> {
    result.map_err(|message| sdk_error(ctx, message))
}

fn to_json(
    ctx: &NativeCallContext,
    what: &str,
    value: &Dynamic,
) -> RhaiResultOf<serde_json::Value> {
    dynamic_to_json_checked(value).map_err(|e| sdk_error(ctx, format!("{what}: {e}")))
}

fn to_json_object(
    ctx: &NativeCallContext,
    what: &str,
    map: &rhai::Map,
) -> RhaiResultOf<serde_json::Map<String, serde_json::Value>> {
    match to_json(ctx, what, &Dynamic::from_map(map.clone()))? {
        serde_json::Value::Object(object) => Ok(object),
        _ => unreachable!("a Rhai map converts to a JSON object"),
    }
}

fn positive_limit(ctx: &NativeCallContext, what: &str, limit: INT) -> RhaiResultOf<u32> {
    if limit < 1 {
        return Err(sdk_error(
            ctx,
            format!("{what}: limit must be a positive integer, got {limit}"),
        ));
    }
    Ok(u32::try_from(limit).unwrap_or(u32::MAX))
}

/// Every SDK function has side effects or depends on outside state, so none
/// may be treated as constant by the optimizer.
fn volatile(name: &str) -> FuncRegistration {
    FuncRegistration::new(name).with_volatility(true)
}
