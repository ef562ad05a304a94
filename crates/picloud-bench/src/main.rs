//! `picloud-bench`: drives a real PiCloud server (and Nchan, side by side) over loopback
//! and prints one JSON summary on stdout. Progress goes to stderr. See
//! `docs/benchmarks.md` for the scenarios and how to run and read them.
//!
//! # Layout
//!
//! - `main.rs`: entry point: raises `RLIMIT_NOFILE`, pins itself to `--client-cpu`, runs the
//!   chosen scenarios on a current-thread tokio runtime (the client has one core), prints the
//!   summary with PiCloud/Nchan ratios.
//! - `cli.rs`: the flags.
//! - `sys.rs`: libc calls: rlimit, CPU affinity, signals, `SO_LINGER`, own CPU time.
//! - `proc_stats.rs`: a server's RSS (`VmRSS`) and CPU time (utime+stime) from `/proc`.
//! - `http.rs`: a minimal keep-alive HTTP/1.1 client over a raw `TcpStream`.
//! - `server.rs`: start/stop PiCloud (alone or joining a cluster's database) and Nchan
//!   (nginx; also several on a shared Redis) pinned with `taskset`, and the
//!   request bytes each expects (subscribe, publish, admin setup).
//! - `sse_client.rs`: lean SSE subscribers: one shared 64 KiB read buffer, frames counted
//!   with memchr, send time parsed for a sample of messages.
//! - `publisher.rs`: keep-alive publisher connections, as fast as possible or fixed-rate,
//!   to one server or round-robin over a cluster's nodes (send times tagged with the node).
//! - `latency.rs`: hdrhistogram helpers and the timestamped payload.
//! - `redis.rs`: a private `redis-server` on a free loopback port (the cluster scenarios).
//! - `scenarios/`: `mod.rs` (context, the publish-and-drain measurement, ratios) and one
//!   file per scenario, `s1.rs` … `s5.rs`, `d1.rs` (trigger dispatcher), `e1.rs` (script
//!   endpoint with `wrk`), `c1.rs` (three-node cluster: cross-node latency, loss; Nchan on
//!   Redis), `c2.rs` (S4 with the cluster relay off and on).

mod cli;
mod http;
mod latency;
mod proc_stats;
mod publisher;
mod redis;
mod scenarios;
mod server;
mod sse_client;
mod sys;

use std::process::ExitCode;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use clap::Parser;
use serde_json::{json, Map, Value};

use cli::{Args, ScenarioArg, TargetArg};
use scenarios::{Ctx, Scenario};
use server::Kind;

static START: LazyLock<Instant> = LazyLock::new(Instant::now);

pub fn log_progress(args: std::fmt::Arguments) {
    eprintln!("[{:>7.2}s] {args}", START.elapsed().as_secs_f64());
}

macro_rules! progress {
    ($($t:tt)*) => { $crate::log_progress(format_args!($($t)*)) };
}
pub(crate) use progress;

fn main() -> ExitCode {
    LazyLock::force(&START);
    let args = Args::parse();
    if args.scale.is_nan()
        || args.scale <= 0.0
        || args.duration_secs == 0
        || args.publishers == 0
        || args.s4_publishers == 0
        || args.rounds == 0
    {
        eprintln!(
            "--scale, --duration-secs, --publishers, --s4-publishers and --rounds must be positive"
        );
        return ExitCode::from(2);
    }
    let nofile = match sys::raise_nofile() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot raise RLIMIT_NOFILE: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = sys::pin_current_thread(args.client_cpu) {
        eprintln!("cannot pin to CPU {}: {e}", args.client_cpu);
        return ExitCode::FAILURE;
    }
    let picloud_bin = args.picloud_bin.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("picloud")))
            .unwrap_or_else(|| "target/dist/picloud".into())
    });
    let floor_bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("picloud-floor")))
        .unwrap_or_else(|| "target/dist/picloud-floor".into());
    progress!(
        "picloud-bench: target {:?}, scenario {:?}, scale {}, duration {} s, server cpu {}, client cpu {}, nofile {}/{}",
        args.target, args.scenario, args.scale, args.duration_secs, args.server_cpu, args.client_cpu, nofile.0, nofile.1
    );
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = Ctx {
        payload: Arc::new(latency::Payload::new(args.payload_bytes)),
        epoch: Instant::now(),
        clk_tck: sys::clk_tck(),
        picloud_bin,
        floor_bin,
        args,
    };
    let summary = rt.block_on(run(&ctx, nofile));
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).expect("serialisable")
    );
    ExitCode::SUCCESS
}

async fn run(ctx: &Ctx, nofile: (u64, u64)) -> Value {
    let a = &ctx.args;
    let kinds: &[Kind] = match a.target {
        TargetArg::Picloud => &[Kind::Picloud],
        TargetArg::Nchan => &[Kind::Nchan],
        TargetArg::Both => &[Kind::Picloud, Kind::Nchan],
        TargetArg::Floor => &[Kind::Floor],
        TargetArg::All => &[Kind::Picloud, Kind::Floor, Kind::Nchan],
    };
    let scenarios: Vec<Scenario> = match a.scenario {
        ScenarioArg::S1 => vec![Scenario::S1],
        ScenarioArg::S2 => vec![Scenario::S2],
        ScenarioArg::S3 => vec![Scenario::S3],
        ScenarioArg::S4 => vec![Scenario::S4],
        ScenarioArg::S5 => vec![Scenario::S5],
        ScenarioArg::D1 => vec![Scenario::D1],
        ScenarioArg::E1 => vec![Scenario::E1],
        ScenarioArg::C1 => vec![Scenario::C1],
        ScenarioArg::C2 => vec![Scenario::C2],
        ScenarioArg::W1 => vec![Scenario::W1],
        ScenarioArg::W2 => vec![Scenario::W2],
        ScenarioArg::All => Scenario::ALL.to_vec(),
    };
    let mut rounds = Vec::with_capacity(a.rounds);
    for round in 1..=a.rounds {
        if a.rounds > 1 {
            progress!("==== round {round} of {} ====", a.rounds);
        }
        let order = order_for_round(kinds, round);
        rounds.push(one_round(ctx, &order, &scenarios).await);
    }
    let mut out = json!({
        "tool": "picloud-bench",
        "version": env!("CARGO_PKG_VERSION"),
        "config": {
            "target": format!("{:?}", a.target).to_lowercase(),
            "scale": a.scale,
            "duration_secs": a.duration_secs,
            "publishers": a.publishers,
            "s4_publishers": a.s4_publishers,
            "s4_batch": a.s4_batch,
            "payload_bytes": a.payload_bytes,
            "s5_rate": a.s5_rate,
            "s5_rate_conns": a.s5_rate_conns,
            "s5_topics": a.s5_topics,
            "rounds": a.rounds,
            "d1_drain_messages": ctx.scaled(scenarios::D1_DRAIN_MESSAGES),
            "server_cpu": a.server_cpu,
            "client_cpu": a.client_cpu,
            "picloud_bin": ctx.picloud_bin.display().to_string(),
            "rlimit_nofile": {"soft": nofile.0, "hard": nofile.1},
            "clk_tck": ctx.clk_tck,
            "latency_sample_every": sse_client::SAMPLE_EVERY,
        },
    });
    let compared = [
        (
            Kind::Picloud,
            "ratios_picloud_over_nchan",
            "ratios_by_round",
        ),
        (
            Kind::Floor,
            "ratios_floor_over_nchan",
            "floor_ratios_by_round",
        ),
    ];
    for (side, key, by_round) in compared {
        if !(kinds.contains(&side) && kinds.contains(&Kind::Nchan)) {
            continue;
        }
        let mut ratios: Vec<Value> = rounds.iter().map(|r| scenarios::ratios(r, side)).collect();
        if a.rounds == 1 {
            out[key] = ratios.swap_remove(0);
        } else {
            out[key] = scenarios::median_ratios(&ratios);
            out[by_round] = Value::Array(ratios);
        }
    }
    let mut rounds = rounds.into_iter();
    out["results"] = rounds.next().expect("--rounds is at least 1");
    if a.rounds > 1 {
        // Rounds 2..N; `results` is round 1, as with a single round.
        out["results_later_rounds"] = Value::Array(rounds.collect());
    }
    out
}

/// The servers in the order round `round` (from 1) runs each scenario on them: rotated by
/// one each round, so that when the host slows down for a while (it does, here, for
/// minutes) the slow phase does not always fall on the same server's turn. Round 1 keeps
/// the given order.
fn order_for_round(kinds: &[Kind], round: usize) -> Vec<Kind> {
    let mut order = kinds.to_vec();
    if !order.is_empty() {
        order.rotate_left((round - 1) % kinds.len());
    }
    order
}

/// Every chosen scenario on every chosen server, one after the other; the results by
/// server name, then scenario name.
async fn one_round(ctx: &Ctx, kinds: &[Kind], scenarios: &[Scenario]) -> Value {
    let mut results: Map<String, Value> = kinds
        .iter()
        .map(|k| (k.name().to_owned(), json!({})))
        .collect();
    for &s in scenarios {
        for &kind in kinds {
            if !s.runs_on(kind) {
                continue; // Nchan stores nothing durable and runs no scripts; the floor is S4's
            }
            progress!("== {} on {} ==", s.name(), kind.name());
            let started = Instant::now();
            let mut v = scenarios::run(ctx, kind, s).await;
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "scenario_secs".into(),
                    json!(publisher::round1(started.elapsed().as_secs_f64())),
                );
            }
            if let Some(e) = v.get("error") {
                progress!("{} on {} failed: {e}", s.name(), kind.name());
            }
            results[kind.name()][s.name()] = v;
        }
    }
    Value::Object(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_round_starts_with_the_next_server() {
        let kinds = [Kind::Picloud, Kind::Floor, Kind::Nchan];
        let firsts: Vec<Kind> = (1..=4).map(|r| order_for_round(&kinds, r)[0]).collect();
        assert_eq!(
            firsts,
            [Kind::Picloud, Kind::Floor, Kind::Nchan, Kind::Picloud]
        );
        for round in 1..=4 {
            let mut order = order_for_round(&kinds, round);
            order.sort_by_key(|k| k.name());
            assert_eq!(
                order,
                [Kind::Floor, Kind::Nchan, Kind::Picloud],
                "each once"
            );
        }
    }
}
