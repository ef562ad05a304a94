//! Connection churn and slow consumers (issue 28, item 4), on the real binary: 100,000 SSE
//! connect/disconnect cycles (48 client tasks; each connects, reads the head and the first
//! two frames, and drops the socket), then 5,000 SSE subscribers that never read while
//! ephemeral messages are published to their topic until their socket buffers are full,
//! beside one subscriber that reads everything; then they all close.
//!
//! The server's open fds (`/proc/<pid>/fd`), live tokio tasks (`picloud_runtime_alive_tasks`)
//! and RSS (`/proc/<pid>/status` VmRSS) are sampled at a baseline taken after a warm-up (the
//! same two phases, smaller, so the allocator's arenas and the server's caches exist) and
//! after each phase once the server has settled. Asserted: fds and tasks return to the
//! baseline within 2 (a scrape's own connection may still be closing) after each phase;
//! RSS at most 10 % above it at the end (right after the churn it only must not have run away: the
//! allocator returns what the churn used later, see the assertion);
//! the reading subscriber got every message while the 5,000 stalled ones held their
//! buffers full; the server never refused or failed a connection.
//!
//! Client sockets are raw TCP with a small receive buffer: 5,000 stalled sockets with the
//! kernel's default buffers would pin over a GiB of kernel memory on this shared machine.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{admin_post, sample, scrape, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const CYCLES: u64 = 100_000;
const CYCLE_TASKS: u64 = 48;
const STALLED: usize = 5_000;
/// Ephemeral messages into the stalled subscribers' topic, and their size: each stalled
/// socket is offered 64 × 8 KiB = 512 KiB, far beyond what its buffers hold.
const FLOOD: usize = 64;
const FLOOD_BYTES: usize = 8 << 10;
/// After a stalled phase, cycles are run in batches of this many until RSS is back (at
/// most [`RECLAIM_MAX`]): the allocator (mimalloc) returns pages freed by other threads only
/// as their owning threads go on allocating, so a server left idle right after 5,000
/// streams closed still shows their memory (measured: 434–484 MiB idle, back to the
/// 74–77 MiB baseline after 2,000–10,000 requests). Growth that no activity gives back
/// would be a leak; this tells the two apart.
const RECLAIM_BATCH: u64 = 1_000;
const RECLAIM_MAX: u64 = 30_000;
/// The clients' receive buffer (the kernel doubles it).
const RCVBUF: u32 = 4096;

#[derive(Clone, Copy, Debug)]
struct Figures {
    fds: u64,
    tasks: u64,
    rss_kib: u64,
}

async fn figures(server: &Server, key: &str) -> Figures {
    let pid = server.child.id();
    let fds = support::open_fds(pid);
    let rss_kib = support::rss_kib(pid);
    let tasks = sample(&scrape(server, key).await, "picloud_runtime_alive_tasks") as u64;
    Figures {
        fds,
        tasks,
        rss_kib,
    }
}

/// Waits (30 s at most) until fds and tasks are back within `slack` of `base`, then a
/// second more for RSS; the figures then.
async fn settled(server: &Server, key: &str, base: Figures, slack: u64) -> (Figures, Duration) {
    let began = Instant::now();
    loop {
        let f = figures(server, key).await;
        if (f.fds <= base.fds + slack && f.tasks <= base.tasks + slack)
            || began.elapsed() > Duration::from_secs(30)
        {
            let took = began.elapsed();
            tokio::time::sleep(Duration::from_secs(1)).await;
            return (figures(server, key).await, took);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn connect(port: u16, rcvbuf: Option<u32>) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    socket.connect(([127, 0, 0, 1], port).into()).await
}

fn sse_request(topic: &str) -> Vec<u8> {
    format!("GET /realtime/topics/{topic} HTTP/1.1\r\nHost: churn.localhost\r\n\r\n").into_bytes()
}

/// One cycle: connect, read the head, `retry:` and `position` frames, drop.
async fn cycle(port: u16, request: &[u8]) -> Result<(), String> {
    let mut s = connect(port, None).await.map_err(|e| e.to_string())?;
    s.write_all(request).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.windows(16).any(|w| w == b"event: position\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .map_err(|_| "no position frame within 10 s".to_owned())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("closed early: {}", String::from_utf8_lossy(&buf)));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if !buf.starts_with(b"HTTP/1.1 200") {
        return Err(String::from_utf8_lossy(&buf).into_owned());
    }
    Ok(())
}

/// `cycles` connect/disconnect cycles over `CYCLE_TASKS` tasks; how long they took.
async fn churn(port: u16, cycles: u64) -> Duration {
    let began = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CYCLE_TASKS)
        .map(|_| {
            let next = next.clone();
            tokio::spawn(async move {
                let request = sse_request("c");
                while next.fetch_add(1, Ordering::Relaxed) < cycles {
                    if let Err(e) = cycle(port, &request).await {
                        panic!("an SSE cycle failed: {e}");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    began.elapsed()
}

/// `n` subscribers of topic `s` that never read past their request; connected (their
/// stream's head is in their buffer) when this returns.
async fn stall(port: u16, n: usize) -> Vec<TcpStream> {
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            tokio::spawn(async move {
                let request = sse_request("s");
                let mut out = Vec::new();
                for _ in (t..n).step_by(8) {
                    let mut s = connect(port, Some(RCVBUF)).await.expect("connect");
                    s.write_all(&request).await.unwrap();
                    out.push(s);
                }
                out
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.extend(t.await.unwrap());
    }
    // Each has its head and first frames waiting unread once the server took it.
    for s in &out {
        let deadline = Instant::now() + Duration::from_secs(30);
        while unread(s) == 0 {
            assert!(
                Instant::now() < deadline,
                "a stalled subscriber got no head"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    out
}

/// Bytes waiting in `s`'s receive buffer.
fn unread(s: &TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which outlives the call.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD");
    n as usize
}

/// Publishes `FLOOD` ephemeral messages to `s` while one subscriber reads them all, and the
/// `stalled` ones read nothing; returns the reader's count and the stalled sockets' unread
/// bytes (smallest, total).
async fn flood(server: &Server, key: &str, stalled: &[TcpStream]) -> (usize, usize, usize) {
    let mut reader = reqwest::Client::new()
        .get(server.url("/realtime/topics/s"))
        .header("host", "churn.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(reader.status(), 200);
    let mut seen = String::new();
    support::read_until(&mut reader, &mut seen, "event: position").await;
    let read = tokio::spawn(async move {
        let mut got = 0;
        let mut buf = String::new();
        while got < FLOOD {
            let chunk = tokio::time::timeout(Duration::from_secs(60), reader.chunk())
                .await
                .expect("the reading subscriber is fed within 60 s")
                .unwrap()
                .expect("its stream stays open");
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                if frame.contains("event: message\n") {
                    got += 1;
                }
            }
        }
        got
    });
    let client = reqwest::Client::new();
    let pad = "x".repeat(FLOOD_BYTES);
    for i in 0..FLOOD {
        let res = client
            .post(server.url("/api/v1/apps/churn/topics/s/publish?ephemeral=true"))
            .header("host", "localhost")
            .bearer_auth(key)
            .json(&json!({"i": i, "pad": pad}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    let got = tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the reader got every message")
        .unwrap();
    // Full: the stalled sockets' buffers stop growing.
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let total: usize = stalled.iter().map(unread).sum();
        if total == last || Instant::now() > deadline {
            let least = stalled.iter().map(unread).min().unwrap_or(0);
            return (got, least, total);
        }
        last = total;
    }
}

/// Connects `STALLED` subscribers that never read, floods their topic beside a reading
/// subscriber, closes them: what it saw, as a line for the log.
async fn stalled_round(server: &Server, key: &str) -> String {
    let t = Instant::now();
    let stalled = stall(server.port, STALLED).await;
    let connected = t.elapsed();
    let holding = figures(server, key).await;
    let t = Instant::now();
    let (got, least, total) = flood(server, key, &stalled).await;
    let flooded = t.elapsed();
    let full = figures(server, key).await;
    let slow = sample(
        &scrape(server, key).await,
        "picloud_realtime_slow_consumer_disconnects_total",
    );
    drop(stalled);
    assert_eq!(got, FLOOD, "the reading subscriber got every message");
    assert!(
        holding.fds > STALLED as u64 && holding.tasks > STALLED as u64,
        "the server held every stalled subscriber: {holding:?}"
    );
    assert!(
        least > 0,
        "every stalled subscriber was sent its stream's head and frames"
    );
    format!(
        "{STALLED} stalled subscribers connected in {connected:?}, holding {holding:?}; \
         flooded ({FLOOD} × {FLOOD_BYTES} B) in {flooded:?}: the reader got {got}, stalled \
         sockets hold {least}..{} B unread, {} MiB in all; server then {full:?}; slow-consumer \
         disconnects so far {slow}",
        total / STALLED,
        total >> 20
    )
}

/// Runs cycles in batches until RSS is within 10 % of `base` (or, without one, until a
/// batch lowers it by less than 2 %); the figures then and the cycles it took.
async fn reclaim(server: &Server, key: &str, base: Figures) -> (Figures, u64) {
    let mut last = figures(server, key).await;
    let mut cycles = 0;
    while cycles < RECLAIM_MAX {
        churn(server.port, RECLAIM_BATCH).await;
        cycles += RECLAIM_BATCH;
        let now = figures(server, key).await;
        last = now;
        if now.rss_kib <= base.rss_kib + base.rss_kib / 10 {
            break;
        }
    }
    (last, cycles)
}

/// fds and tasks within `slack` of the baseline, RSS at most 10 % above it (less is memory
/// given back, not a fault).
fn within(base: Figures, now: Figures, slack: u64) -> bool {
    now.fds.abs_diff(base.fds) <= slack
        && now.tasks.abs_diff(base.tasks) <= slack
        && now.rss_kib <= base.rss_kib + base.rss_kib / 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_and_stalled_subscribers_leave_nothing_behind() {
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("RUST_LOG", "info")]);
    let key = server.bootstrap_key().expect("bootstrap key");
    for (path, body) in [
        ("/api/v1/apps", json!({"slug": "churn"})),
        (
            "/api/v1/apps/churn/topics",
            json!({"name": "c", "external_subscribable": true, "auth_mode": "public"}),
        ),
        (
            "/api/v1/apps/churn/topics",
            json!({"name": "s", "external_subscribable": true, "auth_mode": "public"}),
        ),
    ] {
        let (status, answer) = admin_post(&server, &key, path, body).await;
        assert_eq!(status, 201, "{path}: {answer}");
    }
    let port = server.port;

    // Warm-up: a few cycles, then the stalled phase at full size, so that the allocator
    // holds the memory that phase needs (a second identical phase must then need none).
    churn(port, 2_000).await;
    let idle = figures(&server, &key).await;
    let first = stalled_round(&server, &key).await;
    let (held, _) = settled(&server, &key, figures(&server, &key).await, 0).await;
    // Until RSS is back near where it was before the phase (the allocator gives the
    // phase's memory back only as later requests run, and unevenly): a baseline taken
    // while it still held it would be a baseline of nothing.
    let (_, reclaim_warm) = reclaim(&server, &key, idle).await;
    let (base, _) = settled(&server, &key, figures(&server, &key).await, 0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base = {
        let f = figures(&server, &key).await;
        Figures {
            fds: f.fds.min(base.fds),
            tasks: f.tasks.min(base.tasks),
            rss_kib: f.rss_kib,
        }
    };
    println!(
        "churn: idle before: {idle:?}; warm-up stalled phase: {first}\nchurn: closed: \
         {held:?}; after {reclaim_warm} cycles, the baseline: {base:?} ({:?})",
        began.elapsed()
    );

    let cycles: u64 = std::env::var("PICLOUD_CHURN_CYCLES").map_or(CYCLES, |v| {
        v.parse().expect("PICLOUD_CHURN_CYCLES is a number")
    });
    let took = churn(port, cycles).await;
    let during = figures(&server, &key).await;
    let (after_churn, settle_churn) = settled(&server, &key, base, 2).await;
    println!(
        "churn: {cycles} cycles in {took:?} ({:.0}/s); at the end {during:?}; settled in \
         {settle_churn:?}: {after_churn:?}",
        cycles as f64 / took.as_secs_f64()
    );

    let second = stalled_round(&server, &key).await;
    let (held, settle_stalled) = settled(&server, &key, base, 2).await;
    let (_, reclaim_cycles) = reclaim(&server, &key, base).await;
    let (after_stalled, _) = settled(&server, &key, base, 2).await;
    println!(
        "churn: stalled phase: {second}\nchurn: closed, settled in {settle_stalled:?}: \
         {held:?}; after {reclaim_cycles} cycles: {after_stalled:?}; total run {:?}",
        began.elapsed()
    );

    // Right after the churn, RSS is checked only against a gross leak: the allocator keeps
    // what 48 busy client connections at a time used (measured: +14 MiB after 100,000
    // cycles, +20 MiB after 300,000), and gives it back later — the final figures, after
    // the stalled phase, are within 10 % of the baseline, which a leak in either phase
    // could not be (measured: 80.5 MiB against 79.9 after 300,000 cycles).
    assert!(
        within(
            base,
            Figures {
                rss_kib: base.rss_kib,
                ..after_churn
            },
            2
        ) && after_churn.rss_kib < base.rss_kib * 3 / 2,
        "after the churn phase: fds and tasks back to the baseline (± 2), RSS not run away: \
         baseline {base:?}, now {after_churn:?}"
    );
    assert!(
        within(base, after_stalled, 2),
        "after both phases the server is back to its baseline (fds and tasks ± 2, RSS ± 10 %): \
         baseline {base:?}, now {after_stalled:?}"
    );
    let log = server.stderr.lock().unwrap().join("\n");
    assert!(
        !log.contains(" ERROR "),
        "no errors in the server's log: {log}"
    );
}
