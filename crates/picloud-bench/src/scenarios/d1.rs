//! D1 (PiCloud only): the trigger dispatcher, on SQLite and on PostgreSQL. Topic `jobs`
//! has a pubsub trigger running script `handler`, which republishes `event.message`
//! ephemerally to the public topic `done`; one raw SSE subscriber on `done` counts what
//! the handler ran.
//!
//! - `drain`: with the dispatcher off (`PICLOUD_DISPATCH_WORKERS=0`), 16 connections
//!   publish 20,000 (× `--scale`) durable messages to `jobs` as fast as they can (each
//!   becomes one pending delivery); the server stops (SIGTERM) and starts again on the same
//!   data with the dispatcher on, while the subscriber keeps trying to connect, so it is
//!   subscribed before the server serves its first request. Figures: time from spawn to the
//!   first and the last message, deliveries/s over first→last, server CPU per delivery.
//! - `latency`: a fresh server with the dispatcher on; the subscriber on `done`; 500
//!   publishes/s to `jobs` from 8 connections for `--duration-secs`; every message's
//!   publish→handler→SSE latency.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use super::{delivery_run, finish, publish_run, subscribers_json, Ctx};
use crate::http::HttpConn;
use crate::publisher::{round1, round3, Pace, Plan};
use crate::server::{free_loopback_addr, picloud_subscribe_request, Backend, Data, Endpoint};
use crate::sse_client::{ConnectOpts, Subscribers};
use crate::sys;

/// Durable messages published for the drain at `--scale 1.0`.
pub const DRAIN_MESSAGES: usize = 20_000;
const DRAIN_CONNS: usize = 16;
/// The drain gives up this long after the restarted server was spawned.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
pub const LATENCY_RATE: f64 = 500.0;
const LATENCY_CONNS: usize = 8;
pub const HANDLER: &str = r#"pubsub::publish_ephemeral("done", event.message)"#;

pub async fn run(ctx: &Ctx) -> Result<Value> {
    let mut out = Map::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        crate::progress!("  d1 drain on {}", backend.name());
        let drain = drain(ctx, backend)
            .await
            .unwrap_or_else(|e| json!({ "error": format!("{e:#}") }));
        crate::progress!("  d1 latency on {}", backend.name());
        let latency = latency(ctx, backend)
            .await
            .unwrap_or_else(|e| json!({ "error": format!("{e:#}") }));
        out.insert(
            backend.name().into(),
            json!({ "drain": drain, "latency": latency }),
        );
    }
    Ok(Value::Object(out))
}

/// App `bench`, topics `jobs` (internal) and `done` (public), script `handler`, and the
/// pubsub trigger on `jobs`.
async fn setup(ep: &Endpoint) -> Result<()> {
    const TOPICS: &str = "/api/v1/apps/bench/topics";
    ep.create_app().await?;
    ep.admin_post(TOPICS, r#"{"name":"jobs"}"#, 201).await?;
    ep.admin_post(
        TOPICS,
        r#"{"name":"done","external_subscribable":true,"auth_mode":"public"}"#,
        201,
    )
    .await?;
    let script = json!({ "name": "handler", "source": HANDLER }).to_string();
    ep.admin_post("/api/v1/apps/bench/scripts", &script, 201)
        .await?;
    ep.admin_post(
        "/api/v1/apps/bench/triggers",
        r#"{"kind":"pubsub","script":"handler","filter":{"topic":"jobs"}}"#,
        201,
    )
    .await?;
    Ok(())
}

/// The dispatcher's counters from `/metrics` (this server process only).
async fn counters(ep: &Endpoint) -> Value {
    let text = async {
        let mut c = HttpConn::connect(ep.addr).await?;
        let status = c
            .roundtrip(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await?;
        if status != 200 {
            bail!("GET /metrics: {status}");
        }
        Ok(c.body_text())
    }
    .await;
    match text {
        Ok(t) => json!({
            "deliveries_completed": metric(&t, "picloud_deliveries_total", None),
            "script_runs_ok": metric(&t, "picloud_script_runs_total", Some(r#"outcome="ok""#)),
            "script_runs_error": metric(&t, "picloud_script_runs_total", Some(r#"outcome="error""#)),
            "delivery_retries": metric(&t, "picloud_delivery_retries_total", None),
            "dead_letters": metric(&t, "picloud_dead_letters_total", None),
            // A stream that fell behind the hub's buffer: `done` is ephemeral, so what it
            // missed is gone (no history), and shows as loss.
            "stream_gap_repairs": metric(&t, "picloud_realtime_gap_repairs_total", None),
            "slow_consumer_disconnects": metric(&t, "picloud_realtime_slow_consumer_disconnects_total", None),
            "ephemeral_published": metric(&t, "picloud_realtime_published_total", Some(r#"kind="ephemeral""#)),
        }),
        Err(e) => json!({ "error": format!("{e:#}") }),
    }
}

/// Sum of a Prometheus counter's samples (those whose labels contain `label`), 0 if absent.
fn metric(text: &str, name: &str, label: Option<&str>) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                return None;
            }
            if label.is_some_and(|want| !rest.contains(want)) {
                return None;
            }
            rest.rsplit(' ').next()?.parse::<f64>().ok()
        })
        .sum::<f64>() as u64
}

fn secs_between(epoch: Instant, from: Instant, to_ns: u64) -> Option<f64> {
    let from_ns = from.saturating_duration_since(epoch).as_nanos() as u64;
    (to_ns != 0).then(|| round3(to_ns.saturating_sub(from_ns) as f64 / 1e9))
}

async fn drain(ctx: &Ctx, backend: Backend) -> Result<Value> {
    let n = ctx.scaled(DRAIN_MESSAGES) as u64;
    // 1. Dispatcher off: publish, each publish leaves one pending delivery.
    let server = ctx
        .start_picloud(
            Data::Fresh(backend),
            &[("PICLOUD_DISPATCH_WORKERS", "0")],
            None,
        )
        .await?;
    let published: Result<Value> = async {
        setup(&server.endpoint).await?;
        let plan = Plan {
            conns: DRAIN_CONNS,
            pace: Pace::Saturate,
            duration: Duration::from_secs(600),
            durable: true,
            topics: 1,
            named_topic: Some("jobs"),
            limit: Some(n),
            batch: 1,
        };
        let v = publish_run(ctx, &server, plan).await?;
        crate::progress!(
            "  d1 drain: {} publishes ok ({} failed) at {} /s with the dispatcher off",
            v["publishes_ok"],
            v["publishes_failed"],
            v["publishes_per_sec"]
        );
        Ok(v)
    }
    .await;
    let (report, kept) = server.stop_keeping_data().await;
    let mut publish = match published {
        Ok(v) => v,
        Err(e) => return Ok(json!({ "error": format!("{e:#}"), "publish_server": report })),
    };
    publish["server"] = report;
    let expected = publish["publishes_ok"].as_u64().unwrap_or(0);

    // 2. Dispatcher on, same data; the subscriber connects while the server starts (the
    //    listener is bound before the dispatcher starts, so it is accepted first).
    let addr = free_loopback_addr()?;
    let opts = ConnectOpts {
        sample_every: u64::MAX, // send times are from the publish run: meaningless here
        retry_refused_for: Some(Duration::from_secs(60)),
        ..ConnectOpts::default()
    };
    let self0 = sys::self_cpu_secs();
    let start = async {
        let s = ctx.start_picloud(Data::Kept(kept), &[], Some(addr)).await;
        (s, Instant::now())
    };
    let subscribe = Subscribers::connect_with(
        addr,
        vec![picloud_subscribe_request("done")],
        ctx.epoch,
        Duration::from_secs(60),
        opts,
    );
    let ((server, ready_at), subs) = tokio::join!(start, subscribe);
    let server = server?;
    let subs = subs?;
    // The dispatcher starts with the server, so the handler's first ephemeral messages can
    // go out before the subscriber's stream is registered; those never reach it, by design.
    // Everything published after this read (the stream answered 200, so it is registered)
    // must arrive: that, not `expected`, is what a loss is counted against.
    let before = counters(&server.endpoint).await["ephemeral_published"]
        .as_u64()
        .unwrap_or(0);
    let r = drain_watch(ctx, &server, &subs, expected, before, ready_at, self0).await;
    let mut v = r.map(|mut v| {
        v["subscriber"] = subscribers_json(&subs);
        v["publish"] = publish;
        v["messages"] = json!(n);
        v
    });
    subs.close().await;
    if let Ok(v) = &mut v {
        v["counted_by"] = json!("SSE messages read by one subscriber on `done`; `server_counters` from the restarted server's /metrics");
    }
    finish(v, server).await
}

/// Waits for `expected` messages on `done` (or the timeout, or the server's counters say
/// every delivery is done and no message came for 2 s), then reports.
async fn drain_watch(
    ctx: &Ctx,
    server: &crate::server::Server,
    subs: &Subscribers,
    expected: u64,
    published_before_subscribed: u64,
    ready_at: Instant,
    self0: f64,
) -> Result<Value> {
    let stats = &subs.stats;
    if subs.connected() == 0 {
        bail!(
            "the subscriber on `done` did not connect: {}",
            subs.first_error().unwrap_or_default()
        );
    }
    let cpu_ready = server.cpu_secs(ctx.clk_tck)?;
    let spawned = server.spawned_at;
    let mut cpu_first: Option<f64> = None;
    let mut last_count = 0;
    let mut last_change = Instant::now();
    let mut last_report = Instant::now();
    let mut last_metrics = Instant::now();
    let mut timed_out = false;
    loop {
        let got = stats.messages();
        if got > 0 && cpu_first.is_none() {
            cpu_first = Some(server.cpu_secs(ctx.clk_tck)?);
        }
        if got >= expected {
            break;
        }
        if got != last_count {
            last_count = got;
            last_change = Instant::now();
        }
        if spawned.elapsed() > DRAIN_TIMEOUT {
            timed_out = true;
            crate::progress!("  d1 drain: timeout with {got}/{expected} messages");
            break;
        }
        if last_change.elapsed() > Duration::from_secs(2)
            && last_metrics.elapsed() > Duration::from_secs(1)
        {
            // No message for 2 s: done if the server ran every delivery (some messages
            // then never reached the subscriber).
            last_metrics = Instant::now();
            let c = counters(&server.endpoint).await;
            if c["deliveries_completed"].as_u64().unwrap_or(0) >= expected {
                crate::progress!(
                    "  d1 drain: server completed every delivery but only {got}/{expected} messages arrived"
                );
                break;
            }
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            crate::progress!("  d1 drain: {got}/{expected} messages");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cpu_last = server.cpu_secs(ctx.clk_tck)?;
    let client_cpu = sys::self_cpu_secs() - self0;
    let received = stats.messages();
    let first_ns = stats.first_message_ns.load(Relaxed);
    let last_ns = stats.last_message_ns.load(Relaxed);
    // Let the last completion batch and invocation records land, then read the counters.
    let mut c = counters(&server.endpoint).await;
    let settle = Instant::now();
    while c["deliveries_completed"].as_u64().unwrap_or(0) < expected
        && settle.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c = counters(&server.endpoint).await;
    }
    let cpu_settled = server.cpu_secs(ctx.clk_tck)?;
    let epoch = ctx.epoch;
    let to_first = secs_between(epoch, spawned, first_ns);
    let to_last = secs_between(epoch, spawned, last_ns);
    let first_to_last = (first_ns != 0).then(|| (last_ns - first_ns) as f64 / 1e9);
    let per_sec = |span: Option<f64>| span.map(|s| round1(received as f64 / s.max(1e-9)));
    // At most `published_before_subscribed` can be missing without a loss (see `drain`).
    let loss = expected
        .saturating_sub(published_before_subscribed)
        .saturating_sub(received);
    let span_from_spawn = to_last.unwrap_or(0.0);
    crate::progress!(
        "  d1 drain: {received}/{expected} messages; spawn→first {:?} s, spawn→last {:?} s, first→last {:?} s = {:?} /s; server cpu {cpu_settled:.2} s",
        to_first,
        to_last,
        first_to_last.map(round3),
        per_sec(first_to_last)
    );
    Ok(json!({
        "expected_deliveries": expected,
        "received_messages": received,
        "published_before_subscribed": published_before_subscribed,
        "missing": expected.saturating_sub(received),
        "loss": loss,
        "timed_out": timed_out,
        "timeout_secs": DRAIN_TIMEOUT.as_secs(),
        "spawn_to_ready_secs": round3((ready_at - spawned).as_secs_f64()),
        "spawn_to_first_secs": to_first,
        "spawn_to_last_secs": to_last,
        "first_to_last_secs": first_to_last.map(round3),
        "deliveries_per_sec": per_sec(first_to_last),
        "deliveries_per_sec_from_spawn": per_sec(to_last),
        "server_cpu_secs_to_ready": round3(cpu_ready),
        "server_cpu_secs_to_first": cpu_first.map(round3),
        "server_cpu_secs_to_last": round3(cpu_last),
        "server_cpu_secs": round3(cpu_settled),
        "server_cpu_util": round3(cpu_last / span_from_spawn.max(1e-9)),
        "server_cpu_us_per_delivery": round3(cpu_settled * 1e6 / received.max(1) as f64),
        "server_rss_bytes": server.rss_bytes()?,
        "client_cpu_util": round3(client_cpu / span_from_spawn.max(1e-9)),
        "streams_closed_during_run": stats.closed.load(Relaxed),
        "server_counters": c,
        "cpu_note": "server_cpu_secs: the restarted process from spawn until every delivery was completed (startup included: see server_cpu_secs_to_ready)",
    }))
}

async fn latency(ctx: &Ctx, backend: Backend) -> Result<Value> {
    let server = ctx.start_picloud(Data::Fresh(backend), &[], None).await?;
    let r = latency_body(ctx, &server).await;
    finish(r, server).await
}

async fn latency_body(ctx: &Ctx, server: &crate::server::Server) -> Result<Value> {
    let ep = &server.endpoint;
    setup(ep).await?;
    let opts = ConnectOpts {
        sample_every: 1,
        ..ConnectOpts::default()
    };
    let subs = Subscribers::connect_with(
        ep.addr,
        vec![picloud_subscribe_request("done")],
        ctx.epoch,
        Duration::from_secs(30),
        opts,
    )
    .await?;
    if subs.connected() == 0 {
        bail!(
            "the subscriber on `done` did not connect: {}",
            subs.first_error().unwrap_or_default()
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let plan = Plan {
        conns: LATENCY_CONNS,
        pace: Pace::Rate(LATENCY_RATE),
        duration: ctx.duration(),
        durable: true,
        topics: 1,
        named_topic: Some("jobs"),
        limit: None,
        batch: 1,
    };
    let run = delivery_run(ctx, server, &subs, plan, 1).await;
    let mut v = subscribers_json(&subs);
    subs.close().await;
    v["run"] = run?;
    v["latency_sample_every"] = json!(1);
    v["server_counters"] = counters(ep).await;
    v["measures"] = json!("e2e_latency_ms: publish request written to `jobs` → the handler's ephemeral message on `done` read by the subscriber");
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::metric;

    #[test]
    fn prometheus_counters() {
        let t = "# TYPE picloud_script_runs_total counter\npicloud_script_runs_total{outcome=\"ok\"} 20000\npicloud_script_runs_total{outcome=\"error\"} 3\npicloud_deliveries_total 19990\npicloud_deliveries_total_x 5\n";
        assert_eq!(metric(t, "picloud_script_runs_total", None), 20003);
        assert_eq!(
            metric(t, "picloud_script_runs_total", Some("outcome=\"ok\"")),
            20000
        );
        assert_eq!(metric(t, "picloud_deliveries_total", None), 19990);
        assert_eq!(metric(t, "picloud_dead_letters_total", None), 0);
    }
}
