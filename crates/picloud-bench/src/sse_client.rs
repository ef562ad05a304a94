//! Lean SSE (and WebSocket) subscribers: one raw `TcpStream` and one small task each, no
//! HTTP or WebSocket library.
//!
//! WebSocket ([`ConnectOpts::websocket`]): the request is the upgrade's head, then the
//! frames to send once it is answered `101` (PiCloud's subscribe); each server text frame
//! is a message, after the first [`ConnectOpts::ws_skip`] (PiCloud's `subscribed` answer),
//! and a ping is answered.
//!
//! A subscriber writes its GET, reads the response head (200 = connected), then waits for
//! readiness and reads into one 64 KiB buffer shared by every subscriber of the thread (the
//! runtime is single-threaded, so a read never overlaps another). Frames are found by
//! scanning for `\n\n` with memchr; a frame is a message when the byte before its `\n\n`
//! is `}` (the end of its JSON `data:` line; retry, keepalive and comment frames end
//! otherwise; PiCloud's rare `error`/`resync` events would count too, but an error event
//! also ends the stream, which is reported). Every `SAMPLE_EVERY`-th message of a
//! subscriber (offset per subscriber, so different subscribers sample different messages)
//! is searched for the payload's `"t":` and its send time parsed for the latency
//! histogram (`ConnectOpts::sample_every` changes the 16). Nothing else of a frame is
//! looked at. The time of the first and the last message of each read is kept.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::http::{connect_stream, parse_status};
use crate::latency;

pub const SAMPLE_EVERY: u64 = 16;
const READ_BUF: usize = 64 * 1024;
/// How far back from a frame's end the payload's `"t":` may be (PiCloud appends
/// `},"published_at":"…"}` after the message; Nchan nothing).
const TAIL_WINDOW: usize = 120;
/// Subscribers in their connect phase at once (keeps the server's accept backlog sane).
const CONNECT_CONCURRENCY: usize = 256;

static FRAME_END: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\n\n"));
static T_KEY: LazyLock<memmem::FinderRev<'static>> =
    LazyLock::new(|| memmem::FinderRev::new(br#""t":"#));

thread_local! {
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF]);
}

#[derive(Default)]
pub struct SubStats {
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    /// Streams that ended (server closed or error) after connecting.
    pub closed: AtomicU64,
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    /// When the first / latest message was read, ns since the epoch (0: none yet).
    pub first_message_ns: AtomicU64,
    pub last_message_ns: AtomicU64,
    pub latency: Mutex<Option<Histogram<u64>>>,
    /// With [`ConnectOpts::home`]: the samples of messages published through another node
    /// (`latency` then holds those published through the subscribers' own node).
    pub latency_other: Mutex<Option<Histogram<u64>>>,
    pub first_error: Mutex<Option<String>>,
}

impl SubStats {
    fn error(&self, e: String) {
        let mut first = self.first_error.lock().expect("lock");
        if first.is_none() {
            *first = Some(e);
        }
    }

    pub fn messages(&self) -> u64 {
        self.messages.load(Relaxed)
    }

    /// Takes the latency samples gathered so far and starts a new histogram.
    pub fn take_latency(&self) -> Histogram<u64> {
        self.latency
            .lock()
            .expect("lock")
            .replace(latency::histogram())
            .unwrap_or_else(latency::histogram)
    }

    /// Takes the other-node samples (see `latency_other`) and starts a new histogram.
    pub fn take_latency_other(&self) -> Histogram<u64> {
        self.latency_other
            .lock()
            .expect("lock")
            .replace(latency::histogram())
            .unwrap_or_else(latency::histogram)
    }
}

/// How subscribers connect and sample.
#[derive(Clone, Copy, Debug)]
pub struct ConnectOpts {
    /// Parse the send time of every n-th message of a subscriber (1: every message).
    pub sample_every: u64,
    /// Retry a refused connection until this long after the call (a server that is still
    /// starting); `None`: a refused connection fails the subscriber.
    pub retry_refused_for: Option<Duration>,
    /// The index of the cluster node these subscribers are connected to, when the
    /// publishers tag send times with their node ([`latency::origin_of`]): samples from
    /// another node go to `SubStats::latency_other`. `None`: every sample to `latency`.
    pub home: Option<u64>,
    /// WebSocket subscribers (see the module's docs).
    pub websocket: bool,
    /// Text frames before the first message (WebSocket).
    pub ws_skip: u64,
}

impl Default for ConnectOpts {
    fn default() -> Self {
        Self {
            sample_every: SAMPLE_EVERY,
            retry_refused_for: None,
            home: None,
            websocket: false,
            ws_skip: 0,
        }
    }
}

pub struct Subscribers {
    tasks: JoinSet<()>,
    pub stats: Arc<SubStats>,
    pub n: usize,
    pub connect_secs: f64,
}

impl Subscribers {
    /// Opens `requests.len()` streams (one per request) and waits until every one is
    /// connected or failed, or `timeout` passes.
    pub async fn connect(
        addr: SocketAddr,
        requests: Vec<Vec<u8>>,
        epoch: Instant,
        timeout: Duration,
    ) -> Result<Self> {
        Self::connect_with(addr, requests, epoch, timeout, ConnectOpts::default()).await
    }

    /// [`Subscribers::connect`] with other sampling or connect retries.
    pub async fn connect_with(
        addr: SocketAddr,
        requests: Vec<Vec<u8>>,
        epoch: Instant,
        timeout: Duration,
        opts: ConnectOpts,
    ) -> Result<Self> {
        let n = requests.len();
        let every = opts.sample_every.max(1);
        let retry_until = opts.retry_refused_for.map(|d| Instant::now() + d);
        let stats = Arc::new(SubStats {
            latency: Mutex::new(Some(latency::histogram())),
            latency_other: Mutex::new(Some(latency::histogram())),
            ..SubStats::default()
        });
        let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let mut tasks = JoinSet::new();
        let started = Instant::now();
        for (i, req) in requests.into_iter().enumerate() {
            let stats = stats.clone();
            let gate = gate.clone();
            tasks.spawn(async move {
                let sampling = Sampling {
                    every,
                    offset: i as u64 % every,
                    home: opts.home,
                    ws: opts.websocket.then_some(opts.ws_skip),
                };
                if let Err(e) =
                    subscriber(addr, req, sampling, retry_until, epoch, &stats, &gate).await
                {
                    stats.error(format!("{e:#}"));
                }
            });
        }
        let mut last_report = Instant::now();
        loop {
            let ok = stats.connected.load(Relaxed) as usize;
            let failed = stats.failed.load(Relaxed) as usize;
            if ok + failed >= n {
                break;
            }
            if started.elapsed() > timeout {
                crate::progress!("subscribers: timeout with {ok}/{n} connected, {failed} failed");
                break;
            }
            if last_report.elapsed() > Duration::from_secs(2) {
                crate::progress!("subscribers: {ok}/{n} connected, {failed} failed");
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let connect_secs = started.elapsed().as_secs_f64();
        let s = Self {
            tasks,
            stats,
            n,
            connect_secs,
        };
        crate::progress!(
            "subscribers: {}/{n} connected in {connect_secs:.2} s, {} failed{}",
            s.connected(),
            s.stats.failed.load(Relaxed),
            s.first_error()
                .map(|e| format!(" (first error: {e})"))
                .unwrap_or_default()
        );
        Ok(s)
    }

    pub fn connected(&self) -> u64 {
        self.stats.connected.load(Relaxed)
    }

    pub fn first_error(&self) -> Option<String> {
        self.stats.first_error.lock().expect("lock").clone()
    }

    /// Closes every stream (RST, see `set_linger_zero`) and waits for the tasks to end.
    pub async fn close(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Which messages a subscriber samples, and where the samples go.
#[derive(Clone, Copy)]
struct Sampling {
    /// Sample every n-th message.
    every: u64,
    /// Messages before the first sample.
    offset: u64,
    /// See [`ConnectOpts::home`].
    home: Option<u64>,
    /// WebSocket: the text frames to skip.
    ws: Option<u64>,
}

async fn subscriber(
    addr: SocketAddr,
    req: Vec<u8>,
    sampling: Sampling,
    retry_until: Option<Instant>,
    epoch: Instant,
    stats: &SubStats,
    gate: &Semaphore,
) -> Result<()> {
    let permit = gate.acquire().await?;
    let opened = async {
        let mut stream = loop {
            match connect_stream(addr).await {
                Ok(s) => break s,
                Err(_) if retry_until.is_some_and(|d| Instant::now() < d) => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => return Err(e),
            }
        };
        // WebSocket: the upgrade first, its frames once it is answered.
        let (req, after) = match sampling.ws {
            Some(_) => {
                let end = memmem::find(&req, b"\r\n\r\n").map_or(req.len(), |i| i + 4);
                (&req[..end], &req[end..])
            }
            None => (&req[..], &[][..]),
        };
        stream.write_all(req).await?;
        let mut head = Vec::with_capacity(1024);
        let head_end = loop {
            if let Some(i) = memmem::find(&head, b"\r\n\r\n") {
                break i;
            }
            if head.len() > 16 * 1024 {
                bail!("response head over 16 KiB");
            }
            head.reserve(1024);
            if stream.read_buf(&mut head).await? == 0 {
                bail!("closed before the response head");
            }
        };
        let status = parse_status(&head)?;
        if status != if sampling.ws.is_some() { 101 } else { 200 } {
            bail!(
                "status {status}: {}",
                String::from_utf8_lossy(&head[head_end + 4..])
            );
        }
        stream.write_all(after).await?;
        Ok((stream, head.split_off(head_end + 4)))
    }
    .await;
    drop(permit);
    let (stream, rest) = match opened {
        Ok(x) => x,
        Err(e) => {
            stats.failed.fetch_add(1, Relaxed);
            return Err(e);
        }
    };
    stats.connected.fetch_add(1, Relaxed);
    let scanner = Scanner {
        every: sampling.every,
        until_sample: sampling.offset + 1,
        home: sampling.home,
        ..Scanner::default()
    };
    let mut scan = match sampling.ws {
        Some(skip) => Framing::Ws(WsScanner {
            inner: scanner,
            skip,
            ..WsScanner::default()
        }),
        None => Framing::Sse(scanner),
    };
    if !rest.is_empty() {
        scan.feed(&rest, stats, epoch);
    }
    loop {
        if let Err(e) = stream.readable().await {
            stats.closed.fetch_add(1, Relaxed);
            return Err(e.into());
        }
        let r = BUF.with_borrow_mut(|buf| match stream.try_read(buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                scan.feed(&buf[..n], stats, epoch);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(e),
        });
        if let Framing::Ws(ws) = &mut scan {
            for _ in 0..std::mem::take(&mut ws.pings) {
                // An empty pong, masked as a client's frames must be.
                let _ = stream.try_write(&[0x8A, 0x80, 1, 2, 3, 4]);
            }
        }
        match r {
            Ok(true) => {}
            Ok(false) => {
                stats.closed.fetch_add(1, Relaxed);
                bail!("stream closed by the server");
            }
            Err(e) => {
                stats.closed.fetch_add(1, Relaxed);
                return Err(e.into());
            }
        }
    }
}

/// How a subscriber's bytes are read.
enum Framing {
    Sse(Scanner),
    Ws(WsScanner),
}

impl Framing {
    fn feed(&mut self, data: &[u8], stats: &SubStats, epoch: Instant) {
        match self {
            Framing::Sse(s) => s.feed(data, stats, epoch),
            Framing::Ws(w) => w.feed(data, stats, epoch),
        }
    }
}

/// WebSocket frames across reads (server frames are never masked); each text frame is
/// handed to [`Scanner::frame_end`] as an SSE frame would be.
#[derive(Default)]
struct WsScanner {
    inner: Scanner,
    /// Header bytes of the next frame, while its header is incomplete.
    header: Vec<u8>,
    /// Reading a payload (else a header).
    in_payload: bool,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    opcode: u8,
    /// Text frames to skip before counting.
    skip: u64,
    /// Pings to answer.
    pings: u32,
}

impl WsScanner {
    fn feed(&mut self, data: &[u8], stats: &SubStats, epoch: Instant) {
        let mut acc = Acc::new(stats, epoch);
        let mut i = 0;
        while i < data.len() {
            if !self.in_payload {
                self.header.push(data[i]);
                i += 1;
                if let Some((len, opcode)) = ws_header(&self.header) {
                    self.header.clear();
                    self.opcode = opcode;
                    self.remaining = len;
                    if len == 0 {
                        self.frame_done(&[], &mut acc);
                    } else {
                        self.in_payload = true;
                    }
                }
                continue;
            }
            let take = (self.remaining as usize).min(data.len() - i);
            let part = &data[i..i + take];
            i += take;
            self.remaining -= take as u64;
            if self.remaining == 0 {
                self.in_payload = false;
                self.frame_done(part, &mut acc);
            }
        }
        acc.finish(data.len());
    }

    fn frame_done(&mut self, tail: &[u8], acc: &mut Acc<'_>) {
        match self.opcode {
            0x1 if self.skip > 0 => self.skip -= 1,
            0x1 => {
                let before = tail.last().copied().unwrap_or(b'}');
                self.inner.frame_end(tail, before, acc);
            }
            0x9 => self.pings += 1,
            _ => {}
        }
    }
}

/// A complete frame header's payload length and opcode, `None` while incomplete.
fn ws_header(h: &[u8]) -> Option<(u64, u8)> {
    let [b0, b1, ..] = *h else { return None };
    let opcode = b0 & 0x0F;
    match b1 & 0x7F {
        126 if h.len() >= 4 => Some((u64::from(u16::from_be_bytes([h[2], h[3]])), opcode)),
        127 if h.len() >= 10 => Some((u64::from_be_bytes(h[2..10].try_into().ok()?), opcode)),
        126 | 127 => None,
        n => Some((u64::from(n), opcode)),
    }
}

/// Frame counting across reads.
#[derive(Default)]
struct Scanner {
    /// The last two bytes of the previous read (a `\n\n` may straddle two reads).
    tail: [u8; 2],
    /// Sample every n-th message.
    every: u64,
    /// Messages until the next sample (the first countdown is staggered per subscriber).
    until_sample: u64,
    /// The previous sample could not be read (frame split across reads): take the next.
    want_sample: bool,
    /// See [`ConnectOpts::home`].
    home: Option<u64>,
}

/// What one read adds up to; the histogram is locked at most once per read.
struct Acc<'a> {
    stats: &'a SubStats,
    now_ns: u64,
    messages: u64,
    hist: Option<MutexGuard<'a, Option<Histogram<u64>>>>,
    hist_other: Option<MutexGuard<'a, Option<Histogram<u64>>>>,
}

impl<'a> Acc<'a> {
    fn new(stats: &'a SubStats, epoch: Instant) -> Self {
        Self {
            stats,
            now_ns: epoch.elapsed().as_nanos() as u64,
            messages: 0,
            hist: None,
            hist_other: None,
        }
    }

    /// Adds one read of `len` bytes to the stats.
    fn finish(self, len: usize) {
        let stats = self.stats;
        if self.messages > 0 {
            let now = self.now_ns.max(1);
            if stats.first_message_ns.load(Relaxed) == 0 {
                let _ = stats
                    .first_message_ns
                    .compare_exchange(0, now, Relaxed, Relaxed);
            }
            stats.last_message_ns.store(now, Relaxed);
        }
        stats.messages.fetch_add(self.messages, Relaxed);
        stats.bytes.fetch_add(len as u64, Relaxed);
    }
}

impl Scanner {
    fn feed(&mut self, data: &[u8], stats: &SubStats, epoch: Instant) {
        let mut acc = Acc::new(stats, epoch);
        // Start of the current frame within `data` (0 when it began in an earlier read).
        let mut frame_start = 0usize;
        // A `\n\n` split across the previous read and this one.
        if data[0] == b'\n' && self.tail[1] == b'\n' && self.tail[0] != b'\n' {
            self.frame_end(&[], self.tail[0], &mut acc);
            frame_start = 1;
        }
        for pos in FRAME_END.find_iter(data) {
            if pos < frame_start {
                continue;
            }
            let before = if pos > 0 { data[pos - 1] } else { self.tail[1] };
            self.frame_end(&data[frame_start..pos], before, &mut acc);
            frame_start = pos + 2;
        }
        self.tail = match data {
            [.., a, b] => [*a, *b],
            [b] => [self.tail[1], *b],
            [] => self.tail,
        };
        acc.finish(data.len());
    }

    /// `frame` is the part of the frame in this read (all of it, or its end when it began
    /// in an earlier read); `before` is the byte before its `\n\n`. A message frame ends
    /// in `}` (its JSON data line); retry, keepalive and comment frames do not.
    fn frame_end(&mut self, frame: &[u8], before: u8, acc: &mut Acc<'_>) {
        if before != b'}' {
            return;
        }
        acc.messages += 1;
        self.until_sample = self.until_sample.saturating_sub(1);
        if self.until_sample > 0 && !self.want_sample {
            return;
        }
        self.until_sample = self.every;
        // Only sampled frames are searched; a tail split across reads defers the sample
        // to the next message.
        let tail = &frame[frame.len().saturating_sub(TAIL_WINDOW)..];
        match T_KEY.rfind(tail).and_then(|i| parse_digits(&tail[i + 4..])) {
            Some(t) => {
                let us = acc.now_ns.saturating_sub(t) / 1000;
                let stats = acc.stats;
                let other = self.home.is_some_and(|h| latency::origin_of(t) != h);
                let guard = if other {
                    acc.hist_other
                        .get_or_insert_with(|| stats.latency_other.lock().expect("lock"))
                } else {
                    acc.hist
                        .get_or_insert_with(|| stats.latency.lock().expect("lock"))
                };
                if let Some(h) = guard.as_mut() {
                    h.saturating_record(us.max(1));
                }
                self.want_sample = false;
            }
            None => self.want_sample = true,
        }
    }
}

fn parse_digits(s: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    let mut any = false;
    for &b in s {
        if b.is_ascii_digit() {
            v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            any = true;
        } else {
            break;
        }
    }
    any.then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]]) -> (u64, u64) {
        let stats = SubStats {
            latency: Mutex::new(Some(latency::histogram())),
            ..SubStats::default()
        };
        let mut s = Scanner {
            every: SAMPLE_EVERY,
            until_sample: SAMPLE_EVERY,
            ..Scanner::default()
        };
        let epoch = Instant::now() - Duration::from_secs(1);
        for c in chunks {
            s.feed(c, &stats, epoch);
        }
        let samples = stats.take_latency().len();
        (stats.messages(), samples)
    }

    const PI: &[u8] = b"id: 5\nevent: message\ndata: {\"topic\":\"t1\",\"seq\":5,\"message\":{\"pad\":\"xx\",\"t\":1000},\"published_at\":\"2024-01-01T00:00:00.000Z\"}\n\n";
    const NCHAN: &[u8] = b"id: 1700000000:0\ndata: {\"pad\":\"xx\",\"t\":1000}\n\n";

    #[test]
    fn counts_messages_not_control_frames() {
        let mut all = b"retry: 2000\n\n: keepalive\n\n".to_vec();
        for _ in 0..32 {
            all.extend_from_slice(PI);
        }
        all.extend_from_slice(b"\r\n1a\r\n: keepalive\n\n");
        assert_eq!(frames(&[&all]), (32, 2));
        // Every split point gives the same count.
        for cut in 1..all.len() {
            let (a, b) = all.split_at(cut);
            assert_eq!(frames(&[a, b]).0, 32, "cut at {cut}");
        }
    }

    #[test]
    fn samples_split_by_the_publishing_node() {
        let stats = SubStats {
            latency: Mutex::new(Some(latency::histogram())),
            latency_other: Mutex::new(Some(latency::histogram())),
            ..SubStats::default()
        };
        let mut s = Scanner {
            every: 1,
            until_sample: 1,
            home: Some(1),
            ..Scanner::default()
        };
        let epoch = Instant::now() - Duration::from_secs(1);
        let mut all = Vec::new();
        for origin in [0, 1, 2, 1] {
            let t = latency::tag_origin(1_000_000, origin);
            all.extend_from_slice(format!("data: {{\"pad\":\"x\",\"t\":{t}}}\n\n").as_bytes());
        }
        s.feed(&all, &stats, epoch);
        assert_eq!(stats.messages(), 4);
        assert_eq!(stats.take_latency().len(), 2, "same node: origin 1");
        assert_eq!(stats.take_latency_other().len(), 2, "other nodes: 0 and 2");
    }

    #[test]
    fn websocket_frames_across_every_split() {
        let frame = |payload: &[u8], opcode: u8| {
            let mut f = vec![0x80 | opcode];
            if payload.len() < 126 {
                f.push(payload.len() as u8);
            } else {
                f.push(126);
                f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            }
            f.extend_from_slice(payload);
            f
        };
        let mut all = frame(br#"{"type":"subscribed","id":1}"#, 1);
        all.extend(frame(b"", 9));
        let long = format!(
            r#"{{"type":"message","message":{{"pad":"{}","t":1000}},"published_at":"x"}}"#,
            "x".repeat(200)
        );
        for i in 0..10 {
            let body = if i % 2 == 0 {
                long.as_bytes()
            } else {
                br#"{"pad":"x","t":1000}"#
            };
            all.extend(frame(body, 1));
        }
        for cut in 0..all.len() {
            let stats = SubStats {
                latency: Mutex::new(Some(latency::histogram())),
                ..SubStats::default()
            };
            let mut ws = WsScanner {
                inner: Scanner {
                    every: 1,
                    until_sample: 1,
                    ..Scanner::default()
                },
                skip: 1,
                ..WsScanner::default()
            };
            let epoch = Instant::now() - Duration::from_secs(1);
            let (a, b) = all.split_at(cut);
            ws.feed(a, &stats, epoch);
            if !b.is_empty() {
                ws.feed(b, &stats, epoch);
            }
            assert_eq!(stats.messages(), 10, "cut at {cut}");
            assert_eq!(ws.pings, 1, "cut at {cut}");
        }
    }

    #[test]
    fn nchan_frames() {
        let mut all = b": hi\n\n".to_vec();
        for _ in 0..16 {
            all.extend_from_slice(NCHAN);
        }
        assert_eq!(frames(&[&all]), (16, 1));
        for cut in 1..all.len() {
            let (a, b) = all.split_at(cut);
            assert_eq!(frames(&[a, b]).0, 16, "cut at {cut}");
        }
    }
}
