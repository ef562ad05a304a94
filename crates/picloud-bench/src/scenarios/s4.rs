//! S4: many topics. 10,000 subscribers, one per topic on 10,000 topics; publish round-robin
//! across the topics as fast as `--s4-publishers` connections allow. PiCloud: ephemeral, then
//! durable, one message per request; then both again with `--s4-batch` messages per request
//! (the batch endpoint; Nchan has none); Nchan: plain.

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::{delivery_run, finish, s2, subscribers_json, Ctx};
use crate::publisher::{Pace, Plan};
use crate::server::{Backend, Kind, Server};

pub async fn run(ctx: &Ctx, kind: Kind) -> Result<Value> {
    let server = ctx.start(kind, Backend::Sqlite).await?;
    let r = body(ctx, &server).await;
    finish(r, server).await
}

/// S4 on a running `server` (C2 runs it on PostgreSQL, relay off and on).
pub(super) async fn body(ctx: &Ctx, server: &Server) -> Result<Value> {
    let n = ctx.scaled(10_000);
    server.endpoint.create_topics(n).await?;
    let subs = ctx.subscribe(server, n, |i| i).await?;
    let mut runs = Map::new();
    let batched: &[(&str, bool)] = match server.endpoint.kind {
        Kind::Picloud if ctx.args.s4_batch > 1 => {
            &[("ephemeral_batch", false), ("durable_batch", true)]
        }
        _ => &[],
    };
    let single = s2::variants(server.endpoint.kind).iter().map(|v| (*v, 1));
    let runs_of = single.chain(batched.iter().map(|v| (*v, ctx.args.s4_batch)));
    for ((name, durable), batch) in runs_of {
        tokio::time::sleep(Duration::from_secs(1)).await;
        crate::progress!(
            "  s4 {name}: {} publishers, {batch} message(s) per request, max rate, round-robin over {n} topics",
            ctx.args.s4_publishers
        );
        let plan = Plan {
            conns: ctx.args.s4_publishers,
            pace: Pace::Saturate,
            duration: ctx.duration(),
            durable,
            topics: n,
            named_topic: None,
            limit: None,
            batch,
        };
        runs.insert(
            name.into(),
            delivery_run(ctx, server, &subs, plan, 1).await?,
        );
    }
    let mut v = subscribers_json(&subs);
    subs.close().await;
    v["topics"] = json!(n);
    v["runs"] = Value::Object(runs);
    Ok(v)
}
