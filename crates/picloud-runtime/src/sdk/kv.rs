//! `kv::` — the app's key/value store.

use rhai::{Array, Dynamic, Map, Module, NativeCallContext, INT};

use super::{current_host, host_call, positive_limit, sdk_error, to_json, volatile, RhaiResultOf};
use crate::host::Host;
use crate::value::json_to_dynamic;

const DEFAULT_LIST_LIMIT: INT = 100;

pub(super) fn module() -> Module {
    let mut m = Module::new();
    volatile("get").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, key: &str| -> RhaiResultOf<Dynamic> {
            Ok(host_call(&ctx, current_host(&ctx)?.kv_get(key))?
                .map_or(Dynamic::UNIT, |v| json_to_dynamic(&v)))
        },
    );
    volatile("set").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, key: &str, value: Dynamic| -> RhaiResultOf<()> {
            host_call(
                &ctx,
                current_host(&ctx)?.kv_set(key, to_json(&ctx, "kv::set", &value)?, None),
            )
        },
    );
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
                current_host(&ctx)?.kv_set(key, to_json(&ctx, "kv::set", &value)?, Some(ttl_secs)),
            )
        },
    );
    volatile("delete").set_into_module(&mut m, move |ctx: NativeCallContext, key: &str| {
        host_call(&ctx, current_host(&ctx)?.kv_delete(key))
    });
    volatile("list").set_into_module(&mut m, move |ctx: NativeCallContext, prefix: &str| {
        list(&ctx, &*current_host(&ctx)?, prefix, DEFAULT_LIST_LIMIT)
    });
    volatile("list").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, prefix: &str, limit: INT| {
            list(&ctx, &*current_host(&ctx)?, prefix, limit)
        },
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
