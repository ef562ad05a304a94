//! `pubsub::` — publishing to the app's topics and minting subscriber tokens.

use rhai::{Array, Dynamic, Module, NativeCallContext, INT};

use super::{current_host, host_call, sdk_error, to_json, volatile, RhaiResultOf};
use crate::host::Host;

pub(super) fn module() -> Module {
    let mut m = Module::new();
    volatile("publish").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, topic: &str, message: Dynamic| -> RhaiResultOf<INT> {
            host_call(
                &ctx,
                current_host(&ctx)?.publish(topic, to_json(&ctx, "pubsub::publish", &message)?),
            )
        },
    );
    volatile("publish_ephemeral").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, topic: &str, message: Dynamic| -> RhaiResultOf<()> {
            host_call(
                &ctx,
                current_host(&ctx)?.publish_ephemeral(
                    topic,
                    to_json(&ctx, "pubsub::publish_ephemeral", &message)?,
                ),
            )
        },
    );
    volatile("subscriber_token").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, topics: Array, ttl_secs: INT| {
            subscriber_token(&ctx, &*current_host(&ctx)?, topics, ttl_secs, None)
        },
    );
    volatile("subscriber_token").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, topics: Array, ttl_secs: INT, subject: &str| {
            subscriber_token(
                &ctx,
                &*current_host(&ctx)?,
                topics,
                ttl_secs,
                Some(subject.to_string()),
            )
        },
    );

    m
}

fn subscriber_token(
    ctx: &NativeCallContext,
    host: &dyn Host,
    topics: Array,
    ttl_secs: INT,
    subject: Option<String>,
) -> RhaiResultOf<String> {
    let topics = topics
        .into_iter()
        .map(|topic| {
            topic.into_string().map_err(|type_name| {
                sdk_error(
                    ctx,
                    format!("pubsub::subscriber_token: topics must be strings, got {type_name}"),
                )
            })
        })
        .collect::<RhaiResultOf<Vec<String>>>()?;
    if ttl_secs < 1 {
        return Err(sdk_error(
            ctx,
            format!(
                "pubsub::subscriber_token: ttl_secs must be a positive integer, got {ttl_secs}"
            ),
        ));
    }
    host_call(ctx, host.subscriber_token(topics, ttl_secs, subject))
}
