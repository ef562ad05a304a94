//! The tenant SDK: Rhai static modules (`kv::`, `docs::`, ...) whose
//! functions call the run's [`Host`].
//!
//! Modules are built per run so their closures can own the run's host and
//! log collector; registering a few dozen closures costs microseconds.

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
/// plain string either way.
pub(crate) const SDK_ERROR_TAG: i32 = 0x5043;

/// What every SDK function returns to Rhai.
type RhaiResultOf<T> = Result<T, Box<EvalAltResult>>;

pub(crate) fn register(engine: &mut Engine, host: &Arc<dyn Host>, logs: &Arc<LogSink>) {
    let modules = [
        ("kv", kv::module(host)),
        ("docs", docs::module(host)),
        ("files", files::module(host)),
        ("pubsub", pubsub::module(host)),
        ("env", env::module(host)),
        ("log", log::module(logs)),
        ("time", time::module()),
    ];
    for (name, module) in modules {
        engine.register_static_module(name, module.into());
    }
}

/// A runtime error the script can catch; `catch (e)` binds `e` to `message`.
/// Rhai does not fill in the position of errors from module functions, so
/// it is taken from the call context.
pub(crate) fn sdk_error(ctx: &NativeCallContext, message: impl Into<String>) -> Box<EvalAltResult> {
    let mut value = Dynamic::from(message.into());
    value.set_tag(SDK_ERROR_TAG);
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
