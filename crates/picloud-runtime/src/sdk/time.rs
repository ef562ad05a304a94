//! `time::` — wall-clock time.

use rhai::{Module, INT};

use super::volatile;
use crate::time::{rfc3339_ms, unix_ms};

pub(super) fn module() -> Module {
    let mut m = Module::new();
    volatile("now_ms").set_into_module(&mut m, || -> INT { unix_ms() });
    volatile("now_secs").set_into_module(&mut m, || -> INT { unix_ms().div_euclid(1000) });
    volatile("now_iso").set_into_module(&mut m, || -> String { rfc3339_ms(unix_ms()) });
    m
}
