//! `docs::` — the app's JSON document collections.

use std::sync::Arc;

use rhai::{Array, Dynamic, Map, Module, NativeCallContext, INT};

use super::{host_call, positive_limit, to_json, to_json_object, volatile, RhaiResultOf};
use crate::host::Host;
use crate::value::json_to_dynamic;

const DEFAULT_FIND_LIMIT: INT = 100;

pub(super) fn module(host: &Arc<dyn Host>) -> Module {
    let mut m = Module::new();

    let h = host.clone();
    volatile("insert").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, collection: &str, doc: Map| -> RhaiResultOf<String> {
            host_call(
                &ctx,
                h.docs_insert(collection, to_json(&ctx, "docs::insert", &doc.into())?),
            )
        },
    );

    let h = host.clone();
    volatile("get").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, collection: &str, id: &str| -> RhaiResultOf<Dynamic> {
            Ok(host_call(&ctx, h.docs_get(collection, id))?
                .map_or(Dynamic::UNIT, |v| json_to_dynamic(&v)))
        },
    );

    let h = host.clone();
    volatile("update").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, collection: &str, id: &str, doc: Map| -> RhaiResultOf<bool> {
            host_call(
                &ctx,
                h.docs_update(collection, id, to_json(&ctx, "docs::update", &doc.into())?),
            )
        },
    );

    let h = host.clone();
    volatile("delete").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, collection: &str, id: &str| {
            host_call(&ctx, h.docs_delete(collection, id))
        },
    );

    let h = host.clone();
    volatile("find").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, collection: &str, filter: Map| {
            find(&ctx, &*h, collection, &filter, DEFAULT_FIND_LIMIT)
        },
    );

    let h = host.clone();
    volatile("find").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, collection: &str, filter: Map, limit: INT| {
            find(&ctx, &*h, collection, &filter, limit)
        },
    );

    m
}

fn find(
    ctx: &NativeCallContext,
    host: &dyn Host,
    collection: &str,
    filter: &Map,
    limit: INT,
) -> RhaiResultOf<Array> {
    let limit = positive_limit(ctx, "docs::find", limit)?;
    let filter = to_json_object(ctx, "docs::find", filter)?;
    let docs = host_call(ctx, host.docs_find(collection, filter, limit))?;
    Ok(docs.iter().map(json_to_dynamic).collect())
}
