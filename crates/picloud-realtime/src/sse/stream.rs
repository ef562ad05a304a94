//! One subscriber connection: catch up from history, then stream live frames, repairing
//! gaps from history and de-duplicating by seq.
//!
//! Per topic the stream keeps `pos`, the last seq it sent. A live frame with
//! `seq <= pos` is a duplicate (already replayed) and skipped; `seq == pos + 1` is sent;
//! a higher seq means frames were missed (another node's order, a broadcast hiccup), so the
//! gap is read from history first. A `Lagged` receiver (fell behind the hub's bounded queue)
//! reads everything after `pos` from history. Only when history no longer has the next seq
//! (retention) does the client get `resync`, and the stream continues from the topic's
//! current end.
//!
//! Memory per connection is bounded: the hub's queues are shared and bounded, history is read
//! in pages, and hyper pulls frames only as fast as the socket drains (backpressure).

use crate::codes::Code;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Stream, StreamExt};
use picloud_core::app::AppRef;
use picloud_core::message::Message;
use picloud_core::topic::TopicName;
use picloud_core::StoreError;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::StreamMap;

use super::SubscribeRequest;
use crate::channel::{Direct, Offer};
use crate::frame::{self, MessageFrame};
use crate::hub::Subscription;
use crate::position;
use crate::token::Grant;
use crate::{Realtime, SendRecorder};

/// History read per query while catching up or repairing.
const PAGE: u32 = 500;
/// Most bytes of live frames gathered into one yield (one write).
const MAX_WRITE: usize = 64 * 1024;
/// Lag events tolerated within [`LAG_WINDOW`] before a consumer counts as too slow.
const MAX_LAGS: usize = 5;
const LAG_WINDOW: Duration = Duration::from_secs(30);

type Live =
    Pin<Box<dyn Stream<Item = Option<Result<Arc<MessageFrame>, BroadcastStreamRecvError>>> + Send>>;

/// What a topic's subscription yields next.
enum LiveItem {
    Frame(Result<Arc<MessageFrame>, BroadcastStreamRecvError>),
    /// The topic's channel closed (the topic was deleted).
    Closed,
    /// Direct writing ended with part of a frame unwritten: [`LiveSet::disarm`] has the
    /// rest, which goes out before anything else.
    Flush,
}

struct TopicState {
    name: TopicName,
    pos: i64,
}

/// Subscribes, reads where each topic starts, and returns the streaming body.
pub(super) async fn open(
    rt: Realtime,
    app: AppRef,
    req: SubscribeRequest,
    grant: Option<Grant>,
    socket: Option<Arc<TcpStream>>,
) -> Result<Body, StoreError> {
    let live = match &req.topics[..] {
        [one] => {
            let mut sub = rt.hub.subscribe(&app.id, one);
            if let Some(socket) = socket {
                sub.set_direct(SocketWriter {
                    fd: socket.as_raw_fd(),
                    _socket: socket,
                    sends: rt.send_recorder(),
                    pos: 0,
                    until: None,
                });
            }
            LiveSet::One(sub)
        }
        many => {
            let mut map: StreamMap<usize, Live> = StreamMap::with_capacity(many.len());
            for (i, name) in many.iter().enumerate() {
                // `Some(frame)`… then a final `None` when the channel closes (topic deleted).
                let sub = rt
                    .hub
                    .subscribe(&app.id, name)
                    .map(Some)
                    .chain(futures_util::stream::iter([None]));
                map.insert(i, Box::pin(sub));
            }
            LiveSet::Many(map)
        }
    };
    // Read the topics' ends only now that we listen: anything committed later is in `live`.
    let mut topics = Vec::with_capacity(req.topics.len());
    let mut start = Vec::with_capacity(req.topics.len());
    for (name, resume) in req.topics.iter().zip(&req.positions) {
        let last = rt
            .store
            .get_topic(&app.id, name)
            .await?
            .map_or(0, |t| t.last_seq);
        topics.push(TopicState {
            name: name.clone(),
            pos: resume.unwrap_or(last),
        });
        start.push((*resume, last));
    }
    let frames = run(rt, app, topics, start, live, grant);
    Ok(Body::from_stream(frames.map(Ok::<Bytes, Infallible>)))
}

/// A stream's hub subscriptions polled as one: `(topic index, item)`, the item `None` once
/// that topic's channel has closed. One topic, the usual case, is polled directly; several
/// go through a `StreamMap` (boxed and chained with their end marker), which cost a
/// subscriber's every poll about as much as the channel itself.
enum LiveSet {
    One(Subscription),
    Many(StreamMap<usize, Live>),
}

impl LiveSet {
    /// Lets a one-topic stream's writer take frames directly while the stream waits, from
    /// position `pos` and until `until`.
    fn arm(&mut self, pos: i64, until: Option<Instant>) {
        if let LiveSet::One(sub) = self {
            if let Some(direct) = sub.direct_mut() {
                direct.resume(pos, until);
                sub.allow_direct();
            }
        }
    }

    /// Stops direct writing (the stream is about to write): the position it reached and
    /// any part of a frame it left unwritten. `None` when the stream has no direct writer.
    fn disarm(&mut self) -> Option<(i64, Option<Bytes>)> {
        let LiveSet::One(sub) = self else {
            return None;
        };
        let rest = sub.disarm();
        Some((sub.direct_mut()?.position(), rest))
    }
}

impl Stream for LiveSet {
    type Item = (usize, LiveItem);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            LiveSet::One(sub) => match sub.poll_next_unpin(cx) {
                Poll::Pending if sub.has_rest() => Poll::Ready(Some((0, LiveItem::Flush))),
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(item)) => Poll::Ready(Some((0, LiveItem::Frame(item)))),
                Poll::Ready(None) => Poll::Ready(Some((0, LiveItem::Closed))),
            },
            LiveSet::Many(map) => map.poll_next_unpin(cx).map(|next| {
                next.map(|(i, item)| (i, item.map_or(LiveItem::Closed, LiveItem::Frame)))
            }),
        }
    }
}

/// A one-topic stream's direct writer (see `channel`): writes each live frame to the
/// subscriber's socket from the publishing task while the stream waits, doing what
/// [`in_order`] does for a frame that is next in line and declining anything else.
pub(crate) struct SocketWriter {
    /// `_socket`'s descriptor, kept beside the rest of the writer: reading it through the
    /// `TcpStream` was a cache miss of its own on every delivery (perf, S4).
    fd: RawFd,
    /// Keeps `fd` open for as long as this writer lives.
    _socket: Arc<TcpStream>,
    sends: SendRecorder,
    /// The last seq sent.
    pos: i64,
    /// From this instant the stream's task must handle everything (its token expires).
    until: Option<Instant>,
}

impl Direct for SocketWriter {
    fn offer(&mut self, f: &MessageFrame) -> Offer {
        if self.until.is_some_and(|until| Instant::now() >= until) {
            return Offer::Declined;
        }
        let seq = f.message.seq;
        match seq {
            Some(seq) if seq <= self.pos => return Offer::Taken, // already sent
            Some(seq) if seq > self.pos + 1 => return Offer::Declined, // a gap to repair
            _ => {}
        }
        // Straight to the socket, not through tokio's readiness (whose state lives in
        // another allocation, a cache miss per delivery): a full socket just says so, and
        // the stream's own writes, which do use readiness, retry past a stale "writable".
        // SAFETY: `fd` is `self._socket`'s, which this writer holds open (an `Arc`), so
        // the descriptor is valid and refers to that socket for the whole borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let socket = socket2::SockRef::from(&fd);
        let written = match socket.send_with_flags(&f.single, libc::MSG_NOSIGNAL) {
            Ok(0) | Err(_) => return Offer::Declined, // full, or failing: the task finds out
            Ok(n) => n,
        };
        match seq {
            Some(seq) => {
                self.pos = seq;
                self.sends.record_send(f.message.published_at);
            }
            None => {
                self.sends.stats.frames_sent.add(1);
            }
        }
        if written == f.single.len() {
            Offer::Taken
        } else {
            Offer::Partial(f.single.slice(written..))
        }
    }

    fn position(&self) -> i64 {
        self.pos
    }

    fn resume(&mut self, position: i64, until: Option<Instant>) {
        self.pos = position;
        self.until = until;
    }
}

/// A pending read from history for topic `topic`: up to `until` (a gap before a live
/// frame, which is sent afterwards) or to the end (`None`: catch-up or lag).
struct Repair {
    topic: usize,
    until: Option<i64>,
    then: Option<Arc<MessageFrame>>,
}

fn run(
    rt: Realtime,
    app: AppRef,
    mut topics: Vec<TopicState>,
    start: Vec<(Option<i64>, i64)>,
    mut live: LiveSet,
    grant: Option<Grant>,
) -> impl Stream<Item = Bytes> {
    async_stream::stream! {
        let _conn = ConnectionGuard::new(&rt);
        // The opening frames go out together.
        let mut opening = BytesMut::from(&frame::retry(rt.config.retry_ms)[..]);

        // Catch-up first: a resuming client gets everything after its position.
        let mut work: VecDeque<Repair> = VecDeque::new();
        for (i, (resume, last)) in start.iter().copied().enumerate() {
            let Some(from) = resume else { continue };
            if from > last {
                // A position this topic never reached (it was recreated): start over.
                rt.stats.resyncs.add(1);
                topics[i].pos = last;
                let resync = frame::event("resync", &json!({"topic": topics[i].name.as_str(), "from": from, "to": last, "reason": "position_ahead"}));
                opening.extend_from_slice(&frame::with_id(&stream_id(&topics), &resync));
            } else {
                work.push_back(Repair { topic: i, until: None, then: None });
            }
        }
        // Before any message the client learns where it stands, so that a drop before the
        // first message cannot turn into "start from now" on reconnect.
        opening.extend_from_slice(&frame::position(&stream_id(&topics)));
        yield opening.freeze();

        let mut heartbeat = tokio::time::interval(rt.config.heartbeat);
        heartbeat.reset(); // the first tick would fire at once
        let expires_at = grant.as_ref().map(|g| g.expires_at);
        let warn_at = expires_at.map(|exp| deadline(exp - rt.config.token_warning.as_secs() as i64));
        let expire_at = expires_at.map(deadline);
        let mut warned = false;
        let mut lags: VecDeque<Instant> = VecDeque::new();
        let mut buf: Vec<Bytes> = Vec::new();
        // A live item taken while gathering frames that needs the full treatment below.
        let mut stashed: Option<LiveNext> = None;
        // Created once: a timer or waiter registered per loop turn would cost more than the
        // frame it guards.
        let shutdown = rt.shutdown.clone().cancelled_owned();
        let revoked = revocation(&rt, &app, grant.as_ref());
        let expire = sleep_until(expire_at);
        let warn = sleep_until(warn_at);
        tokio::pin!(shutdown, revoked, expire, warn);
        loop {
            // History before live: one page per turn, so a deep catch-up streams out as it
            // is read instead of piling up in memory.
            if let Some(r) = work.front() {
                let (i, until) = (r.topic, r.until);
                let more = match repair_page(&rt, &app, &mut topics, i, until, &mut buf).await {
                    Ok(more) => more,
                    Err(e) => { yield store_error(&e); return; }
                };
                rt.stats.frames_sent.add(buf.len() as u64);
                if !buf.is_empty() {
                    yield concat(buf.drain(..));
                }
                if !more {
                    if let Some(f) = work.pop_front().and_then(|r| r.then) {
                        let seq = f.message.seq.unwrap_or_default();
                        if seq == topics[i].pos + 1 {
                            topics[i].pos = seq;
                            rt.record_send(f.message.published_at);
                            yield live_frame(&f, &topics);
                        }
                    }
                }
                continue;
            }
            let next = match stashed.take() {
                Some(next) => next,
                None => {
                    // While this waits, a one-topic stream's frames may be written for it
                    // directly; until the token's warning, after which the timers decide.
                    let until = if warned { expire_at } else { warn_at };
                    live.arm(topics[0].pos, until.map(tokio::time::Instant::into_std));
                    let woken = tokio::select! {
                        biased;
                        _ = &mut shutdown => Woken::Shutdown,
                        _ = &mut revoked => Woken::Revoked,
                        _ = &mut expire => Woken::Expire,
                        _ = &mut warn, if !warned => Woken::Warn,
                        _ = heartbeat.tick() => Woken::Heartbeat,
                        next = live.next() => Woken::Live(next),
                    };
                    // Whatever woke it, this task writes next: direct writing stops first.
                    if let Some((pos, rest)) = live.disarm() {
                        topics[0].pos = pos;
                        if let Some(rest) = rest {
                            yield rest;
                        }
                    }
                    match woken {
                        Woken::Shutdown => {
                            // Reconnect soon, to whichever node is up.
                            yield frame::retry(250);
                            yield frame::error(Code::ServerShutdown);
                            return;
                        }
                        Woken::Revoked => {
                            yield frame::error(Code::TokenRevoked);
                            return;
                        }
                        Woken::Expire => {
                            rt.stats.token_expirations.add(1);
                            yield frame::error(Code::TokenExpired);
                            return;
                        }
                        Woken::Warn => {
                            warned = true;
                            let left = expires_at.unwrap_or_default() - chrono::Utc::now().timestamp();
                            yield frame::event("token_expiring", &json!({"expires_in": left.max(0)}));
                            continue;
                        }
                        Woken::Heartbeat => {
                            yield frame::keepalive();
                            continue;
                        }
                        Woken::Live(next) => next,
                    }
                }
            };
            let Some((i, item)) = next else { return };
            match item {
                LiveItem::Flush => {} // its rest went out above
                LiveItem::Frame(Ok(f)) => match in_order(&rt, &mut topics, i, &f) {
                    InOrder::Skip => {} // already sent (replayed or repaired)
                    InOrder::Gap(seq) => {
                        rt.stats.gap_repairs.add(1);
                        work.push_back(Repair { topic: i, until: Some(seq - 1), then: Some(f) });
                    }
                    InOrder::Send(first) => {
                        // Frames already waiting go out with this one, in one write; anything
                        // that needs more than sending waits for the next turn.
                        let mut batch: Option<BytesMut> = None;
                        while batch.as_ref().map_or(first.len(), BytesMut::len) < MAX_WRITE {
                            let Some(next) = live.next().now_or_never() else { break };
                            let sent = match &next {
                                Some((j, LiveItem::Frame(Ok(g)))) => match in_order(&rt, &mut topics, *j, g) {
                                    InOrder::Send(more) => Some(more),
                                    InOrder::Skip => continue,
                                    InOrder::Gap(_) => None,
                                },
                                _ => None,
                            };
                            let Some(more) = sent else {
                                stashed = Some(next);
                                break;
                            };
                            let b = batch.get_or_insert_with(|| BytesMut::from(&first[..]));
                            b.extend_from_slice(&more);
                        }
                        yield batch.map_or(first, BytesMut::freeze);
                    }
                },
                LiveItem::Frame(Err(BroadcastStreamRecvError::Lagged(_))) => {
                    let now = Instant::now();
                    lags.push_back(now);
                    while lags.front().is_some_and(|t| now.duration_since(*t) > LAG_WINDOW) {
                        lags.pop_front();
                    }
                    if lags.len() > MAX_LAGS {
                        rt.stats.slow_consumer_disconnects.add(1);
                        yield frame::error(Code::SlowConsumer);
                        return;
                    }
                    rt.stats.gap_repairs.add(1);
                    work.push_back(Repair { topic: i, until: None, then: None });
                }
                LiveItem::Closed => {
                    yield frame::event("error", &json!({"code": Code::TopicClosed.as_str(), "topic": topics[i].name.as_str()}));
                    return;
                }
            }
        }
    }
}

/// What the hub's subscriptions yield next: a topic's index and its item, or `None` when
/// none is left.
type LiveNext = Option<(usize, LiveItem)>;

/// What ended a live-phase wait.
enum Woken {
    Shutdown,
    /// The token's secret was retired, or the app deleted.
    Revoked,
    Expire,
    Warn,
    Heartbeat,
    Live(LiveNext),
}

/// What a live frame calls for on this stream.
enum InOrder {
    /// Sent already (replayed or repaired).
    Skip,
    /// Frames before this seq are missing: repair from history first.
    Gap(i64),
    /// Next in line: its bytes (the position is advanced and the send counted).
    Send(Bytes),
}

fn in_order(rt: &Realtime, topics: &mut [TopicState], i: usize, f: &MessageFrame) -> InOrder {
    let Some(seq) = f.message.seq else {
        // Ephemeral: no position, no history, no id.
        rt.stats.frames_sent.add(1);
        return InOrder::Send(f.body.clone());
    };
    if seq <= topics[i].pos {
        return InOrder::Skip;
    }
    if seq > topics[i].pos + 1 {
        return InOrder::Gap(seq);
    }
    topics[i].pos = seq;
    rt.record_send(f.message.published_at);
    InOrder::Send(live_frame(f, topics))
}

/// Frames as one buffer (one write).
fn concat(mut frames: impl ExactSizeIterator<Item = Bytes>) -> Bytes {
    if frames.len() == 1 {
        return frames.next().expect("one");
    }
    let mut out = BytesMut::new();
    for f in frames {
        out.extend_from_slice(&f);
    }
    out.freeze()
}

/// Reads one page of history after `topics[i].pos` into `out` as frames, advancing `pos`.
/// Returns whether more remains (before `until`, or before the end when `until` is none).
/// A hole in history (pruned by retention) becomes one `resync` frame and a jump to the
/// topic's current end.
async fn repair_page(
    rt: &Realtime,
    app: &AppRef,
    topics: &mut [TopicState],
    i: usize,
    until: Option<i64>,
    out: &mut Vec<Bytes>,
) -> Result<bool, StoreError> {
    let page = rt
        .store
        .read_after(&app.id, &topics[i].name, topics[i].pos, PAGE)
        .await?;
    let full = page.len() == PAGE as usize;
    for m in &page {
        let seq = m.seq.unwrap_or_default();
        if until.is_some_and(|u| seq > u) {
            return Ok(false);
        }
        if seq != topics[i].pos + 1 {
            resync(rt, app, topics, i, seq - 1, out).await?;
            return Ok(false);
        }
        topics[i].pos = seq;
        out.push(history_frame(m, topics));
    }
    match until {
        Some(u) if topics[i].pos >= u => Ok(false),
        Some(u) if !full => {
            // The gap ends in messages history no longer has.
            resync(rt, app, topics, i, u, out).await?;
            Ok(false)
        }
        _ => Ok(full),
    }
}

async fn resync(
    rt: &Realtime,
    app: &AppRef,
    topics: &mut [TopicState],
    i: usize,
    missing_to: i64,
    out: &mut Vec<Bytes>,
) -> Result<(), StoreError> {
    let last = rt
        .store
        .get_topic(&app.id, &topics[i].name)
        .await?
        .map_or(missing_to, |t| t.last_seq);
    rt.stats.resyncs.add(1);
    let resync = frame::event(
        "resync",
        &json!({"topic": topics[i].name.as_str(), "from": topics[i].pos + 1, "to": missing_to, "reason": "retention"}),
    );
    topics[i].pos = last;
    // The id moves the client past the hole: reconnecting with it cannot skip what is
    // published after the resync.
    out.push(frame::with_id(&stream_id(topics), &resync));
    Ok(())
}

fn history_frame(m: &Message, topics: &[TopicState]) -> Bytes {
    let f = MessageFrame::new(Arc::new(m.clone()));
    if topics.len() > 1 {
        frame::with_id(&multi_id(topics), &f.body)
    } else {
        f.single
    }
}

/// The frame a live message goes out as on this stream.
fn live_frame(f: &MessageFrame, topics: &[TopicState]) -> Bytes {
    if topics.len() > 1 {
        frame::with_id(&multi_id(topics), &f.body)
    } else {
        f.single.clone()
    }
}

/// The stream's current position as an `id:` value.
fn stream_id(topics: &[TopicState]) -> String {
    match topics {
        [one] => one.pos.to_string(),
        _ => multi_id(topics),
    }
}

/// The id of a multi-topic stream's event: every topic's position.
fn multi_id(topics: &[TopicState]) -> String {
    position::render_multi(topics.iter().map(|t| (&t.name, t.pos)))
}

fn store_error(e: &StoreError) -> Bytes {
    tracing::warn!(error = %e, "stream ended by a database error");
    frame::error(Code::Unavailable)
}

fn deadline(unix_secs: i64) -> tokio::time::Instant {
    let now = chrono::Utc::now().timestamp();
    tokio::time::Instant::now() + Duration::from_secs(unix_secs.saturating_sub(now).max(0) as u64)
}

/// Completes when the grant's secret is retired (never, for a stream without a token).
async fn revocation(rt: &Realtime, app: &AppRef, grant: Option<&Grant>) {
    match grant {
        Some(g) => {
            rt.tokens
                .revocation(&app.id, &g.kid)
                .cancelled_owned()
                .await
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Counts the connection while its stream lives.
struct ConnectionGuard(Arc<crate::stats::Stats>);

impl ConnectionGuard {
    fn new(rt: &Realtime) -> Self {
        rt.stats.connections.inc();
        Self(rt.stats.clone())
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}
