//! S5 (PiCloud only): durable publish with no subscribers, on SQLite and on PostgreSQL:
//! first as fast as possible from 16 connections, then at a fixed `--s5-rate` (5,000/s)
//! from `--s5-rate-conns` (64) connections; round-robin over `--s5-topics` (16) topics;
//! publishes/s and publish latency. The fixed-rate run has more connections because each has one request
//! in flight: 16 could not hold 5,000/s once a publish takes more than 3.2 ms.

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::{finish, publish_run, Ctx};
use crate::publisher::{Pace, Plan};
use crate::server::{Backend, Kind, Server};

const CONNS: usize = 16;

pub async fn run(ctx: &Ctx) -> Result<Value> {
    let mut out = Map::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        crate::progress!("  s5 on {}", backend.name());
        let v = match ctx.start(Kind::Picloud, backend).await {
            Ok(server) => {
                let r = body(ctx, &server).await;
                finish(r, server).await?
            }
            Err(e) => json!({ "error": format!("{e:#}") }),
        };
        out.insert(backend.name().into(), v);
    }
    Ok(Value::Object(out))
}

async fn body(ctx: &Ctx, server: &Server) -> Result<Value> {
    let rate_conns = ctx.args.s5_rate_conns.max(1);
    let topics = ctx.args.s5_topics.max(1);
    server.endpoint.create_topics(topics).await?;
    let mut v = json!({ "topics": topics, "subscribers": 0 });
    let runs = [
        ("max", Pace::Saturate, CONNS),
        ("fixed_rate", Pace::Rate(ctx.args.s5_rate), rate_conns),
    ];
    for (name, pace, conns) in runs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let plan = Plan {
            conns,
            pace,
            duration: ctx.duration(),
            durable: true,
            topics,
            named_topic: None,
            limit: None,
            batch: 1,
        };
        let r = publish_run(ctx, server, plan).await?;
        crate::progress!(
            "  s5 {name}: {} publishes/s, p50 {} ms, p99 {} ms, {} failed",
            r["publishes_per_sec"],
            r["publish_latency_ms"]["p50_ms"],
            r["publish_latency_ms"]["p99_ms"],
            r["publishes_failed"]
        );
        v[name] = r;
    }
    Ok(v)
}
