//! W2: presence churn (PiCloud only). 10,000 members, each a WebSocket with its own token
//! `sub`, enter one presence topic; a watcher subscribed to it reads the events. Then for
//! `--duration-secs` every member leaves and enters again in a closed loop: the joins and
//! leaves per second the node sustains (as the watcher received them) and the p99 from a
//! member's `presence.enter` to the watcher's `join` for it. The per-connection presence
//! rate is raised for the run (the default, 5/s, would measure the quota).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use super::{finish, Ctx};
use crate::latency;
use crate::publisher::round3;
use crate::server::{Backend, Kind, Server};

const TOPIC: &str = "lobby";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn run(ctx: &Ctx) -> Result<Value> {
    let server = ctx.start(Kind::Picloud, Backend::Sqlite).await?;
    let r = body(ctx, &server).await;
    finish(r, server).await
}

/// What the watcher saw: events, and per member the send time of its pending enter.
struct Seen {
    events: AtomicU64,
    joins: AtomicU64,
    /// ns since the epoch of member i's last `presence.enter` (0: none pending).
    entered_at: Vec<AtomicU64>,
    latency: Mutex<hdrhistogram::Histogram<u64>>,
}

async fn body(ctx: &Ctx, server: &Server) -> Result<Value> {
    let ep = &server.endpoint;
    let n = ctx.scaled(10_000);
    ep.create_app().await?;
    let (status, body) = ep
        .admin(
            "POST",
            "/api/v1/apps/bench/topics",
            &format!(r#"{{"name":"{TOPIC}","external_subscribable":true,"auth_mode":"public","presence":true}}"#),
        )
        .await?;
    if status != 201 {
        bail!("create the presence topic: {status} {body}");
    }
    let (status, body) = ep
        .admin(
            "PUT",
            "/api/v1/apps/bench/quotas",
            r#"{"presence_per_sec":100000}"#,
        )
        .await?;
    if status != 200 {
        bail!("raise the presence rate: {status} {body}");
    }
    crate::progress!("w2: minting {n} tokens");
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let (status, body) = ep
            .admin(
                "POST",
                "/api/v1/apps/bench/tokens",
                &format!(r#"{{"topics":["{TOPIC}"],"ttl_secs":3600,"subject":"m{i}"}}"#),
            )
            .await?;
        if status != 201 {
            bail!("mint a token: {status} {body}");
        }
        let v: Value = serde_json::from_str(&body)?;
        tokens.push(v["token"].as_str().context("token")?.to_owned());
    }

    let seen = Arc::new(Seen {
        events: AtomicU64::new(0),
        joins: AtomicU64::new(0),
        entered_at: (0..n).map(|_| AtomicU64::new(0)).collect(),
        latency: Mutex::new(latency::histogram()),
    });
    let mut watcher = connect(ep.addr, None).await?;
    request(&mut watcher, json!({"type": "subscribe", "topic": TOPIC})).await?;
    let watching = tokio::spawn(watch(watcher, seen.clone(), ctx.epoch));

    crate::progress!("w2: connecting {n} members");
    let mut members = Vec::with_capacity(n);
    for t in &tokens {
        members.push(connect(ep.addr, Some(t)).await?);
    }
    let churning = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let fill_start = Instant::now();
    let cpu0 = server.cpu_secs(ctx.clk_tck)?;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, socket) in members.into_iter().enumerate() {
        let (seen, churning, stop, epoch) =
            (seen.clone(), churning.clone(), stop.clone(), ctx.epoch);
        tasks.spawn(member(i, socket, seen, churning, stop, epoch));
    }
    while seen.joins.load(Relaxed) < n as u64 {
        if fill_start.elapsed() > Duration::from_secs(120) {
            bail!(
                "only {} of {n} joins seen after 120 s",
                seen.joins.load(Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let fill = fill_start.elapsed().as_secs_f64();
    let fill_cpu = server.cpu_secs(ctx.clk_tck)? - cpu0;
    crate::progress!("w2: {n} joins in {fill:.2} s");
    let fill_latency = std::mem::replace(
        &mut *seen.latency.lock().expect("lock"),
        latency::histogram(),
    );

    let events0 = seen.events.load(Relaxed);
    let cpu0 = server.cpu_secs(ctx.clk_tck)?;
    let t0 = Instant::now();
    churning.store(true, Relaxed);
    tokio::time::sleep(ctx.duration()).await;
    let events = seen.events.load(Relaxed) - events0;
    let window = t0.elapsed().as_secs_f64();
    let cpu = server.cpu_secs(ctx.clk_tck)? - cpu0;
    stop.store(true, Relaxed);
    let rss = server.rss_bytes()?;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    watching.abort();
    let churn_latency = seen.latency.lock().expect("lock").clone();
    crate::progress!(
        "w2: {events} joins+leaves in {window:.2} s = {:.0}/s, enter→join p99 {} ms",
        events as f64 / window,
        churn_latency.value_at_quantile(0.99) as f64 / 1000.0
    );
    Ok(json!({
        "members": n,
        "fill": {
            "joins": n,
            "secs": round3(fill),
            "joins_per_sec": (n as f64 / fill).round(),
            "server_cpu_secs": round3(fill_cpu),
            "enter_to_join_ms": latency::summary(&fill_latency),
        },
        "churn": {
            "joins_and_leaves": events,
            "secs": round3(window),
            "joins_and_leaves_per_sec": (events as f64 / window).round(),
            "server_cpu_util": round3(cpu / window),
            "server_cpu_us_per_event": round3(cpu * 1e6 / events.max(1) as f64),
            "enter_to_join_ms": latency::summary(&churn_latency),
        },
        "server_rss_bytes": rss,
    }))
}

async fn connect(addr: std::net::SocketAddr, token: Option<&str>) -> Result<Socket> {
    let query = token.map_or(String::new(), |t| format!("?token={t}"));
    let mut req = format!("ws://{addr}/realtime/ws{query}").into_client_request()?;
    req.headers_mut()
        .insert("host", HeaderValue::from_static("bench.localhost"));
    Ok(tokio_tungstenite::connect_async(req).await?.0)
}

/// Sends `frame` (id 1) and waits for its answer.
async fn request(socket: &mut Socket, mut frame: Value) -> Result<Value> {
    frame["id"] = json!(1);
    socket.send(Message::text(frame.to_string())).await?;
    loop {
        match socket.next().await.context("closed")?? {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str())?;
                if v["id"] == 1 {
                    if v["type"] == "error" {
                        bail!("refused: {v}");
                    }
                    return Ok(v);
                }
            }
            Message::Close(_) => bail!("closed"),
            _ => {}
        }
    }
}

/// Enters once, then (while churning) leaves and enters again until stopped.
async fn member(
    i: usize,
    mut socket: Socket,
    seen: Arc<Seen>,
    churning: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
) -> Result<()> {
    let enter = json!({"type": "presence.enter", "topic": TOPIC, "data": {"i": i}});
    let leave = json!({"type": "presence.leave", "topic": TOPIC});
    seen.entered_at[i].store(epoch.elapsed().as_nanos() as u64, Relaxed);
    request(&mut socket, enter.clone()).await?;
    while !churning.load(Relaxed) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while !stop.load(Relaxed) {
        request(&mut socket, leave.clone()).await?;
        seen.entered_at[i].store(epoch.elapsed().as_nanos() as u64, Relaxed);
        request(&mut socket, enter.clone()).await?;
    }
    Ok(())
}

/// Counts presence events; a join's latency from its member's enter.
async fn watch(mut socket: Socket, seen: Arc<Seen>, epoch: Instant) -> Result<()> {
    while let Some(msg) = socket.next().await {
        let Message::Text(t) = msg? else { continue };
        let v: Value = serde_json::from_str(t.as_str())?;
        if v["type"] != "presence" {
            continue;
        }
        seen.events.fetch_add(1, Relaxed);
        if v["event"] != "join" {
            continue;
        }
        seen.joins.fetch_add(1, Relaxed);
        let i: usize = v["member"]["sub"].as_str().unwrap_or("m0")[1..]
            .parse()
            .unwrap_or(0);
        let sent = seen.entered_at.get(i).map_or(0, |a| a.swap(0, Relaxed));
        if sent > 0 {
            let us = (epoch.elapsed().as_nanos() as u64).saturating_sub(sent) / 1000;
            seen.latency
                .lock()
                .expect("lock")
                .saturating_record(us.max(1));
        }
    }
    Ok(())
}
