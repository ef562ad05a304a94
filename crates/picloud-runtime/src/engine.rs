//! The hardened Rhai engine configuration shared by compilation and runs.

use std::sync::{Arc, OnceLock};

use rhai::packages::{Package, StandardPackage};
use rhai::{Engine, Module};

use crate::limits::Limits;

/// Building the standard package registers hundreds of functions; doing it
/// once and sharing the module keeps per-run engine construction cheap.
fn standard_package() -> Arc<Module> {
    static PACKAGE: OnceLock<Arc<Module>> = OnceLock::new();
    PACKAGE
        .get_or_init(|| StandardPackage::new().as_shared_module())
        .clone()
}

/// An engine with the language surface tenants may use and the given limits.
///
/// Starts from `new_raw` so nothing (file module resolver, stdout printing)
/// comes in by default; `print`/`debug` stay no-ops until a run wires them to
/// its log collector.
pub(crate) fn hardened_engine(limits: &Limits) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(standard_package());

    // Scripts must not reach the filesystem, and `eval` would let a script
    // compile code the deploy-time checks never saw. Disabling the keywords
    // turns both into compile errors; the dummy resolver is the backstop.
    engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    engine.disable_symbol("eval");
    engine.disable_symbol("import");
    engine.disable_symbol("export");
    // A method's receiver is the one container a script can mutate without
    // naming a variable, which would slip past the size guard (see guard.rs).
    engine.disable_symbol("this");

    apply_limits(&mut engine, limits);
    engine
}

/// Sets a run's limits. Rhai reads 0 as "unlimited", so a zero that slipped past
/// validation must tighten the limit, never remove it.
pub(crate) fn apply_limits(engine: &mut Engine, limits: &Limits) {
    engine.set_max_operations(limits.max_operations.max(1));
    engine.set_max_call_levels(limits.max_call_depth.max(1));
    let expr_depth = limits.max_expr_depth.max(1);
    engine.set_max_expr_depths(expr_depth, expr_depth);
    engine.set_max_string_size(limits.max_string_bytes.max(1));
    engine.set_max_array_size(limits.max_array_len.max(1));
    engine.set_max_map_size(limits.max_map_len.max(1));
}
