//! Classifying Rhai evaluation errors into the run's error kinds.

use rhai::{EvalAltResult, Position};
use serde::Serialize;

use crate::compile::line_column;
use crate::guard::TOO_DEEP;
use crate::limits::Limits;
use crate::sdk::is_sdk_error_tag;
use crate::value::MAX_JSON_DEPTH;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The script used `throw` and nothing caught it.
    Thrown,
    /// Any other script error, including an uncaught SDK/host error.
    Runtime,
    OperationsLimit,
    /// The wall-clock limit, or a server shutdown cancelling the run.
    TimeLimit,
    CallDepth,
    /// A string, array, blob, map or result exceeded its size limit.
    SizeLimit,
    /// The runtime or a host function panicked; the message is generic.
    Panic,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[error("{message}")]
pub struct RunError {
    pub kind: ErrorKind,
    /// Human readable; ends with the script position when Rhai reports one.
    pub message: String,
}

impl RunError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RunError {
            kind,
            message: message.into(),
        }
    }
}

/// Terminate tokens the progress callback hands to Rhai, to tell the two
/// reasons for stopping a run apart afterwards.
pub(crate) const TIMED_OUT: &str = "timed out";
pub(crate) const CANCELLED: &str = "cancelled";

pub(crate) fn classify(err: EvalAltResult, limits: &Limits) -> RunError {
    // Errors inside script functions arrive wrapped once per call frame; the
    // innermost error says what happened, the frames say where.
    let mut err = err;
    let mut function = None;
    let mut outer_pos = Position::NONE;
    loop {
        match err {
            EvalAltResult::ErrorInFunctionCall(name, _, inner, pos) => {
                if !pos.is_none() {
                    outer_pos = pos;
                }
                function = Some(name);
                err = *inner;
            }
            EvalAltResult::ErrorInModule(_, inner, pos) => {
                if !pos.is_none() {
                    outer_pos = pos;
                }
                err = *inner;
            }
            _ => break,
        }
    }
    let mut pos = err.take_position();
    if pos.is_none() {
        pos = outer_pos;
    }

    let (kind, message) = match err {
        EvalAltResult::ErrorRuntime(value, _) if is_sdk_error_tag(value.tag()) => {
            (ErrorKind::Runtime, value.to_string())
        }
        EvalAltResult::ErrorRuntime(value, _) => (ErrorKind::Thrown, value.to_string()),
        EvalAltResult::ErrorTooManyOperations(_) => (
            ErrorKind::OperationsLimit,
            format!(
                "operations limit exceeded: the script used more than {} operations",
                limits.max_operations
            ),
        ),
        EvalAltResult::ErrorTerminated(token, _) if token.to_string() == CANCELLED => {
            // Not the script's fault, so no position to point at.
            return RunError::new(ErrorKind::TimeLimit, "cancelled: server shutting down");
        }
        EvalAltResult::ErrorTerminated(..) => (
            ErrorKind::TimeLimit,
            format!(
                "time limit exceeded: the script ran longer than {} ms",
                limits.timeout_ms
            ),
        ),
        EvalAltResult::ErrorStackOverflow(_) => (
            ErrorKind::CallDepth,
            format!(
                "call depth limit exceeded: functions nested more than {} calls deep",
                limits.max_call_depth
            ),
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            (ErrorKind::SizeLimit, size_message(&what, limits))
        }
        EvalAltResult::ErrorTooManyVariables(_) | EvalAltResult::ErrorTooManyModules(_) => {
            (ErrorKind::SizeLimit, err.to_string())
        }
        other => (ErrorKind::Runtime, other.to_string()),
    };
    RunError::new(kind, with_position(message, pos, function.as_deref()))
}

fn size_message(what: &str, limits: &Limits) -> String {
    match what {
        "Length of string" => format!(
            "string size limit exceeded: a value holds more than {} bytes of string data",
            limits.max_string_bytes
        ),
        "Size of array/BLOB" => format!(
            "array size limit exceeded: a value holds more than {} array elements or blob bytes",
            limits.max_array_len
        ),
        "Size of object map" => format!(
            "map size limit exceeded: a value holds more than {} map entries",
            limits.max_map_len
        ),
        TOO_DEEP => format!(
            "nesting limit exceeded: arrays/maps nested more than {MAX_JSON_DEPTH} levels deep"
        ),
        other => format!("size limit exceeded: {other}"),
    }
}

fn with_position(message: String, pos: Position, function: Option<&str>) -> String {
    let (line, column) = line_column(pos);
    match (line, function) {
        (0, None) => message,
        (0, Some(f)) => format!("{message} (in function '{f}')"),
        (_, None) => format!("{message} (line {line}, column {column})"),
        (_, Some(f)) => format!("{message} (line {line}, column {column}, in function '{f}')"),
    }
}
