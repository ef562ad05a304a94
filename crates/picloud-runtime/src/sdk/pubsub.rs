//! `pubsub::` — publishing to the app's topics and minting subscriber tokens.

use std::sync::Arc;

use rhai::{Array, Dynamic, Module, NativeCallContext, INT};

use super::{host_call, sdk_error, to_json, volatile, RhaiResultOf};
use crate::host::Host;

pub(super) fn module(host: &Arc<dyn Host>) -> Module {
    let mut m = Module::new();

    let h = host.clone();
    volatile("publish").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, topic: &str, message: Dynamic| -> RhaiResultOf<INT> {
            host_call(
                &ctx,
                h.publish(topic, to_json(&ctx, "pubsub::publish", &message)?),
            )
        },
    );

    let h = host.clone();
    volatile("publish_ephemeral").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, topic: &str, message: Dynamic| -> RhaiResultOf<()> {
            host_call(
                &ctx,
                h.publish_ephemeral(topic, to_json(&ctx, "pubsub::publish_ephemeral", &message)?),
            )
        },
    );

    let h = host.clone();
    volatile("subscriber_token").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, topics: Array, ttl_secs: INT| {
            subscriber_token(&ctx, &*h, topics, ttl_secs, None)
        },
    );

    let h = host.clone();
    volatile("subscriber_token").set_into_module(
        &mut m,
        move |ctx: NativeCallContext, topics: Array, ttl_secs: INT, subject: &str| {
            subscriber_token(&ctx, &*h, topics, ttl_secs, Some(subject.to_string()))
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
