//! One SSE subscriber connection: catch up from history, then stream live frames, repairing
//! gaps from history and de-duplicating by seq (the rule and the reads: `catchup`).
//!
//! A `Lagged` receiver (fell behind the hub's bounded queue)
//! reads everything after `pos` from history. Only when history no longer has the next seq
//! (retention) does the client get `resync`, and the stream continues from the topic's
//! current end.
//!
//! Memory per connection is bounded: the hub's queues are shared and bounded, history is read
//! in pages, and hyper pulls frames only as fast as the socket drains (backpressure).

use crate::codes::Code;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Stream, StreamExt};
use picloud_core::app::AppRef;
use picloud_core::StoreError;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::StreamMap;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::SubscribeRequest;
use crate::catchup::{in_order, repair_page, Framing, InOrder, Lags, TopicState};
use crate::channel::Direct as _;
use crate::direct::SocketWriter;
use crate::frame::{self, MessageFrame};
use crate::hub::Subscription;
use crate::position;
use crate::quota::Permit;
use crate::stats::ConnectionGuard;
use crate::streams::{Peer, Registration};
use crate::token::Grant;
use crate::Realtime;

/// Most bytes of live frames gathered into one yield (one write).
const MAX_WRITE: usize = 64 * 1024;
/// Longest a stream waits for the relay to listen to its topic (Redis round trips are
/// bounded by the relay's own deadline; past this, the position check covers the topic).
const RELAY_WAIT: Duration = Duration::from_secs(3);

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

/// What ends a stream besides its client and the server's shutdown.
struct Ends {
    /// The token's expiry, Unix seconds.
    expires_at: Option<i64>,
    /// Fires when the token's secret is retired or its app deleted, or when the admin key
    /// of a tail is revoked.
    revoked: Option<CancellationToken>,
}

/// Subscribes, reads where each topic starts, and returns the streaming body.
#[allow(clippy::too_many_arguments)]
pub(super) async fn open(
    rt: Realtime,
    app: AppRef,
    req: SubscribeRequest,
    grant: Option<Grant>,
    socket: Option<Arc<TcpStream>>,
    peer: Peer,
    revoked: Option<CancellationToken>,
    permit: Option<Permit>,
) -> Result<Body, StoreError> {
    let subject = grant.as_ref().and_then(|g| g.subject.clone());
    let registration = rt.streams.register(&app, &req.topics, subject, peer);
    let mut subs = Vec::with_capacity(req.topics.len());
    for name in &req.topics {
        let sub = rt.hub.subscribe(&app.id, name);
        // In a cluster, other nodes' messages reach this one only once the relay listens.
        sub.relayed(RELAY_WAIT).await;
        subs.push(sub);
    }
    let live = if subs.len() == 1 {
        let mut sub = subs.pop().expect("one");
        if let Some(socket) = socket {
            let positions = registration.positions().clone();
            sub.set_direct(SocketWriter::new(socket, rt.send_recorder(), positions));
        }
        LiveSet::One(sub)
    } else {
        let mut map: StreamMap<usize, Live> = StreamMap::with_capacity(subs.len());
        for (i, sub) in subs.into_iter().enumerate() {
            // `Some(frame)`… then a final `None` when the channel closes (topic deleted).
            let sub = sub.map(Some).chain(futures_util::stream::iter([None]));
            map.insert(i, Box::pin(sub));
        }
        LiveSet::Many(map)
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
        rt.hub.started(&app.id, name, last);
        topics.push(TopicState {
            name: name.clone(),
            pos: resume.unwrap_or(last),
        });
        start.push((*resume, last));
    }
    let ends = Ends {
        expires_at: grant.as_ref().map(|g| g.expires_at),
        revoked: revoked.or_else(|| {
            let g = grant.as_ref()?;
            Some(rt.tokens.revocation(&app.id, &g.kid))
        }),
    };
    drop(grant);
    let frames = run(rt, app, topics, start, live, ends, (registration, permit));
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

/// A pending read from history for topic `topic`: up to `until` (a gap before a live
/// frame, which is sent afterwards) or to the end (`None`: catch-up or lag).
struct Repair {
    topic: usize,
    until: Option<i64>,
    then: Option<Arc<MessageFrame>>,
}

/// A stream's state between writes: what it sent, what it still owes, and its live
/// subscriptions. The body is a loop over [`Self::next`]; everything else is plain
/// functions, one per kind of event.
struct Subscriber {
    rt: Realtime,
    app: AppRef,
    topics: Vec<TopicState>,
    live: LiveSet,
    /// History to read before anything live, one page per turn, so that a deep catch-up
    /// streams out as it is read instead of piling up in memory.
    work: VecDeque<Repair>,
    /// A live item taken while gathering frames that needs the full treatment.
    stashed: Option<LiveNext>,
    heartbeat: tokio::time::Interval,
    warn_at: Option<tokio::time::Instant>,
    expire_at: Option<tokio::time::Instant>,
    warned: bool,
    /// Recent lag events, for the slow-consumer rule.
    lags: Lags,
    buf: Vec<Bytes>,
    /// Set by the turn that wrote the stream's last frame.
    ended: bool,
    _conn: ConnectionGuard,
    /// In the node's stream list while the stream lives; its positions are kept current.
    registration: Registration,
}

pin_project_lite::pin_project! {
    /// What a waiting stream listens for besides its topics. Created once per stream: a
    /// timer or waiter registered per wait would cost more than the frame it guards.
    struct Timers {
        #[pin]
        shutdown: WaitForCancellationFutureOwned,
        // Fires when the token's secret is retired or the app deleted, or when the admin
        // key of a tail is revoked.
        #[pin]
        revoked: Option<WaitForCancellationFutureOwned>,
        #[pin]
        expire: Option<tokio::time::Sleep>,
        #[pin]
        warn: Option<tokio::time::Sleep>,
    }
}

fn run(
    rt: Realtime,
    app: AppRef,
    topics: Vec<TopicState>,
    start: Vec<(Option<i64>, i64)>,
    live: LiveSet,
    ends: Ends,
    held: (Registration, Option<Permit>),
) -> impl Stream<Item = Bytes> {
    async_stream::stream! {
        // The quota permit lives as long as the stream.
        let (registration, _permit) = held;
        let (mut stream, opening) = Subscriber::open(rt, app, topics, &start, live, ends.expires_at, registration);
        yield opening;
        let timers = Timers::new(&stream.rt, ends.revoked, stream.expire_at, stream.warn_at);
        let mut timers = std::pin::pin!(timers);
        while let Some(bytes) = stream.next(timers.as_mut()).await {
            yield bytes;
        }
    }
}

impl Timers {
    fn new(
        rt: &Realtime,
        revoked: Option<CancellationToken>,
        expire_at: Option<tokio::time::Instant>,
        warn_at: Option<tokio::time::Instant>,
    ) -> Self {
        Self {
            shutdown: rt.shutdown.clone().cancelled_owned(),
            revoked: revoked.map(CancellationToken::cancelled_owned),
            expire: expire_at.map(tokio::time::sleep_until),
            warn: warn_at.map(tokio::time::sleep_until),
        }
    }
}

impl Subscriber {
    /// The stream and its opening frames: `retry:`, a `resync` for any position its topic
    /// never reached, and the `position` frame, before any message, so that a drop before
    /// the first message cannot turn into "start from now" on reconnect. A resuming
    /// topic's catch-up is queued.
    fn open(
        rt: Realtime,
        app: AppRef,
        mut topics: Vec<TopicState>,
        start: &[(Option<i64>, i64)],
        live: LiveSet,
        expires_at: Option<i64>,
        registration: Registration,
    ) -> (Self, Bytes) {
        let conn = ConnectionGuard::new(rt.stats.clone());
        let mut opening = BytesMut::from(&frame::retry(rt.config.retry_ms)[..]);
        let mut work = VecDeque::new();
        for (i, (resume, last)) in start.iter().copied().enumerate() {
            let Some(from) = resume else { continue };
            if from > last {
                // A position this topic never reached (it was recreated): start over.
                rt.stats.resyncs.add(1);
                topics[i].pos = last;
                opening.extend_from_slice(&Sse.resync(&topics, i, from, last, "position_ahead"));
            } else {
                work.push_back(Repair {
                    topic: i,
                    until: None,
                    then: None,
                });
            }
        }
        opening.extend_from_slice(&frame::position(&stream_id(&topics)));
        let mut heartbeat = tokio::time::interval(rt.config.heartbeat);
        heartbeat.reset(); // the first tick would fire at once
        let warning = rt.config.token_warning.as_secs() as i64;
        let stream = Self {
            warn_at: expires_at.map(|exp| deadline(exp - warning)),
            expire_at: expires_at.map(deadline),
            warned: false,
            rt,
            app,
            topics,
            live,
            work,
            stashed: None,
            heartbeat,
            lags: Lags::default(),
            buf: Vec::new(),
            ended: false,
            _conn: conn,
            registration,
        };
        stream.show_positions();
        (stream, opening.freeze())
    }

    /// The next bytes to write, or `None` once the stream has ended.
    async fn next(&mut self, mut timers: Pin<&mut Timers>) -> Option<Bytes> {
        while !self.ended {
            let out = self.turn(timers.as_mut()).await;
            self.show_positions();
            if out.is_some() {
                return out;
            }
        }
        None
    }

    /// Makes the positions reached visible to the node's stream list.
    fn show_positions(&self) {
        for (t, shown) in self.topics.iter().zip(self.registration.positions().iter()) {
            shown.store(t.pos, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// One step: a page of history if any is owed, else the next live item (waiting for
    /// it, or for a timer, if none is ready). Returns what to write, if anything.
    async fn turn(&mut self, timers: Pin<&mut Timers>) -> Option<Bytes> {
        if !self.work.is_empty() {
            return self.repair().await;
        }
        if let Some(next) = self.stashed.take() {
            return self.on_live(next);
        }
        let (woken, rest) = self.wait(timers).await;
        let out = match woken {
            Woken::Live(next) => self.on_live(next),
            Woken::Shutdown => {
                // Reconnect soon, to whichever node is up.
                self.end(join(frame::retry(250), frame::error(Code::ServerShutdown)))
            }
            Woken::Revoked => self.end(frame::error(Code::TokenRevoked)),
            Woken::Expire => {
                self.rt.stats.token_expirations.add(1);
                self.end(frame::error(Code::TokenExpired))
            }
            Woken::Warn => {
                self.warned = true;
                let now = tokio::time::Instant::now();
                let left = self
                    .expire_at
                    .map_or(0, |at| at.saturating_duration_since(now).as_secs());
                Some(frame::event("token_expiring", &json!({"expires_in": left})))
            }
            Woken::Heartbeat => Some(frame::keepalive()),
        };
        // What direct writing left unwritten goes first.
        match (rest, out) {
            (Some(rest), Some(out)) => Some(join(rest, out)),
            (rest, out) => rest.or(out),
        }
    }

    /// Waits for a live item or a timer. While it waits, a one-topic stream's frames may
    /// be written for it directly, until the token's warning (after which the timers
    /// decide); whatever wakes it, direct writing stops before this task writes again,
    /// and the part of a frame it left unwritten, if any, comes back.
    async fn wait(&mut self, timers: Pin<&mut Timers>) -> (Woken, Option<Bytes>) {
        let until = if self.warned {
            self.expire_at
        } else {
            self.warn_at
        };
        self.live.arm(
            self.topics[0].pos,
            until.map(tokio::time::Instant::into_std),
        );
        let t = timers.project();
        let warned = self.warned;
        let woken = tokio::select! {
            biased;
            _ = t.shutdown => Woken::Shutdown,
            () = or_never(t.revoked) => Woken::Revoked,
            () = or_never(t.expire) => Woken::Expire,
            () = or_never(t.warn), if !warned => Woken::Warn,
            _ = self.heartbeat.tick() => Woken::Heartbeat,
            next = self.live.next() => Woken::Live(next),
        };
        let mut rest = None;
        if let Some((pos, unwritten)) = self.live.disarm() {
            self.topics[0].pos = pos;
            rest = unwritten;
        }
        (woken, rest)
    }

    /// A live item: a frame in order goes out, with every frame already waiting behind
    /// it (one write); a gap or a lag queues a repair; a closed topic ends the stream.
    fn on_live(&mut self, next: LiveNext) -> Option<Bytes> {
        let Some((i, item)) = next else {
            self.ended = true;
            return None;
        };
        match item {
            LiveItem::Flush => None, // its rest went out with this turn
            LiveItem::Frame(Ok(f)) => match in_order(&self.rt, &Sse, &mut self.topics, i, &f) {
                InOrder::Skip => None,
                InOrder::Gap(seq) => {
                    self.rt.stats.gap_repairs.add(1);
                    self.work.push_back(Repair {
                        topic: i,
                        until: Some(seq - 1),
                        then: Some(f),
                    });
                    None
                }
                InOrder::Send(first) => Some(self.gather(first)),
            },
            LiveItem::Frame(Err(BroadcastStreamRecvError::Lagged(_))) => self.lagged(i),
            LiveItem::Closed => self.end(frame::event(
                "error",
                &json!({"code": Code::TopicClosed.as_str(), "topic": self.topics[i].name.as_str()}),
            )),
        }
    }

    /// `first` and the frames ready behind it, up to [`MAX_WRITE`] bytes; an item that
    /// needs more than sending is kept for the next turn.
    fn gather(&mut self, first: Bytes) -> Bytes {
        let mut batch: Option<BytesMut> = None;
        while batch.as_ref().map_or(first.len(), BytesMut::len) < MAX_WRITE {
            let Some(next) = self.live.next().now_or_never() else {
                break;
            };
            let sent = match &next {
                Some((j, LiveItem::Frame(Ok(g)))) => {
                    match in_order(&self.rt, &Sse, &mut self.topics, *j, g) {
                        InOrder::Send(more) => Some(more),
                        InOrder::Skip => continue,
                        InOrder::Gap(_) => None,
                    }
                }
                _ => None,
            };
            let Some(more) = sent else {
                self.stashed = Some(next);
                break;
            };
            let b = batch.get_or_insert_with(|| BytesMut::from(&first[..]));
            b.extend_from_slice(&more);
        }
        batch.map_or(first, BytesMut::freeze)
    }

    /// A subscription fell behind the hub's queue: repair it from history, unless it has
    /// lagged too often (`Lags`: a consumer too slow).
    fn lagged(&mut self, i: usize) -> Option<Bytes> {
        if self.lags.too_slow() {
            self.rt.stats.slow_consumer_disconnects.add(1);
            return self.end(frame::error(Code::SlowConsumer));
        }
        self.rt.stats.gap_repairs.add(1);
        self.work.push_back(Repair {
            topic: i,
            until: None,
            then: None,
        });
        None
    }

    /// One page of the first owed repair, and once the repair is done the live frame that
    /// was waiting for it, if it is next in line.
    async fn repair(&mut self) -> Option<Bytes> {
        let (i, until) = self.work.front().map(|r| (r.topic, r.until))?;
        let page = repair_page(
            &self.rt,
            &Sse,
            &self.app,
            &mut self.topics,
            i,
            until,
            &mut self.buf,
        );
        let more = match page.await {
            Ok(more) => more,
            Err(e) => return self.end(store_error(&e)),
        };
        self.rt.stats.frames_sent.add(self.buf.len() as u64);
        if !more {
            if let Some(f) = self.work.pop_front().and_then(|r| r.then) {
                let seq = f.message.seq.unwrap_or_default();
                if seq == self.topics[i].pos + 1 {
                    self.topics[i].pos = seq;
                    self.rt.record_send(f.message.published_at);
                    self.buf.push(live_frame(&f, &self.topics));
                }
            }
        }
        (!self.buf.is_empty()).then(|| concat(self.buf.drain(..)))
    }

    /// `last` is the stream's final frame.
    fn end(&mut self, last: Bytes) -> Option<Bytes> {
        self.ended = true;
        Some(last)
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

/// Two writes as one.
fn join(a: Bytes, b: Bytes) -> Bytes {
    let mut out = BytesMut::with_capacity(a.len() + b.len());
    out.extend_from_slice(&a);
    out.extend_from_slice(&b);
    out.freeze()
}

/// Completes when `f` does; never when there is no `f`.
async fn or_never<F: std::future::Future>(f: Pin<&mut Option<F>>) {
    match f.as_pin_mut() {
        Some(f) => {
            f.await;
        }
        None => std::future::pending().await,
    }
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

/// SSE's frames: a durable message with its `id:` (the seq, or every topic's position on
/// a multi-topic stream).
pub(super) struct Sse;

impl Framing for Sse {
    fn durable(&self, f: &MessageFrame, topics: &[TopicState], _: usize) -> Bytes {
        live_frame(f, topics)
    }

    fn ephemeral(&self, f: &MessageFrame) -> Bytes {
        f.body.clone()
    }

    fn resync(&self, topics: &[TopicState], i: usize, from: i64, to: i64, reason: &str) -> Bytes {
        let resync = frame::event(
            "resync",
            &json!({"topic": topics[i].name.as_str(), "from": from, "to": to, "reason": reason}),
        );
        // The id moves the client past the hole: reconnecting with it cannot skip what is
        // published after the resync.
        frame::with_id(&stream_id(topics), &resync)
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
