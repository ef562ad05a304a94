//! `log::` — leveled log lines collected into the run's outcome.

use rhai::{Dynamic, Module};

use super::{volatile, with_logs};
use crate::log::LogLevel;

pub(super) fn module() -> Module {
    let mut m = Module::new();
    // `debug` is a Rhai keyword, so `log::debug(..)` does not parse; the
    // debug level is `log::dbg(..)` (or the built-in `debug(..)`).
    for (name, level) in [
        ("dbg", LogLevel::Debug),
        ("info", LogLevel::Info),
        ("warn", LogLevel::Warn),
        ("error", LogLevel::Error),
    ] {
        volatile(name).set_into_module(&mut m, move |message: Dynamic| {
            with_logs(|sink| sink.push(level, &message.to_string()));
        });
    }
    m
}
