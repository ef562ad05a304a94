//! C1: a three-node cluster. PiCloud: three `picloud serve` on one fresh PostgreSQL
//! database and a private `redis-server` (the relay); Nchan: three nginx sharing that Redis
//! as their store (`nchan_redis_variant`). 1,000 subscribers on 10 topics, each topic's
//! subscribers spread over all three nodes; 100 publishes per second (PiCloud: durable)
//! round-robin over the nodes and the topics for `--duration-secs`. Every message's send
//! time is parsed and carries the publishing node (`latency::tag_origin`), so latency is
//! reported apart for receives on another node (through the relay) and on the publishing
//! node itself. Loss counts every subscriber; PiCloud's `/health/realtime` of each node
//! says whether the relay dropped or repaired anything.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::{subscribers_json, wait_for_deliveries, Ctx};
use crate::latency;
use crate::publisher::{self, round1, round3, Pace, Plan};
use crate::redis::Redis;
use crate::server::{Backend, Data, Endpoint, Kind, Server};
use crate::sse_client::{ConnectOpts, Subscribers};

pub const NODES: usize = 3;
/// 10 topics and 3 nodes are coprime, so message `k` (node `k % 3`, topic `k % 10`) gives
/// every topic messages from every node: a topic's stream merges all three origins.
pub const TOPICS: usize = 10;
pub const RATE: f64 = 100.0;
/// The counters of `/health/realtime` that say how the relay fared.
const HEALTH_COUNTERS: [&str; 6] = [
    "relay_sent",
    "relay_received",
    "relay_dropped",
    "relay_repairs",
    "gap_repairs",
    "position_checks",
];

pub async fn run(ctx: &Ctx, kind: Kind) -> Result<Value> {
    let redis = Redis::start()?;
    let nodes = start_nodes(ctx, kind, &redis).await?;
    let r = body(ctx, &nodes).await;
    let mut v = r.unwrap_or_else(|e| json!({ "error": format!("{e:#}") }));
    v["servers"] = stop_nodes(nodes).await;
    v["redis"] = json!(redis.url());
    v["pinning"] = json!(format!(
        "all {NODES} nodes on CPU {} (taskset), the tool on CPU {}; redis-server and PostgreSQL unpinned",
        ctx.args.server_cpu, ctx.args.client_cpu
    ));
    Ok(v)
}

/// Starts the three nodes, all pinned to `--server-cpu`. PiCloud: the first on a fresh
/// PostgreSQL database (it prints the admin key) creates app `bench` and the topics before
/// the others start, so no node ever resolves the app or a topic before it exists.
async fn start_nodes(ctx: &Ctx, kind: Kind, redis: &Redis) -> Result<Vec<Server>> {
    let url = redis.url();
    let mut nodes = Vec::with_capacity(NODES);
    for i in 0..NODES {
        let server = match kind {
            Kind::Picloud => {
                let id = format!("n{}", i + 1);
                let env = [
                    ("REDIS_URL", url.as_str()),
                    ("PICLOUD_NODE_ID", id.as_str()),
                ];
                let data = match nodes.first() {
                    None => Data::Fresh(Backend::Postgres),
                    Some(first) => Server::join_data(first)?,
                };
                ctx.start_picloud(data, &env, None).await?
            }
            Kind::Nchan => {
                Server::start_nchan_redis(&ctx.args.nchan_conf, ctx.args.server_cpu, i, &url)
                    .await?
            }
            Kind::Floor => bail!("C1 runs on PiCloud and Nchan only"),
        };
        if i == 0 {
            server.endpoint.create_topics(TOPICS).await?;
        }
        nodes.push(server);
    }
    Ok(nodes)
}

/// Stops the nodes last first: the first PiCloud node owns the database (dropped when it
/// stops), which the others must not lose while they still run.
async fn stop_nodes(nodes: Vec<Server>) -> Value {
    let mut reports = Vec::with_capacity(nodes.len());
    for server in nodes.into_iter().rev() {
        reports.push(server.stop().await);
    }
    reports.reverse();
    Value::Array(reports)
}

async fn body(ctx: &Ctx, nodes: &[Server]) -> Result<Value> {
    let kind = nodes[0].endpoint.kind;
    let per_topic = ctx.scaled(100).max(NODES);
    let n = TOPICS * per_topic;
    let sets = subscribe_spread(ctx, nodes, n).await?;
    // PiCloud subscribes its relay to a topic before the stream reads its start, and Nchan
    // its Redis channel; a pause makes sure nothing of the setup is still in flight.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu0 = cpu_secs(ctx, nodes)?;
    for s in &sets {
        let _ = (s.stats.take_latency(), s.stats.take_latency_other());
    }
    let m0: Vec<u64> = sets.iter().map(|s| s.stats.messages()).collect();
    let received = || -> u64 {
        sets.iter()
            .zip(&m0)
            .map(|(s, m0)| s.stats.messages() - m0)
            .sum()
    };
    crate::progress!(
        "  c1: {RATE} msg/s round-robin over {NODES} nodes and {TOPICS} topics, {n} subscribers"
    );
    let plan = Plan {
        conns: 2,
        pace: Pace::Rate(RATE),
        duration: ctx.duration(),
        durable: kind == Kind::Picloud,
        topics: TOPICS,
        named_topic: None,
        limit: None,
        batch: 1,
    };
    let eps: Vec<Endpoint> = nodes.iter().map(|s| s.endpoint.clone()).collect();
    let t0 = Instant::now();
    let out = publisher::run_over(&eps, plan, ctx.payload.clone(), ctx.epoch).await?;
    // Every topic has `per_topic` subscribers, spread over the nodes.
    let expected = out.ok * per_topic as u64;
    let last = wait_for_deliveries(expected, &received).await;
    let got = received();
    let window = (last - t0).as_secs_f64();
    let cpu: Vec<f64> = cpu_secs(ctx, nodes)?
        .iter()
        .zip(&cpu0)
        .map(|(b, a)| round3(b - a))
        .collect();
    let (same, cross) = latencies(&sets);
    crate::progress!(
        "  {} publishes ok ({} failed), {got}/{expected} deliveries; cross-node p50 {} ms p99 {} ms, same-node p50 {} ms p99 {} ms",
        out.ok,
        out.failed(),
        ms(&cross, 0.5),
        ms(&cross, 0.99),
        ms(&same, 0.5),
        ms(&same, 0.99),
    );
    let mut run = out.to_json(&plan);
    run["durable"] = json!(plan.durable);
    run["nodes"] = json!(NODES);
    run["expected_deliveries"] = json!(expected);
    run["received_deliveries"] = json!(got);
    run["loss"] = json!(expected as i64 - got as i64);
    run["delivery_window_secs"] = json!(round3(window));
    run["deliveries_per_sec"] = json!(round1(got as f64 / window.max(1e-9)));
    run["e2e_latency_cross_node_ms"] = latency::summary(&cross);
    run["e2e_latency_same_node_ms"] = latency::summary(&same);
    run["server_cpu_secs_by_node"] = json!(cpu);
    let by_node = per_node(nodes, &sets, &m0).await?;
    if kind == Kind::Picloud {
        run["relay_totals"] = relay_totals(&by_node);
    }
    run["by_node"] = Value::Array(by_node);
    let mut v = json!({
        "subscribers": n,
        "connected": sets.iter().map(Subscribers::connected).sum::<u64>(),
        "topics": TOPICS,
        "subscribers_per_topic": per_topic,
    });
    for s in sets {
        s.close().await;
    }
    v["run"] = run;
    Ok(v)
}

/// Subscriber `i` on topic `i % TOPICS` through node `(i / TOPICS) % NODES`: every topic
/// has subscribers on every node. One set per node, each knowing its node's index so
/// that samples split into same-node and cross-node; every message is sampled (C1's
/// 10,000 deliveries per second cost the client little).
async fn subscribe_spread(ctx: &Ctx, nodes: &[Server], n: usize) -> Result<Vec<Subscribers>> {
    let mut sets = Vec::with_capacity(nodes.len());
    for (j, node) in nodes.iter().enumerate() {
        let ep = &node.endpoint;
        let reqs = (0..n)
            .filter(|i| (i / TOPICS) % NODES == j)
            .map(|i| ep.subscribe_request(i % TOPICS))
            .collect();
        let opts = ConnectOpts {
            sample_every: 1,
            home: Some(j as u64),
            ..ConnectOpts::default()
        };
        let subs =
            Subscribers::connect_with(ep.addr, reqs, ctx.epoch, Duration::from_secs(180), opts)
                .await?;
        if subs.connected() == 0 {
            bail!(
                "no subscriber connected to node {j}: {}",
                subs.first_error().unwrap_or_default()
            );
        }
        sets.push(subs);
    }
    Ok(sets)
}

fn cpu_secs(ctx: &Ctx, nodes: &[Server]) -> Result<Vec<f64>> {
    nodes.iter().map(|s| s.cpu_secs(ctx.clk_tck)).collect()
}

/// (same-node, cross-node) latency over all nodes' subscribers.
fn latencies(sets: &[Subscribers]) -> (Histogram<u64>, Histogram<u64>) {
    let (mut same, mut cross) = (latency::histogram(), latency::histogram());
    for s in sets {
        let _ = same.add(s.stats.take_latency());
        let _ = cross.add(s.stats.take_latency_other());
    }
    (same, cross)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Each node's subscribers and deliveries, and for PiCloud its `/health/realtime`.
async fn per_node(nodes: &[Server], sets: &[Subscribers], m0: &[u64]) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(nodes.len());
    for ((node, subs), m0) in nodes.iter().zip(sets).zip(m0) {
        let mut v = subscribers_json(subs);
        v["addr"] = json!(node.endpoint.addr.to_string());
        v["received_deliveries"] = json!(subs.stats.messages() - m0);
        v["streams_closed"] = json!(subs.stats.closed.load(std::sync::atomic::Ordering::Relaxed));
        if node.endpoint.kind == Kind::Picloud {
            v["health"] = health(&node.endpoint).await?;
        }
        out.push(v);
    }
    Ok(out)
}

/// A PiCloud node's `/health/realtime` (its counters since it started).
pub async fn health(ep: &Endpoint) -> Result<Value> {
    let (status, body) = ep.admin("GET", "/health/realtime", "").await?;
    if status != 200 {
        bail!("GET /health/realtime: {status} {body}");
    }
    serde_json::from_str(&body).context("parse /health/realtime")
}

/// The relay counters summed over the nodes (drops and repairs should all be 0).
fn relay_totals(by_node: &[Value]) -> Value {
    let mut totals = serde_json::Map::new();
    for key in HEALTH_COUNTERS {
        let sum: u64 = by_node
            .iter()
            .filter_map(|n| n["health"][key].as_u64())
            .sum();
        totals.insert(key.into(), json!(sum));
    }
    Value::Object(totals)
}
