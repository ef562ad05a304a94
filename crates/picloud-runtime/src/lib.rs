//! PiCloud script runtime: a hardened Rhai engine with per-invocation limits
//! and the tenant SDK (`kv::`, `docs::`, `files::`, `pubsub::`, `log::`,
//! `env::`, `time::`).
//!
//! The crate does no I/O of its own: the server implements [`Host`] for the
//! calling app and calls [`run`] from a blocking thread. Scripts are compiled
//! once at deploy time ([`compile`]) and the cheap-to-clone [`Script`] is
//! cached by the caller. See `SDK.md` for the script-facing reference.

mod check;
mod compile;
mod engine;
mod error;
mod guard;
mod host;
mod limits;
mod log;
mod response;
mod run;
mod sdk;
pub mod time;
mod value;

pub use check::{check_script, Diagnostic, Severity};
pub use compile::{compile, compile_with_limits, CompileError, Script, MAX_SOURCE_BYTES};
pub use error::{ErrorKind, RunError};
pub use host::{FileInfo, Host, HostResult};
pub use limits::Limits;
pub use log::{LogLevel, LogLine, MAX_LOG_LINE_BYTES};
pub use response::{into_http_response, Body, HttpResponse};
pub use run::{run, run_with_cancel, Input, Outcome, RECOMMENDED_STACK_BYTES};
pub use value::{dynamic_to_json, dynamic_to_json_checked, json_to_dynamic, MAX_JSON_DEPTH};

/// Re-exported so callers can name the types in [`json_to_dynamic`] and
/// [`dynamic_to_json`] without depending on a matching Rhai version.
pub use rhai;
