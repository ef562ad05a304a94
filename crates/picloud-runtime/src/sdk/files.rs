//! `files::` — the app's file storage.

use rhai::{Array, Dynamic, Map, Module, NativeCallContext};

use super::{current_host, host_call, sdk_error, volatile, RhaiResultOf};

pub(super) fn module() -> Module {
    let mut m = Module::new();
    volatile("put").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, path: &str, content: Dynamic| -> RhaiResultOf<()> {
            let bytes = if content.is_string() {
                content
                    .into_immutable_string()
                    .map(|s| s.as_bytes().to_vec())
            } else {
                content.into_blob()
            }
            .map_err(|type_name| {
                sdk_error(
                    &ctx,
                    format!("files::put: content must be a string or a blob, got {type_name}"),
                )
            })?;
            host_call(&ctx, current_host(&ctx)?.files_put(path, bytes))
        },
    );
    volatile("get").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, path: &str| -> RhaiResultOf<Dynamic> {
            Ok(host_call(&ctx, current_host(&ctx)?.files_get(path))?
                .map_or(Dynamic::UNIT, Dynamic::from_blob))
        },
    );
    volatile("get_text").set_into_module(&mut m, move |ctx: NativeCallContext, path: &str| -> RhaiResultOf<Dynamic> {
        let Some(bytes) = host_call(&ctx, current_host(&ctx)?.files_get(path))? else {
            return Ok(Dynamic::UNIT);
        };
        String::from_utf8(bytes).map(Dynamic::from).map_err(|_| {
            sdk_error(&ctx, format!(
                "files::get_text: '{path}' is not valid UTF-8 text; use files::get for binary content"
            ))
        })
    });
    volatile("delete").set_into_module(&mut m, move |ctx: NativeCallContext, path: &str| {
        host_call(&ctx, current_host(&ctx)?.files_delete(path))
    });
    volatile("list").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, prefix: &str| -> RhaiResultOf<Array> {
            let files = host_call(&ctx, current_host(&ctx)?.files_list(prefix))?;
            Ok(files
                .into_iter()
                .map(|file| {
                    let mut entry = Map::new();
                    entry.insert("path".into(), file.path.into());
                    entry.insert(
                        "size".into(),
                        Dynamic::from_int(i64::try_from(file.size).unwrap_or(i64::MAX)),
                    );
                    entry.insert("updated_at".into(), Dynamic::from_int(file.updated_at_ms));
                    Dynamic::from_map(entry)
                })
                .collect())
        },
    );

    m
}
