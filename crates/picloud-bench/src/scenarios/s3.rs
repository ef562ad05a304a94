//! S3: latency at a modest fixed rate. 1,000 subscribers on one topic; 100 durable
//! publishes per second (Nchan: plain) for `--duration-secs`; publish→receive p50/p99.

use anyhow::Result;
use serde_json::{json, Value};

use super::{delivery_run, finish, subscribers_json, Ctx};
use crate::publisher::{Pace, Plan};
use crate::server::{Backend, Kind, Server};

pub const RATE: f64 = 100.0;

pub async fn run(ctx: &Ctx, kind: Kind) -> Result<Value> {
    let server = ctx.start(kind, Backend::Sqlite).await?;
    let r = body(ctx, &server).await;
    finish(r, server).await
}

async fn body(ctx: &Ctx, server: &Server) -> Result<Value> {
    let n = ctx.scaled(1_000);
    server.endpoint.create_topics(1).await?;
    let subs = ctx.subscribe(server, n, |_| 0).await?;
    let durable = server.endpoint.kind == Kind::Picloud;
    crate::progress!("  s3: {RATE} msg/s, durable {durable}");
    let plan = Plan {
        conns: 2,
        pace: Pace::Rate(RATE),
        duration: ctx.duration(),
        durable,
        topics: 1,
        named_topic: None,
        limit: None,
        batch: 1,
    };
    let run = delivery_run(ctx, server, &subs, plan, subs.connected()).await?;
    let mut v = subscribers_json(&subs);
    subs.close().await;
    v["topics"] = json!(1);
    v["run"] = run;
    Ok(v)
}
