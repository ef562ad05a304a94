//! A subscriber's topics and what it has sent of each, shared by both transports (SSE
//! streams and WebSocket connections): the rule for a live message (send, skip, or repair a
//! gap first) and the reads from history that repair it, with `resync` where retention
//! pruned what was missed. Each transport renders the frames its own way ([`Framing`]).
//!
//! Per topic a subscriber keeps `pos`, the last seq it sent. A live message with
//! `seq <= pos` is a duplicate (already replayed) and skipped; `seq == pos + 1` is sent; a
//! higher seq means messages were missed, so the gap is read from history first.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use picloud_core::app::AppRef;
use picloud_core::topic::TopicName;
use picloud_core::StoreError;

use crate::frame::MessageFrame;
use crate::order::{order, Order};
use crate::Realtime;

/// History read per query while catching up or repairing.
pub(crate) const PAGE: u32 = 500;

pub(crate) struct TopicState {
    pub name: TopicName,
    /// The last seq sent (or the position the subscriber resumed from).
    pub pos: i64,
}

/// How a transport renders what a subscriber is sent.
pub(crate) trait Framing {
    /// A durable message of `topics[i]`, whose `pos` already is its seq.
    fn durable(&self, f: &MessageFrame, topics: &[TopicState], i: usize) -> Bytes;
    /// An ephemeral message or a presence event: no position.
    fn ephemeral(&self, f: &MessageFrame) -> Bytes;
    /// Messages `from..=to` of `topics[i]` cannot be delivered (`reason`); its `pos`
    /// already is where it continues.
    fn resync(&self, topics: &[TopicState], i: usize, from: i64, to: i64, reason: &str) -> Bytes;
}

/// What a live message calls for on a subscriber.
pub(crate) enum InOrder {
    /// Sent already (replayed or repaired).
    Skip,
    /// Messages before this seq are missing: repair from history first.
    Gap(i64),
    /// Next in line: its bytes (the position is advanced and the send counted).
    Send(Bytes),
}

pub(crate) fn in_order(
    rt: &Realtime,
    framing: &impl Framing,
    topics: &mut [TopicState],
    i: usize,
    f: &MessageFrame,
) -> InOrder {
    let seq = f.message.seq;
    match (order(topics[i].pos, seq), seq) {
        (Order::Skip, _) => InOrder::Skip,
        (Order::Gap, seq) => InOrder::Gap(seq.unwrap_or_default()),
        (Order::Send, None) => {
            rt.stats.frames_sent.add(1);
            InOrder::Send(framing.ephemeral(f))
        }
        (Order::Send, Some(seq)) => {
            topics[i].pos = seq;
            rt.record_send(f.message.published_at);
            InOrder::Send(framing.durable(f, topics, i))
        }
    }
}

/// Reads one page of history after `topics[i].pos` into `out` as frames, advancing `pos`.
/// Returns whether more remains (before `until`, or before the end when `until` is none).
/// A hole in history (pruned by retention) becomes one `resync` frame and a jump to the
/// topic's current end.
pub(crate) async fn repair_page(
    rt: &Realtime,
    framing: &impl Framing,
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
    for m in page {
        let seq = m.seq.unwrap_or_default();
        if until.is_some_and(|u| seq > u) {
            return Ok(false);
        }
        if seq != topics[i].pos + 1 {
            resync(rt, framing, app, topics, i, seq - 1, out).await?;
            return Ok(false);
        }
        topics[i].pos = seq;
        out.push(framing.durable(&MessageFrame::new(Arc::new(m)), topics, i));
    }
    match until {
        Some(u) if topics[i].pos >= u => Ok(false),
        Some(u) if !full => {
            // The gap ends in messages history no longer has.
            resync(rt, framing, app, topics, i, u, out).await?;
            Ok(false)
        }
        _ => Ok(full),
    }
}

async fn resync(
    rt: &Realtime,
    framing: &impl Framing,
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
    let from = topics[i].pos + 1;
    topics[i].pos = last;
    out.push(framing.resync(topics, i, from, missing_to, "retention"));
    Ok(())
}

/// Lag events tolerated within [`LAG_WINDOW`] before a consumer counts as too slow.
const MAX_LAGS: usize = 5;
const LAG_WINDOW: Duration = Duration::from_secs(30);

/// A subscriber's recent lags (it fell behind the hub's queue), for the slow-consumer rule.
#[derive(Default)]
pub(crate) struct Lags(VecDeque<Instant>);

impl Lags {
    /// Records a lag; `true` when the subscriber lagged more than [`MAX_LAGS`] times within
    /// [`LAG_WINDOW`] and must be dropped as too slow (else it repairs from history).
    pub(crate) fn too_slow(&mut self) -> bool {
        let now = Instant::now();
        self.0.push_back(now);
        while self
            .0
            .front()
            .is_some_and(|t| now.duration_since(*t) > LAG_WINDOW)
        {
            self.0.pop_front();
        }
        self.0.len() > MAX_LAGS
    }
}
