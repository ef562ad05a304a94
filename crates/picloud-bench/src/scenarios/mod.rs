//! The scenarios, their shared context and the measurements they share.
//!
//! Every scenario starts its own server (fresh data, nothing left from an earlier one),
//! closes its subscribers before stopping it, and reports the server's log summary under
//! `"server"`. An error becomes `{"error": …}` for that scenario only.

mod c1;
mod c2;
mod d1;
mod e1;
mod s1;
mod s2;
mod s3;
mod s4;
mod s5;
mod w1;
mod w2;

pub use d1::DRAIN_MESSAGES as D1_DRAIN_MESSAGES;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Map, Value};

use crate::cli::Args;
use crate::latency::{self, Payload};
use crate::publisher::{self, round1, round3, Plan};
use crate::server::{Backend, Data, Kind, Server};
use crate::sse_client::Subscribers;
use crate::sys;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    S1,
    S2,
    S3,
    S4,
    S5,
    D1,
    E1,
    C1,
    C2,
    W1,
    W2,
}

impl Scenario {
    /// `--scenario all`. The cluster scenarios (C1, C2) are not in it: they need
    /// `redis-server` and PostgreSQL, and measure the cluster, not the one-node server the
    /// ratios are about.
    pub const ALL: [Scenario; 7] = [
        Scenario::S1,
        Scenario::S2,
        Scenario::S3,
        Scenario::S4,
        Scenario::S5,
        Scenario::D1,
        Scenario::E1,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::S1 => "s1",
            Scenario::S2 => "s2",
            Scenario::S3 => "s3",
            Scenario::S4 => "s4",
            Scenario::S5 => "s5",
            Scenario::D1 => "d1",
            Scenario::E1 => "e1",
            Scenario::C1 => "c1",
            Scenario::C2 => "c2",
            Scenario::W1 => "w1",
            Scenario::W2 => "w2",
        }
    }

    /// Whether `kind` runs this scenario. S5, D1 and E1 are PiCloud's only (Nchan has no
    /// durable store and no scripts). The floor runs S4 only: one subscriber per topic
    /// and one message per request is where "the system calls and nothing else" is a
    /// floor; with S2's 1,000 subscribers per topic it would be a naive fan-out (one send
    /// per frame per subscriber), not a bound. C1 runs on PiCloud and Nchan (with Redis);
    /// C2, the relay's cost, on PiCloud only. W1 (WebSocket fan-out) on both; W2 (presence
    /// churn) on PiCloud only: Nchan has no presence.
    pub fn runs_on(self, kind: Kind) -> bool {
        match kind {
            Kind::Picloud => true,
            Kind::Nchan => !matches!(
                self,
                Scenario::S5 | Scenario::D1 | Scenario::E1 | Scenario::C2 | Scenario::W2
            ),
            Kind::Floor => self == Scenario::S4,
        }
    }
}

pub struct Ctx {
    pub args: Args,
    pub picloud_bin: PathBuf,
    /// `picloud-floor`, next to this executable.
    pub floor_bin: PathBuf,
    /// Time zero of the payload timestamps (publishers and subscribers share the process).
    pub epoch: Instant,
    pub payload: Arc<Payload>,
    pub clk_tck: f64,
}

impl Ctx {
    /// `full` × `--scale`, at least 1.
    pub fn scaled(&self, full: usize) -> usize {
        ((full as f64 * self.args.scale).round() as usize).max(1)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.args.duration_secs)
    }

    pub async fn start(&self, kind: Kind, backend: Backend) -> Result<Server> {
        match kind {
            Kind::Picloud => self.start_picloud(Data::Fresh(backend), &[], None).await,
            Kind::Nchan => Server::start_nchan(&self.args.nchan_conf, self.args.server_cpu).await,
            Kind::Floor => Server::start_floor(&self.floor_bin, self.args.server_cpu).await,
        }
    }

    /// PiCloud on `data` with extra environment `env`, on `addr` (default: a free port).
    pub async fn start_picloud(
        &self,
        data: Data,
        env: &[(&str, &str)],
        addr: Option<std::net::SocketAddr>,
    ) -> Result<Server> {
        Server::start_picloud(
            &self.picloud_bin,
            self.args.server_cpu,
            data,
            &self.args.postgres_url,
            env,
            addr,
        )
        .await
    }

    /// Opens `n` WebSocket subscribers of topic 0.
    pub async fn subscribe_ws(&self, server: &Server, n: usize) -> Result<Subscribers> {
        let ep = &server.endpoint;
        let reqs = (0..n).map(|_| ep.ws_subscribe_request(0)).collect();
        let opts = crate::sse_client::ConnectOpts {
            websocket: true,
            // PiCloud answers the subscribe frame first.
            ws_skip: u64::from(ep.kind == Kind::Picloud),
            ..Default::default()
        };
        let subs =
            Subscribers::connect_with(ep.addr, reqs, self.epoch, Duration::from_secs(180), opts)
                .await?;
        if subs.connected() == 0 {
            anyhow::bail!(
                "no WebSocket subscriber connected: {}",
                subs.first_error().unwrap_or_default()
            );
        }
        Ok(subs)
    }

    /// Opens `n` subscribers, subscriber `i` on topic `topic_of(i)`.
    pub async fn subscribe(
        &self,
        server: &Server,
        n: usize,
        topic_of: impl Fn(usize) -> usize,
    ) -> Result<Subscribers> {
        let ep = &server.endpoint;
        let reqs = (0..n).map(|i| ep.subscribe_request(topic_of(i))).collect();
        let subs =
            Subscribers::connect(ep.addr, reqs, self.epoch, Duration::from_secs(180)).await?;
        if subs.connected() == 0 {
            anyhow::bail!(
                "no subscriber connected: {}",
                subs.first_error().unwrap_or_default()
            );
        }
        Ok(subs)
    }
}

pub async fn run(ctx: &Ctx, kind: Kind, s: Scenario) -> Value {
    let r = match s {
        Scenario::S1 => s1::run(ctx, kind).await,
        Scenario::S2 => s2::run(ctx, kind).await,
        Scenario::S3 => s3::run(ctx, kind).await,
        Scenario::S4 => s4::run(ctx, kind).await,
        Scenario::S5 => s5::run(ctx).await,
        Scenario::D1 => d1::run(ctx).await,
        Scenario::E1 => e1::run(ctx).await,
        Scenario::C1 => c1::run(ctx, kind).await,
        Scenario::C2 => c2::run(ctx).await,
        Scenario::W1 => w1::run(ctx, kind).await,
        Scenario::W2 => w2::run(ctx).await,
    };
    r.unwrap_or_else(|e| json!({ "error": format!("{e:#}") }))
}

/// Stops the server and puts its report next to the result (or the error).
pub async fn finish(result: Result<Value>, server: Server) -> Result<Value> {
    let report = server.stop().await;
    let mut v = result.unwrap_or_else(|e| json!({ "error": format!("{e:#}") }));
    v["server"] = report;
    Ok(v)
}

/// Publishes per `plan` while measuring the server's CPU and the tool's own. No
/// subscribers involved.
pub async fn publish_run(ctx: &Ctx, server: &Server, plan: Plan) -> Result<Value> {
    let cpu0 = server.cpu_secs(ctx.clk_tck)?;
    let self0 = sys::self_cpu_secs();
    let out = publisher::run(&server.endpoint, plan, ctx.payload.clone(), ctx.epoch).await?;
    let cpu = server.cpu_secs(ctx.clk_tck)? - cpu0;
    let wall = out.elapsed.as_secs_f64();
    let mut v = out.to_json(&plan);
    v["durable"] = json!(plan.durable);
    v["server_cpu_secs"] = json!(round3(cpu));
    v["server_cpu_util"] = json!(round3(cpu / wall));
    v["server_cpu_us_per_publish"] = json!(round3(cpu * 1e6 / out.ok.max(1) as f64));
    v["server_rss_bytes"] = json!(server.rss_bytes()?);
    v["client_cpu_util"] = json!(round3((sys::self_cpu_secs() - self0) / wall));
    Ok(v)
}

/// Publishes per `plan` to topics with `fanout` subscribers each, then waits for the
/// deliveries to drain (until all arrived, 1 s without progress, or 10 s), and reports
/// deliveries, loss, publish→receive latency and server CPU over the whole window.
pub async fn delivery_run(
    ctx: &Ctx,
    server: &Server,
    subs: &Subscribers,
    plan: Plan,
    fanout: u64,
) -> Result<Value> {
    let stats = &subs.stats;
    let _ = stats.take_latency();
    let m0 = stats.messages();
    let closed0 = stats.closed.load(std::sync::atomic::Ordering::Relaxed);
    let cpu0 = server.cpu_secs(ctx.clk_tck)?;
    let self0 = sys::self_cpu_secs();
    let t0 = Instant::now();
    let out = publisher::run(&server.endpoint, plan, ctx.payload.clone(), ctx.epoch).await?;
    let expected = out.ok * fanout;
    let last_change = wait_for_deliveries(expected, &|| stats.messages() - m0).await;
    let received = stats.messages() - m0;
    let window = (last_change - t0).as_secs_f64();
    let cpu = server.cpu_secs(ctx.clk_tck)? - cpu0;
    let client_cpu = sys::self_cpu_secs() - self0;
    let e2e = stats.take_latency();
    let closed = stats.closed.load(std::sync::atomic::Ordering::Relaxed) - closed0;
    let loss = expected as i64 - received as i64;
    crate::progress!(
        "  {} publishes ok ({} failed), {received}/{expected} deliveries in {window:.2} s = {:.0}/s, e2e p50 {} ms p99 {} ms, server cpu {cpu:.2} s",
        out.ok,
        out.failed(),
        received as f64 / window,
        e2e.value_at_quantile(0.5) as f64 / 1000.0,
        e2e.value_at_quantile(0.99) as f64 / 1000.0,
    );
    let mut v = out.to_json(&plan);
    v["durable"] = json!(plan.durable);
    v["fanout"] = json!(fanout);
    v["expected_deliveries"] = json!(expected);
    v["received_deliveries"] = json!(received);
    v["loss"] = json!(loss);
    v["loss_pct"] = json!(round3(100.0 * loss.max(0) as f64 / expected.max(1) as f64));
    v["delivery_window_secs"] = json!(round3(window));
    v["deliveries_per_sec"] = json!(round1(received as f64 / window.max(1e-9)));
    v["e2e_latency_ms"] = latency::summary(&e2e);
    v["server_cpu_secs"] = json!(round3(cpu));
    v["server_cpu_util"] = json!(round3(cpu / window.max(1e-9)));
    v["server_cpu_us_per_delivery"] = json!(round3(cpu * 1e6 / received.max(1) as f64));
    v["server_rss_bytes"] = json!(server.rss_bytes()?);
    v["client_cpu_util"] = json!(round3(client_cpu / window.max(1e-9)));
    v["streams_closed_during_run"] = json!(closed);
    Ok(v)
}

/// After publishing: waits until `received()` reaches `expected`, or 1 s passes without
/// progress, or 10 s in all; returns when the count last moved (or reached `expected`).
pub async fn wait_for_deliveries(expected: u64, received: &impl Fn() -> u64) -> Instant {
    let drain_start = Instant::now();
    let mut last = received();
    let mut last_change = drain_start;
    loop {
        let got = received();
        if got >= expected {
            return Instant::now();
        }
        if got != last {
            last = got;
            last_change = Instant::now();
        }
        if last_change.elapsed() > Duration::from_secs(1)
            || drain_start.elapsed() > Duration::from_secs(10)
        {
            return last_change;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The subscriber figures every delivery scenario reports.
pub fn subscribers_json(subs: &Subscribers) -> Value {
    json!({
        "subscribers": subs.n,
        "connected": subs.connected(),
        "failed": subs.stats.failed.load(std::sync::atomic::Ordering::Relaxed),
        "connect_secs": round3(subs.connect_secs),
        "first_error": subs.first_error(),
    })
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_f64()
}

/// How to read a ratio, after the sentence that says where it comes from.
const RATIO_READING: &str = "deliveries_per_sec: >1 means PiCloud (or the floor) delivers more. bytes_per_conn, cpu_us_per_delivery, latency: <1 means it uses less / is faster.";

/// `side`/Nchan for the figures that compare (S1–S4), `null` when either is missing. The
/// floor's one publish kind is Nchan's (`plain`): it stands for PiCloud's ephemeral runs,
/// and the durable and batch figures, which it has none of, come out `null`.
pub fn ratios(results: &Value, side: Kind) -> Value {
    let name = side.name();
    let r = |pi: &[&str], nc: &[&str]| -> Value {
        let path: Vec<&str> = pi
            .iter()
            .map(|&k| match (side, k) {
                (Kind::Floor, "ephemeral") => "plain",
                _ => k,
            })
            .collect();
        match (num(&results[name], &path), num(&results["nchan"], nc)) {
            (Some(a), Some(b)) if b != 0.0 => json!(round3(a / b)),
            _ => Value::Null,
        }
    };
    json!({
        "s1_bytes_per_conn": r(&["s1", "bytes_per_conn"], &["s1", "bytes_per_conn"]),
        "s2_deliveries_per_sec_ephemeral": r(&["s2", "runs", "ephemeral", "deliveries_per_sec"], &["s2", "runs", "plain", "deliveries_per_sec"]),
        "s2_deliveries_per_sec_durable": r(&["s2", "runs", "durable", "deliveries_per_sec"], &["s2", "runs", "plain", "deliveries_per_sec"]),
        "s2_server_cpu_us_per_delivery_ephemeral": r(&["s2", "runs", "ephemeral", "server_cpu_us_per_delivery"], &["s2", "runs", "plain", "server_cpu_us_per_delivery"]),
        "s3_e2e_p50_ms": r(&["s3", "run", "e2e_latency_ms", "p50_ms"], &["s3", "run", "e2e_latency_ms", "p50_ms"]),
        "s3_e2e_p99_ms": r(&["s3", "run", "e2e_latency_ms", "p99_ms"], &["s3", "run", "e2e_latency_ms", "p99_ms"]),
        "s4_deliveries_per_sec_ephemeral": r(&["s4", "runs", "ephemeral", "deliveries_per_sec"], &["s4", "runs", "plain", "deliveries_per_sec"]),
        "s4_deliveries_per_sec_durable": r(&["s4", "runs", "durable", "deliveries_per_sec"], &["s4", "runs", "plain", "deliveries_per_sec"]),
        // PiCloud's batch endpoint against Nchan's one message per request (it has no batch).
        "s4_deliveries_per_sec_ephemeral_batch": r(&["s4", "runs", "ephemeral_batch", "deliveries_per_sec"], &["s4", "runs", "plain", "deliveries_per_sec"]),
        "s4_deliveries_per_sec_durable_batch": r(&["s4", "runs", "durable_batch", "deliveries_per_sec"], &["s4", "runs", "plain", "deliveries_per_sec"]),
        // Three nodes each: PiCloud's durable publishes over its relay against Nchan on Redis.
        "c1_cross_node_p50_ms": r(&["c1", "run", "e2e_latency_cross_node_ms", "p50_ms"], &["c1", "run", "e2e_latency_cross_node_ms", "p50_ms"]),
        "c1_cross_node_p99_ms": r(&["c1", "run", "e2e_latency_cross_node_ms", "p99_ms"], &["c1", "run", "e2e_latency_cross_node_ms", "p99_ms"]),
        // WebSocket subscribers on both.
        "w1_deliveries_per_sec_ws": r(&["w1", "runs", "ws", "deliveries_per_sec"], &["w1", "runs", "ws", "deliveries_per_sec"]),
        "w1_server_cpu_us_per_delivery_ws": r(&["w1", "runs", "ws", "server_cpu_us_per_delivery"], &["w1", "runs", "ws", "server_cpu_us_per_delivery"]),
        "how_to_read": format!("{name} figure / Nchan figure from this one run. {RATIO_READING}"),
    })
}

/// Each ratio's median over several rounds' [`ratios`] (rounds where a ratio is missing
/// are left out of its median; the middle two are averaged when the count is even).
pub fn median_ratios(rounds: &[Value]) -> Value {
    let mut out = Map::new();
    let keys = rounds
        .first()
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    for key in keys.into_iter().filter(|k| k != "how_to_read") {
        let mut xs: Vec<f64> = rounds.iter().filter_map(|r| r[&key].as_f64()).collect();
        xs.sort_by(f64::total_cmp);
        let median = match xs.len() {
            0 => Value::Null,
            n if n % 2 == 1 => json!(xs[n / 2]),
            n => json!(round3((xs[n / 2 - 1] + xs[n / 2]) / 2.0)),
        };
        out.insert(key, median);
    }
    out.insert(
        "how_to_read".into(),
        json!(format!(
            "Median over {} rounds of the figure / Nchan figure, each round's pair measured back to back (each round's own ratios: ratios_by_round, or floor_ratios_by_round for the floor). {RATIO_READING}",
            rounds.len()
        )),
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_ratios_takes_each_keys_middle_value() {
        let rounds = [
            json!({"a": 1.2, "b": 3.0, "c": null, "how_to_read": "x"}),
            json!({"a": 1.5, "b": 1.0, "c": 2.0, "how_to_read": "x"}),
            json!({"a": 1.3, "b": 2.0, "c": null, "how_to_read": "x"}),
            json!({"a": 9.0, "b": 4.0, "c": null, "how_to_read": "x"}),
        ];
        let m = median_ratios(&rounds);
        assert_eq!(m["a"], json!(1.4)); // even count: (1.3 + 1.5) / 2
        assert_eq!(m["b"], json!(2.5));
        assert_eq!(m["c"], json!(2.0)); // only the round that has it
        assert!(m["how_to_read"].as_str().unwrap().contains("4 rounds"));
        let odd = median_ratios(&rounds[..3]);
        assert_eq!(odd["a"], json!(1.3));
        assert_eq!(odd["b"], json!(2.0));
    }
}
