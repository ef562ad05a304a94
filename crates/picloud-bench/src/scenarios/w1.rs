//! W1: S2's shape over WebSocket. 1,000 WebSocket subscribers on one topic; publish as fast
//! as `--publishers` connections allow for `--duration-secs`. PiCloud: ephemeral messages
//! to WebSocket subscribers, then to as many SSE subscribers in the same run (its own
//! reference); Nchan: its WebSocket subscribers (`nchan_subscriber websocket`).

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

async fn body(ctx: &Ctx, server: &Server) -> Result<Value> {
    let n = ctx.scaled(1_000);
    server.endpoint.create_topics(1).await?;
    let transports: &[&str] = match server.endpoint.kind {
        Kind::Picloud => &["ws", "sse"],
        Kind::Nchan | Kind::Floor => &["ws"],
    };
    let mut runs = Map::new();
    for &transport in transports {
        let subs = if transport == "ws" {
            ctx.subscribe_ws(server, n).await?
        } else {
            ctx.subscribe(server, n, |_| 0).await?
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        crate::progress!(
            "  w1 {transport}: {} publishers, max rate",
            ctx.args.publishers
        );
        let plan = Plan {
            conns: ctx.args.publishers,
            pace: Pace::Saturate,
            duration: ctx.duration(),
            durable: false,
            topics: 1,
            named_topic: None,
            limit: None,
            batch: 1,
        };
        let mut r = delivery_run(ctx, server, &subs, plan, subs.connected()).await?;
        r["subscribers"] = subscribers_json(&subs);
        subs.close().await;
        runs.insert(transport.into(), r);
    }
    Ok(json!({"topics": 1, "runs": runs}))
}
