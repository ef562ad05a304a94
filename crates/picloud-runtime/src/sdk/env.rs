//! `env::` — the app's configured environment variables.

use std::sync::Arc;

use rhai::{Dynamic, Module, NativeCallContext};

use super::{host_call, volatile, RhaiResultOf};
use crate::host::Host;

pub(super) fn module(host: &Arc<dyn Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    volatile("get").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, name: &str| -> RhaiResultOf<Dynamic> {
            Ok(host_call(&ctx, h.env_get(name))?.map_or(Dynamic::UNIT, Dynamic::from))
        },
    );
    m
}
