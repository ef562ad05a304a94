//! S1: memory per idle SSE connection. 10,000 subscribers over 100 topics; server RSS
//! before connecting and after all are connected and idle for 3 s.

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use super::{finish, subscribers_json, Ctx};
use crate::proc_stats;
use crate::server::{Backend, Kind, Server};

pub async fn run(ctx: &Ctx, kind: Kind) -> Result<Value> {
    let server = ctx.start(kind, Backend::Sqlite).await?;
    let r = body(ctx, &server).await;
    finish(r, server).await
}

async fn body(ctx: &Ctx, server: &Server) -> Result<Value> {
    let n = ctx.scaled(10_000);
    let topics = 100.min(n);
    server.endpoint.create_topics(topics).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.rss_bytes()?;
    let subs = ctx.subscribe(server, n, |i| i % topics).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = server.rss_bytes()?;
    let connected = subs.connected().max(1);
    let per = (after as f64 - before as f64) / connected as f64;
    let client_rss = proc_stats::rss_bytes(std::process::id()).unwrap_or(0);
    crate::progress!(
        "  rss {before} -> {after} bytes: {:.0} bytes ({:.2} KiB) per connection",
        per,
        per / 1024.0
    );
    let mut v = subscribers_json(&subs);
    subs.close().await;
    v["topics"] = json!(topics);
    v["rss_before_bytes"] = json!(before);
    v["rss_after_bytes"] = json!(after);
    v["bytes_per_conn"] = json!(per.round());
    v["kib_per_conn"] = json!((per / 1024.0 * 100.0).round() / 100.0);
    v["client_rss_bytes"] = json!(client_rss);
    Ok(v)
}
