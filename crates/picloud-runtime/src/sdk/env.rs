//! `env::` — the app's configured environment variables.

use rhai::{Dynamic, Module, NativeCallContext};

use super::{current_host, host_call, volatile, RhaiResultOf};

pub(super) fn module() -> Module {
    let mut m = Module::new();
    volatile("get").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, name: &str| -> RhaiResultOf<Dynamic> {
            Ok(host_call(&ctx, current_host(&ctx)?.env_get(name))?
                .map_or(Dynamic::UNIT, Dynamic::from))
        },
    );
    m
}
