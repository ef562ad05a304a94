//! `kv::` — the app's key/value store.

use std::sync::Arc;

use rhai::{Array, Dynamic, Map, Module, NativeCallContext, INT};

use super::{host_call, positive_limit, sdk_error, to_json, volatile, RhaiResultOf};
use crate::host::Host;
use crate::value::json_to_dynamic;

const DEFAULT_LIST_LIMIT: INT = 100;

pub(super) fn module(host: &Arc<dyn Host>) -> Module {
    let mut m = Module::new();

    let h = host.clone();
    volatile("get").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, key: &str| -> RhaiResultOf<Dynamic> {
            Ok(host_call(&ctx, h.kv_get(key))?.map_or(Dynamic::UNIT, |v| json_to_dynamic(&v)))
        },
    );

    let h = host.clone();
    volatile("set").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, key: &str, value: Dynamic| -> RhaiResultOf<()> {
            host_call(&ctx, h.kv_set(key, to_json(&ctx, "kv::set", &value)?, None))
        },
    );

    let h = host.clone();
    volatile("set").set_into_module(
        &mut m,
        move |ctx: NativeCallContext,
              key: &str,
              value: Dynamic,
              ttl_secs: INT|
              -> RhaiResultOf<()> {
            if ttl_secs < 1 {
                return Err(sdk_error(
                    &ctx,
                    format!("kv::set: ttl_secs must be a positive integer, got {ttl_secs}"),
                ));
            }
            host_call(
                &ctx,
                h.kv_set(key, to_json(&ctx, "kv::set", &value)?, Some(ttl_secs)),
            )
        },
    );

    let h = host.clone();
    volatile("delete").set_into_module(&mut m, move |ctx: NativeCallContext, key: &str| {
        host_call(&ctx, h.kv_delete(key))
    });

    let h = host.clone();
    volatile("list").set_into_module(&mut m, move |ctx: NativeCallContext, prefix: &str| {
        list(&ctx, &*h, prefix, DEFAULT_LIST_LIMIT)
    });

    let h = host.clone();
    volatile("list").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, prefix: &str, limit: INT| list(&ctx, &*h, prefix, limit),
    );

    m
}

fn list(ctx: &NativeCallContext, host: &dyn Host, prefix: &str, limit: INT) -> RhaiResultOf<Array> {
    let limit = positive_limit(ctx, "kv::list", limit)?;
    let entries = host_call(ctx, host.kv_list(prefix, limit))?;
    Ok(entries
        .into_iter()
        .map(|(key, value)| {
            let mut entry = Map::new();
            entry.insert("key".into(), key.into());
            entry.insert("value".into(), json_to_dynamic(&value));
            Dynamic::from_map(entry)
        })
        .collect())
}
