//! E1 (PiCloud only, SQLite): script endpoint requests/s. Script `hello` (`"hello world"`)
//! behind route `GET /hello` of app `bench`; one request through the bench's own client
//! checks it answers 200 `hello world` (as the JSON string `"hello world"`: a bare string
//! result is sent as JSON); then `wrk -t1 -c64 -d<duration>s --latency`
//! (Debian's `wrk`, pinned to `--client-cpu`) with `Host: bench.localhost`.

use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use super::{finish, Ctx};
use crate::http::HttpConn;
use crate::publisher::{round1, round3};
use crate::server::{Backend, Kind, Server};
use crate::sys;

pub const CONNS: usize = 64;
pub const HELLO: &str = r#""hello world""#;

pub async fn run(ctx: &Ctx) -> Result<Value> {
    let server = ctx.start(Kind::Picloud, Backend::Sqlite).await?;
    let r = body(ctx, &server).await;
    finish(r, server).await
}

async fn body(ctx: &Ctx, server: &Server) -> Result<Value> {
    let ep = &server.endpoint;
    ep.create_app().await?;
    let script = json!({ "name": "hello", "source": HELLO }).to_string();
    ep.admin_post("/api/v1/apps/bench/scripts", &script, 201)
        .await?;
    ep.admin_post(
        "/api/v1/apps/bench/routes",
        r#"{"method":"GET","path":"/hello","script":"hello"}"#,
        201,
    )
    .await?;
    let mut conn = HttpConn::connect(ep.addr).await?;
    let status = conn.roundtrip(&ep.app_request("GET", "/hello")).await?;
    let text = conn.body_text();
    // A bare string result is sent as JSON (docs/scripts.md, "Endpoint results"):
    // `"hello world"` with the quotes; accept plain text too.
    let said_hello = text.trim() == "hello world"
        || serde_json::from_str::<String>(&text).is_ok_and(|s| s == "hello world");
    if status != 200 || !said_hello {
        bail!(
            "GET /hello (Host: bench.localhost) answered {status} {text:?}; expected 200 \"hello world\""
        );
    }
    drop(conn);
    ensure_wrk()?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let secs = ctx.args.duration_secs;
    let url = format!("http://{}/hello", ep.addr);
    let args: Vec<String> = [
        "-c".into(),
        ctx.args.client_cpu.to_string(),
        "wrk".into(),
        "-t1".into(),
        format!("-c{CONNS}"),
        format!("-d{secs}s"),
        "-H".into(),
        "Host: bench.localhost".into(),
        url,
        "--latency".into(),
    ]
    .into();
    let command = std::iter::once("taskset")
        .chain(args.iter().map(String::as_str))
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    crate::progress!("  e1: {command}");
    let cpu0 = server.cpu_secs(ctx.clk_tck)?;
    let wrk0 = sys::children_cpu_secs();
    let out = tokio::task::spawn_blocking(move || Command::new("taskset").args(&args).output())
        .await?
        .context("run taskset + wrk")?;
    let wrk_cpu = sys::children_cpu_secs() - wrk0;
    let cpu = server.cpu_secs(ctx.clk_tck)? - cpu0;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {} {}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let w = parse_wrk(&stdout).with_context(|| format!("parse wrk output:\n{stdout}"))?;
    let wall = if w.wall_secs > 0.0 {
        w.wall_secs
    } else {
        secs as f64
    };
    crate::progress!(
        "  e1: {} requests/s, p50 {} ms, p99 {} ms, non-2xx/3xx {}, socket errors {}, server cpu {cpu:.2} s",
        w.requests_per_sec,
        w.p50_ms.unwrap_or(f64::NAN),
        w.p99_ms.unwrap_or(f64::NAN),
        w.non_2xx_3xx,
        w.socket_errors.iter().sum::<u64>()
    );
    Ok(json!({
        "route": "GET /hello",
        "script_source": HELLO,
        "check": {"status": status, "body": text},
        "command": command,
        "connections": CONNS,
        "duration_secs": secs,
        "requests": w.requests,
        "wall_secs": round3(wall),
        "requests_per_sec": w.requests_per_sec,
        "latency_ms": {
            "p50_ms": w.p50_ms, "p75_ms": w.p75_ms, "p90_ms": w.p90_ms, "p99_ms": w.p99_ms,
            "mean_ms": w.mean_ms, "max_ms": w.max_ms,
        },
        "non_2xx_3xx_responses": w.non_2xx_3xx,
        "socket_errors": {
            "connect": w.socket_errors[0], "read": w.socket_errors[1],
            "write": w.socket_errors[2], "timeout": w.socket_errors[3],
        },
        "server_cpu_secs": round3(cpu),
        "server_cpu_util": round3(cpu / wall),
        "server_cpu_us_per_request": round3(cpu * 1e6 / w.requests.max(1) as f64),
        "server_rss_bytes": server.rss_bytes()?,
        "wrk_cpu_util": round3(wrk_cpu / wall),
        "wrk_output": stdout.lines().map(str::trim_end).collect::<Vec<_>>(),
    }))
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Installs Debian's `wrk` with apt-get if it is not on PATH (needs root).
fn ensure_wrk() -> Result<()> {
    if on_path("wrk") {
        return Ok(());
    }
    crate::progress!("e1: wrk is missing; installing it with apt-get (needs root)");
    let updated = crate::server::run_quietly(Command::new("apt-get").args(["update", "-qq"]));
    let installed = crate::server::run_quietly(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "wrk"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    if !(updated && installed && on_path("wrk")) {
        bail!("cannot install wrk; run: apt-get install -y wrk");
    }
    Ok(())
}

#[derive(Debug, Default, PartialEq)]
struct Wrk {
    requests: u64,
    wall_secs: f64,
    requests_per_sec: f64,
    p50_ms: Option<f64>,
    p75_ms: Option<f64>,
    p90_ms: Option<f64>,
    p99_ms: Option<f64>,
    mean_ms: Option<f64>,
    max_ms: Option<f64>,
    non_2xx_3xx: u64,
    /// connect, read, write, timeout.
    socket_errors: [u64; 4],
}

/// `1.23ms`, `456.00us`, `2.00s`, `1.00m` → milliseconds.
fn duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let f = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(round3(v * f))
}

fn parse_wrk(out: &str) -> Result<Wrk> {
    let mut w = Wrk::default();
    let mut have_rps = false;
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => {
                w.requests_per_sec = round1(v.parse()?);
                have_rps = true;
            }
            ["Latency", avg, _stdev, max, _] => {
                w.mean_ms = duration_ms(avg);
                w.max_ms = duration_ms(max);
            }
            ["50%", v] => w.p50_ms = duration_ms(v),
            ["75%", v] => w.p75_ms = duration_ms(v),
            ["90%", v] => w.p90_ms = duration_ms(v),
            ["99%", v] => w.p99_ms = duration_ms(v),
            [n, "requests", "in", t, ..] => {
                w.requests = n.parse()?;
                w.wall_secs = duration_ms(t.trim_end_matches(',')).unwrap_or(0.0) / 1000.0;
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => w.non_2xx_3xx = n.parse()?,
            _ if line.starts_with("Socket errors:") => {
                for (i, part) in line["Socket errors:".len()..]
                    .split(',')
                    .enumerate()
                    .take(4)
                {
                    let n = part.split_whitespace().nth(1).unwrap_or("0");
                    w.socket_errors[i] = n.parse()?;
                }
            }
            _ => {}
        }
    }
    if !have_rps {
        return Err(anyhow!("no Requests/sec line"));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "Running 10s test @ http://127.0.0.1:4000/hello
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.41ms  512.00us  20.12ms   91.20%
    Req/Sec    18.80k   800.00    19.90k    70.00%
  Latency Distribution
     50%    3.35ms
     75%    3.60ms
     90%    3.90ms
     99%    5.10ms
  187000 requests in 10.00s, 25.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 7
  Non-2xx or 3xx responses: 12
Requests/sec:  18699.61
Transfer/sec:      2.50MB
";

    #[test]
    fn parses_wrk() {
        let w = parse_wrk(OUT).unwrap();
        assert_eq!(w.requests, 187_000);
        assert_eq!(w.wall_secs, 10.0);
        assert_eq!(w.requests_per_sec, 18699.6);
        assert_eq!(w.p50_ms, Some(3.35));
        assert_eq!(w.p99_ms, Some(5.1));
        assert_eq!(w.mean_ms, Some(3.41));
        assert_eq!(w.max_ms, Some(20.12));
        assert_eq!(w.non_2xx_3xx, 12);
        assert_eq!(w.socket_errors, [0, 2, 0, 7]);
        assert_eq!(duration_ms("512.00us"), Some(0.512));
        assert!(parse_wrk("nothing").is_err());
    }
}
