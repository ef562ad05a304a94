//! Command-line flags.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "picloud-bench",
    version,
    about = "Drives a real PiCloud (and Nchan, side by side) over loopback and prints one JSON summary on stdout; progress on stderr."
)]
pub struct Args {
    /// Which server(s) to measure. With `both`, each scenario runs on PiCloud then Nchan and
    /// the summary adds PiCloud/Nchan ratios; `all` adds `picloud-floor` (S4 only) between
    /// them and its floor/Nchan ratios.
    #[arg(long, value_enum, default_value_t = TargetArg::Both)]
    pub target: TargetArg,

    #[arg(long, value_enum, default_value_t = ScenarioArg::All)]
    pub scenario: ScenarioArg,

    /// The PiCloud binary (default: `picloud` next to this executable, e.g. target/dist/picloud).
    #[arg(long)]
    pub picloud_bin: Option<PathBuf>,

    /// CPU the server is pinned to (`taskset -c`).
    #[arg(long, default_value_t = 0)]
    pub server_cpu: usize,

    /// CPU this tool (the whole load generator) is pinned to.
    #[arg(long, default_value_t = 1)]
    pub client_cpu: usize,

    /// Multiplies connection, topic and subscriber counts (1.0 = the full sizes). Rates and
    /// durations are not scaled.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,

    /// Length of each publishing window.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,

    /// Publisher connections for S2's as-fast-as-possible runs.
    #[arg(long, default_value_t = 8)]
    pub publishers: usize,

    /// Publisher connections for S4's runs. More than S2's because a durable publish waits
    /// for its commit: with 8 connections each waiting ~1 ms, S4's durable runs measured
    /// the publishers' round trip, not the server (whose core was idle part of the time).
    /// Nchan gets the same count (its S4 figure did not move: 44.3k at 8, 43.9k at 32).
    #[arg(long, default_value_t = 32)]
    pub s4_publishers: usize,

    /// Size of each published JSON message in bytes (approximate).
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,

    /// Messages per request in S4's batched runs (PiCloud's batch endpoint); 1 skips them.
    #[arg(long, default_value_t = 100)]
    pub s4_batch: usize,

    /// Runs the chosen scenarios this many times and reports each PiCloud/Nchan ratio's
    /// median over the rounds. A shared host's speed drifts (±15 % from minute to minute
    /// here), so one round can catch one server in a slow phase and the other in a fast
    /// one; the servers' order rotates each round (round 1: PiCloud, [floor,] Nchan; round
    /// 2 starts with the next) so that no server always takes the same turn.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,

    /// S5's fixed publish rate (messages per second).
    #[arg(long, default_value_t = 5000.0)]
    pub s5_rate: f64,

    /// Publisher connections for S5's fixed-rate run. Each has one request in flight, so
    /// the rate is reachable only while publish latency < conns / rate (16 / 5000 = 3.2 ms).
    #[arg(long, default_value_t = 64)]
    pub s5_rate_conns: usize,

    /// Topics S5 publishes to, round-robin (1: every message on one topic). PiCloud's
    /// group commit costs per distinct topic in a batch, so this matters.
    #[arg(long, default_value_t = 16)]
    pub s5_topics: usize,

    /// PostgreSQL server for S5 (without a database; a fresh one is created and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pub postgres_url: String,

    /// The Nchan (nginx) config to copy to /tmp/nchan-bench/nginx.conf.
    #[arg(long, default_value = "/work/shared/bench/nchan.conf")]
    pub nchan_conf: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetArg {
    Picloud,
    Nchan,
    Both,
    /// `picloud-floor` alone (see `src/bin/picloud-floor/main.rs`).
    Floor,
    /// PiCloud, the floor and Nchan: both servers' ratios to Nchan, and the floor's.
    All,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScenarioArg {
    S1,
    S2,
    S3,
    S4,
    S5,
    /// PiCloud only: trigger dispatcher throughput (drain) and latency, SQLite and PostgreSQL.
    D1,
    /// PiCloud only: script endpoint requests/s with `wrk` (64 connections), SQLite.
    E1,
    /// All of the above (not C1, C2, W1, W2).
    All,
    /// Cluster: 3 nodes (PiCloud on one PostgreSQL database; Nchan on Redis) sharing a
    /// private redis-server; 1,000 subscribers on 10 topics spread over the nodes, 100
    /// durable msg/s round-robin over the nodes; cross-node and same-node latency, loss.
    C1,
    /// PiCloud only: S4 on one node on PostgreSQL, relay off (no REDIS_URL) then on.
    C2,
    /// S2's shape over WebSocket: 1,000 WebSocket subscribers on one topic (PiCloud also
    /// runs as many SSE subscribers in the same run; Nchan `nchan_subscriber websocket`).
    W1,
    /// PiCloud only: presence churn, 10,000 members leaving and entering one topic.
    W2,
}
