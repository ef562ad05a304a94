//! The checks a tenant's tooling wants before it talks to a server, compiled to
//! WebAssembly: the deploy-time script check, topic names and patterns, cron schedules and
//! trigger filters. Every function calls the code the server runs (`picloud-runtime`,
//! `picloud-core`); nothing here re-implements a rule.
//!
//! Each export takes and returns plain strings and numbers so the same functions run
//! natively (the tests) and in JS, and answers a JSON envelope: `{"ok": value}` or
//! `{"error": {"field", "message"}}`. `@picloud/client/wasm` unwraps it into the typed API.

use picloud_core::topic::{TopicName, TopicPattern};
use picloud_core::trigger::{Schedule, TriggerFilter, TriggerKind};
use picloud_core::ValidationError;
use picloud_runtime::Limits;
use serde_json::{json, Value};
use wasm_bindgen::prelude::wasm_bindgen;

/// Most fire times `cronNext` lists at once.
pub const MAX_CRON_TIMES: u32 = 100;

fn ok(value: impl serde::Serialize) -> String {
    json!({ "ok": value }).to_string()
}

fn invalid(e: ValidationError) -> String {
    json!({ "error": { "field": e.field, "message": e.message } }).to_string()
}

fn input_error(field: &str, message: impl std::fmt::Display) -> String {
    json!({ "error": { "field": field, "message": message.to_string() } }).to_string()
}

/// What a deploy under `limits` (JSON overrides as the app's runtime settings hold them,
/// or empty for the defaults) would refuse: `{"ok": [diagnostic…]}`, empty when it would
/// deploy.
#[wasm_bindgen(js_name = checkScript)]
pub fn check_script(source: &str, limits: &str) -> String {
    let limits = if limits.trim().is_empty() {
        Limits::default()
    } else {
        let parsed = serde_json::from_str::<Value>(limits)
            .map_err(|e| e.to_string())
            .and_then(|v| Limits::from_overrides(&v));
        match parsed {
            Ok(l) => l,
            Err(m) => return input_error("limits", m),
        }
    };
    ok(picloud_runtime::check_script(source, &limits))
}

/// `{"ok": null}` when `name` is a valid topic name.
#[wasm_bindgen(js_name = validateTopic)]
pub fn validate_topic(name: &str) -> String {
    match TopicName::parse(name) {
        Ok(_) => ok(Value::Null),
        Err(e) => invalid(e),
    }
}

/// Whether a token's or trigger's topic pattern (`chat`, `chat.*`) covers `topic`.
#[wasm_bindgen(js_name = topicPatternMatches)]
pub fn topic_pattern_matches(pattern: &str, topic: &str) -> String {
    match TopicPattern::parse(pattern) {
        Ok(p) => ok(p.matches(topic)),
        Err(e) => invalid(e),
    }
}

/// The next `n` (at most [`MAX_CRON_TIMES`]) fire times of a cron trigger's schedule
/// after `from_millis`, in epoch milliseconds UTC. The clock is the caller's: wasm has none.
#[wasm_bindgen(js_name = cronNext)]
pub fn cron_next(expression: &str, from_millis: f64, n: u32) -> String {
    if !from_millis.is_finite() {
        return input_error("fromMillis", "must be a finite number of milliseconds");
    }
    if n > MAX_CRON_TIMES {
        return input_error("n", format!("must be at most {MAX_CRON_TIMES}"));
    }
    match Schedule::parse(expression) {
        Ok(s) => ok(s.next_times(from_millis as i64, n as usize)),
        Err(e) => invalid(e),
    }
}

/// `{"ok": null}` when `filter` (JSON text) is a valid filter for a trigger of `kind`, as
/// creating the trigger would judge it.
#[wasm_bindgen(js_name = validateTriggerFilter)]
pub fn validate_trigger_filter(kind: &str, filter: &str) -> String {
    let kind = match TriggerKind::parse(kind) {
        Ok(k) => k,
        Err(e) => return invalid(e),
    };
    let filter = match serde_json::from_str::<Value>(filter) {
        Ok(f) => f,
        Err(e) => return input_error("filter", format!("is not JSON: {e}")),
    };
    match TriggerFilter::parse(kind, &filter) {
        Ok(_) => ok(Value::Null),
        Err(e) => invalid(e),
    }
}
