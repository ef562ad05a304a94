//! A subscriber that stops reading costs the server no more than its bound, measured: this
//! test binary counts every live heap byte (its own process, so no other test adds noise)
//! while 32 MiB are published past a stalled subscriber. Per-subscriber queueing would show
//! up as tens of MiB; the bounded design (shared per-topic ring, one frame in flight per
//! connection, history read later in pages) stays within a few.

#[allow(dead_code)]
#[path = "api/sse.rs"]
mod sse;
#[allow(dead_code, unused_macros)]
#[path = "api/support.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::sse::Sse;
use crate::support::TestServer;

/// Live heap bytes of the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a side
// effect only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MESSAGES: usize = 8000;
const PAD: usize = 4096;
const MIB: isize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_costs_the_server_a_bounded_amount() {
    let s = TestServer::firehose().await;

    // The stalled subscriber: a raw socket with a small receive buffer, so the kernel
    // absorbs little and the server really has to hold back.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stalled = sock
        .connect(format!("127.0.0.1:{}", s.port).parse().unwrap())
        .await
        .unwrap();
    stalled
        .write_all(b"GET /realtime/topics/firehose HTTP/1.1\r\nHost: demo.localhost\r\n\r\n")
        .await
        .unwrap();
    let mut wire = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !String::from_utf8_lossy(&wire).contains("event: position") {
        let n = stalled.read(&mut buf).await.unwrap();
        assert!(n > 0);
        wire.extend_from_slice(&buf[..n]);
    }

    // A fast subscriber that keeps only seqs.
    let mut fast = Sse::open(s.app_get("demo", "/realtime/topics/firehose"))
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let mut seqs = Vec::with_capacity(MESSAGES + 100);
        while seqs.len() < MESSAGES + 100 {
            match fast.next_event(Duration::from_secs(30)).await {
                Some(f) if f.event.as_deref() == Some("message") => seqs.push(f.seq()),
                other => panic!("fast reader got {other:?} after {}", seqs.len()),
            }
        }
        seqs
    });

    let publish = |from: usize, to: usize| {
        let (url, key) = (
            s.url("/api/v1/apps/demo/topics/firehose/publish"),
            s.admin_key.clone(),
        );
        async move {
            let tasks: Vec<_> = (0..8)
                .map(|p| {
                    let (url, key) = (url.clone(), key.clone());
                    tokio::spawn(async move {
                        let client = reqwest::Client::new();
                        let pad = "x".repeat(PAD);
                        for i in (from + p..to).step_by(8) {
                            let res = client
                                .post(&url)
                                .header("host", "localhost")
                                .bearer_auth(&key)
                                .json(&json!({"i": i, "pad": pad}))
                                .send()
                                .await
                                .unwrap();
                            assert_eq!(res.status(), 201);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    // Warm up pools, caches and buffers, then measure.
    publish(0, 100).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = LIVE.load(Ordering::Relaxed);
    publish(100, 100 + MESSAGES).await;
    let seqs = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("the fast reader finished")
        .unwrap();
    assert_eq!(seqs, (1..=(MESSAGES + 100) as i64).collect::<Vec<_>>());
    let grown = LIVE.load(Ordering::Relaxed) - before;
    eprintln!("live heap growth: {} KiB", grown / 1024);
    assert!(
        grown < 4 * MIB,
        "live heap grew by {} KiB while {} MiB went past a stalled subscriber",
        grown / 1024,
        (MESSAGES * PAD) as isize / MIB
    );

    // And it loses nothing: reading now, it gets every message in order, most of them
    // from history.
    let mut next = 1i64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while next <= (MESSAGES + 100) as i64 {
        let n = tokio::time::timeout_at(deadline, stalled.read(&mut buf))
            .await
            .expect("the stalled subscriber catches up")
            .unwrap();
        assert!(n > 0, "stream ended at seq {next}");
        wire.extend_from_slice(&buf[..n]);
        while let Some(end) = wire.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = wire.drain(..end + 2).collect();
            let frame = String::from_utf8(frame).unwrap();
            if frame.contains("event: message") {
                let id = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))
                    .expect("a durable message has an id");
                assert_eq!(id, next.to_string(), "in order, once");
                next += 1;
            } else {
                assert!(
                    !frame.contains("event: resync") && !frame.contains("event: error"),
                    "{frame}"
                );
            }
        }
    }
}
