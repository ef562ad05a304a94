//! S2: fan-out throughput. 1,000 subscribers on one topic; publish as fast as `--publishers`
//! connections allow for `--duration-secs`. PiCloud: ephemeral, then durable, on the same
//! subscribers; Nchan: its one kind of publish ("plain").

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::{delivery_run, finish, subscribers_json, Ctx};
use crate::publisher::{Pace, Plan};
use crate::server::{Backend, Kind, Server};

pub async fn run(ctx: &Ctx, kind: Kind) -> Result<Value> {
    let server = ctx.start(kind, Backend::Sqlite).await?;
    let r = body(ctx, &server).await;
    finish(r, server).await
}

/// The publish variants a target runs: `(name, durable)`.
pub fn variants(kind: Kind) -> &'static [(&'static str, bool)] {
    match kind {
        Kind::Picloud => &[("ephemeral", false), ("durable", true)],
        Kind::Nchan | Kind::Floor => &[("plain", false)],
    }
}

async fn body(ctx: &Ctx, server: &Server) -> Result<Value> {
    let n = ctx.scaled(1_000);
    server.endpoint.create_topics(1).await?;
    let subs = ctx.subscribe(server, n, |_| 0).await?;
    let mut runs = Map::new();
    for &(name, durable) in variants(server.endpoint.kind) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        crate::progress!("  s2 {name}: {} publishers, max rate", ctx.args.publishers);
        let plan = Plan {
            conns: ctx.args.publishers,
            pace: Pace::Saturate,
            duration: ctx.duration(),
            durable,
            topics: 1,
            named_topic: None,
            limit: None,
            batch: 1,
        };
        let r = delivery_run(ctx, server, &subs, plan, subs.connected()).await?;
        runs.insert(name.into(), r);
    }
    let mut v = subscribers_json(&subs);
    subs.close().await;
    v["topics"] = json!(1);
    v["runs"] = Value::Object(runs);
    Ok(v)
}
