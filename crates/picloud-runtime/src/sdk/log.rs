//! `log::` — leveled log lines collected into the run's outcome.

use std::sync::Arc;

use rhai::{Dynamic, Module};

use super::volatile;
use crate::log::{LogLevel, LogSink};

pub(super) fn module(logs: &Arc<LogSink>) -> Module {
    let mut m = Module::new();
    // `debug` is a Rhai keyword, so `log::debug(..)` does not parse; the
    // debug level is `log::dbg(..)` (or the built-in `debug(..)`).
    for (name, level) in [
        ("dbg", LogLevel::Debug),
        ("info", LogLevel::Info),
        ("warn", LogLevel::Warn),
        ("error", LogLevel::Error),
    ] {
        let sink = logs.clone();
        volatile(name).set_into_module(&mut m, move |message: Dynamic| {
            sink.push(level, &message.to_string());
        });
    }
    m
}
