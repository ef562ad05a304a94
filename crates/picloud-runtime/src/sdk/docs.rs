//! `docs::` — the app's JSON document collections.

use rhai::{Array, Dynamic, Map, Module, NativeCallContext, INT};

use super::{
    current_host, host_call, positive_limit, to_json, to_json_object, volatile, RhaiResultOf,
};
use crate::host::Host;
use crate::value::json_to_dynamic;

const DEFAULT_FIND_LIMIT: INT = 100;

pub(super) fn module() -> Module {
    let mut m = Module::new();
    volatile("insert").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, collection: &str, doc: Map| -> RhaiResultOf<String> {
            host_call(
                &ctx,
                current_host(&ctx)?
                    .docs_insert(collection, to_json(&ctx, "docs::insert", &doc.into())?),
            )
        },
    );
    volatile("get").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, collection: &str, id: &str| -> RhaiResultOf<Dynamic> {
            Ok(
                host_call(&ctx, current_host(&ctx)?.docs_get(collection, id))?
                    .map_or(Dynamic::UNIT, |v| json_to_dynamic(&v)),
            )
        },
    );
    volatile("update").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, collection: &str, id: &str, doc: Map| -> RhaiResultOf<bool> {
            host_call(
                &ctx,
                current_host(&ctx)?.docs_update(
                    collection,
                    id,
                    to_json(&ctx, "docs::update", &doc.into())?,
                ),
            )
        },
    );
    volatile("delete").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, collection: &str, id: &str| {
            host_call(&ctx, current_host(&ctx)?.docs_delete(collection, id))
        },
    );
    volatile("find").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, collection: &str, filter: Map| {
            find(
                &ctx,
                &*current_host(&ctx)?,
                collection,
                &filter,
                DEFAULT_FIND_LIMIT,
            )
        },
    );
    volatile("find").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, collection: &str, filter: Map, limit: INT| {
            find(&ctx, &*current_host(&ctx)?, collection, &filter, limit)
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
