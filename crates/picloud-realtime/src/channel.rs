//! One topic's fan-out: a bounded queue of frames that every receiver reads in order.
//!
//! Hand-written rather than `tokio::sync::broadcast` because of what that channel keeps:
//! a ring of `capacity` slots allocated up front, each holding its frame until overwritten.
//! With 10,000 topics of 1,024 slots that was ~40 KiB per topic before any message, and
//! every frame ever sent stayed alive until its slot came round again (S4: 552 MB of RSS
//! against Nchan's 227 MB), so each send wrote to cold memory. Here a frame is dropped as
//! soon as every receiver has read it (each carries the count of receivers yet to read
//! it), the queue grows only as far as the slowest receiver lags, and `capacity` still
//! bounds it: a receiver that falls further behind loses the oldest frames and is told how
//! many (`Lagged`), then repairs from history as before.
//!
//! A receiver may also take frames *directly* ([`Direct`]): while its stream has nothing
//! else to do, it parks a writer here instead of a waker, and each send hands the frame to
//! that writer under the channel's lock (so in send order), which writes it to the
//! subscriber's socket from the publishing task. Waking the stream's task, polling it and
//! its body for one frame cost more than the write itself when a topic has one or a few
//! subscribers; with many, the woken tasks' gathered writes are cheaper, so only channels
//! with at most [`DIRECT_MAX`] receivers write directly. Anything the writer cannot finish
//! (a full socket, a gap, an expiring token) ends the direct phase: the frame is read the
//! usual way and the task takes over.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::Stream;
use smallvec::SmallVec;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::frame::MessageFrame;

/// A channel's (app, topic) in the hub (`app`, `\0`, `topic`): inline up to 64 bytes (an
/// app id and a topic name of up to 27 characters) so that the hub's lookup reads it from
/// the channel's own first cache lines.
pub(crate) type ChannelKey = SmallVec<[u8; 64]>;

/// `repr(C)`: the fields a broadcast reads (the key, the lock, then the state's hot part)
/// in this order, on adjacent cache lines, from a line's start.
#[repr(C, align(64))]
pub struct Channel<D> {
    hash: u64,
    key: ChannelKey,
    state: Mutex<State<D>>,
    capacity: usize,
    /// What the hub keeps per topic besides the fan-out (its delivery order).
    pub(crate) topic: crate::hub::TopicState,
}

/// `repr(C)`, hot fields first: a send with one directly writing receiver reads
/// `receivers`, `closed`, `armed` and the first `direct` slot, and nothing after them.
#[repr(C)]
struct State<D> {
    receivers: usize,
    armed: usize,
    closed: bool,
    /// Receivers taking frames directly (or just stopped doing so), by slot; `armed`
    /// counts the [`Slot::Armed`] ones. The first is inline: most topics have one
    /// subscriber.
    direct: SmallVec<[Slot<D>; 1]>,
    /// Frames some receiver has yet to read, oldest first, each with how many have yet to
    /// read it. `head` is the position of the first.
    queue: VecDeque<(Arc<MessageFrame>, usize)>,
    head: u64,
    /// Receivers waiting for the next frame, woken (and cleared) by each send. A receiver
    /// registers once per `epoch` (see [`Receiver::waiting`]); one dropped while waiting
    /// leaves a no-op waker (so its task is not kept alive) whose place `free` lends to
    /// the next to register, so subscribers coming and going on a quiet topic cannot grow
    /// the list.
    waiting: Vec<Waker>,
    free: Vec<usize>,
    epoch: u64,
    direct_free: Vec<usize>,
}

/// Takes live frames for a receiver whose stream is idle: see the module docs.
pub(crate) trait Direct: Send + Unpin + 'static {
    /// Handles `frame` (writes it out, or skips it as already sent) or declines it. Runs
    /// under the channel's lock: it must not block.
    fn offer(&mut self, frame: &MessageFrame) -> Offer;
    /// The stream's position as the writer last left it (its `seq` on the topic).
    fn position(&self) -> i64;
    /// Where the stream stands before the writer is armed again: its position, and the
    /// instant from which the writer must decline everything (a token about to expire).
    fn resume(&mut self, position: i64, until: Option<std::time::Instant>);
}

pub(crate) enum Offer {
    /// Handled: the receiver stays direct.
    Taken,
    /// Not handled: the receiver reads this frame the usual way, and its task takes over.
    Declined,
    /// Handled, but only part of it was written: the task must write the rest before
    /// anything else.
    Partial(Bytes),
}

/// Receivers on a channel with more than this many write through their tasks.
pub(crate) const DIRECT_MAX: usize = 4;

enum Slot<D> {
    Free,
    Armed {
        direct: D,
        waker: Waker,
    },
    /// Ended by a send (or close): the receiver reads on from `next`, after writing `rest`.
    Ended {
        direct: D,
        next: u64,
        rest: Option<Bytes>,
    },
}

impl<D: Direct> State<D> {
    fn tail(&self) -> u64 {
        self.head + self.queue.len() as u64
    }

    /// Drops the frames at the front that every receiver has read.
    fn release(&mut self) {
        while self.queue.front().is_some_and(|(_, unread)| *unread == 0) {
            self.queue.pop_front();
            self.head += 1;
        }
    }

    /// Wakes every waiting receiver (`st` is this state's guard): a few under the lock,
    /// keeping the list's allocation; many after it, so their tasks do not find it held.
    fn wake_all(mut st: MutexGuard<'_, State<D>>) {
        st.epoch += 1;
        st.free.clear();
        if st.waiting.len() <= FEW_WAITERS {
            st.waiting.drain(..).for_each(Waker::wake);
            return;
        }
        let wake = std::mem::take(&mut st.waiting);
        drop(st);
        wake.into_iter().for_each(Waker::wake);
    }

    /// Offers the frame about to take the tail position to every armed receiver; those
    /// that decline (or only partly write it), or every one when the channel has grown
    /// past [`DIRECT_MAX`] receivers, stop being direct and are woken. Returns how many
    /// handled it whole or in part (they do not read it from the queue) and whether any
    /// did so only in part. The position is read only for those (the queue lies beyond
    /// the cache lines a taken frame touches).
    fn offer_direct(&mut self, frame: &MessageFrame) -> (usize, bool) {
        let (mut handled, mut partial, mut ended) = (0, false, 0);
        let crowded = self.receivers > DIRECT_MAX;
        // Captures only `head` and `queue` (disjoint from `direct`), read only when needed.
        let tail = || self.head + self.queue.len() as u64;
        for slot in &mut self.direct {
            let Slot::Armed { direct, .. } = slot else {
                continue;
            };
            let offer = if crowded {
                Offer::Declined
            } else {
                direct.offer(frame)
            };
            match offer {
                Offer::Taken => handled += 1,
                Offer::Declined => {
                    slot.end(tail(), None);
                    ended += 1;
                }
                Offer::Partial(rest) => {
                    handled += 1;
                    partial = true;
                    slot.end(tail() + 1, Some(rest));
                    ended += 1;
                }
            }
        }
        self.armed -= ended;
        (handled, partial)
    }

    /// Ends every armed receiver's direct phase at the current tail (close).
    fn end_direct(&mut self) {
        let next = self.tail();
        for slot in &mut self.direct {
            slot.end(next, None);
        }
        self.armed = 0;
    }
}

impl<D> Slot<D> {
    /// Ends an armed slot's direct phase (any other is left as it is): its receiver reads
    /// on from `next`, after `rest`, and is woken to do so.
    fn end(&mut self, next: u64, rest: Option<Bytes>) {
        if !matches!(self, Slot::Armed { .. }) {
            return;
        }
        let Slot::Armed { direct, waker } = std::mem::replace(self, Slot::Free) else {
            unreachable!("checked above")
        };
        *self = Slot::Ended { direct, next, rest };
        waker.wake();
    }
}

/// Waiters woken under the lock (see [`State::wake_all`]).
const FEW_WAITERS: usize = 8;

impl<D: Direct> Channel<D> {
    /// A channel outside any hub (no key).
    #[cfg(test)]
    pub fn new(capacity: usize) -> Arc<Self> {
        Self::keyed(capacity, ChannelKey::new(), 0, Default::default())
    }

    /// A hub's channel: `key` and its `hash` are what the hub finds it by.
    pub(crate) fn keyed(
        capacity: usize,
        key: ChannelKey,
        hash: u64,
        topic: crate::hub::TopicState,
    ) -> Arc<Self> {
        Arc::new(Self {
            topic,
            hash,
            key,
            state: Mutex::new(State {
                receivers: 0,
                armed: 0,
                closed: false,
                direct: SmallVec::new(),
                queue: VecDeque::new(),
                head: 0,
                waiting: Vec::new(),
                free: Vec::new(),
                epoch: 0,
                direct_free: Vec::new(),
            }),
            capacity: capacity.max(1),
        })
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    fn lock(&self) -> MutexGuard<'_, State<D>> {
        // Nothing that can panic runs under the lock; a poisoned one is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Receivers open now.
    pub fn receivers(&self) -> usize {
        self.lock().receivers
    }

    /// A receiver of every frame sent from now on.
    pub fn subscribe(self: &Arc<Self>) -> Receiver<D> {
        let mut st = self.lock();
        st.receivers += 1;
        let next = st.tail();
        drop(st);
        Receiver {
            channel: self.clone(),
            next,
            waiting: None,
            direct: DirectPart::default(),
        }
    }

    pub fn receiver_count(&self) -> usize {
        self.lock().receivers
    }

    /// Queues `frame` for every current receiver and wakes those waiting. With no
    /// receiver, does nothing.
    pub fn send(&self, frame: Arc<MessageFrame>) {
        let mut st = self.lock();
        if st.receivers == 0 || st.closed {
            return;
        }
        let mut unread = st.receivers;
        let mut partial = false;
        if st.armed > 0 {
            let (handled, part) = st.offer_direct(&frame);
            unread -= handled;
            partial = part;
        }
        if unread == 0 && !partial {
            // Every receiver took it directly: nothing to queue, nobody to wake.
            return;
        }
        // A partly written frame still takes its position (its writer's receiver resumes
        // after it), even when nobody else reads it.
        st.queue.push_back((frame, unread));
        if st.queue.len() > self.capacity {
            // The slowest receivers lose the oldest frame; they learn it as `Lagged`.
            st.queue.pop_front();
            st.head += 1;
        }
        st.release();
        State::wake_all(st);
    }

    /// Ends every receiver's stream once it has read what is queued for it.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.end_direct();
        State::wake_all(st);
    }
}

/// One subscriber's read position in a [`Channel`].
pub struct Receiver<D: Direct> {
    channel: Arc<Channel<D>>,
    /// The position of the next frame to read.
    next: u64,
    /// The epoch and index of this receiver's entry in `waiting`, if it has one.
    waiting: Option<(u64, usize)>,
    direct: DirectPart<D>,
}

/// A receiver's side of direct writing.
struct DirectPart<D> {
    /// Its writer while parked here (the receiver is not taking frames directly).
    writer: Option<D>,
    /// Its slot in the channel's `direct` while the writer is there (armed, or ended and
    /// not yet taken back).
    armed: Option<usize>,
    /// Bytes of a partly written frame, to be written before anything else.
    rest: Option<Bytes>,
    /// Whether its stream has allowed direct writing at the next wait
    /// ([`Receiver::allow_direct`]).
    may_arm: bool,
}

impl<D> Default for DirectPart<D> {
    fn default() -> Self {
        Self {
            writer: None,
            armed: None,
            rest: None,
            may_arm: false,
        }
    }
}

impl<D: Direct> DirectPart<D> {
    /// Takes the writer back from slot `at`: reading resumes (`next`) where the direct
    /// phase ended, or, still armed, at the tail (it took every frame sent meanwhile).
    fn take_back(&mut self, st: &mut State<D>, at: usize, next: &mut u64) {
        match std::mem::replace(&mut st.direct[at], Slot::Free) {
            Slot::Armed { direct, .. } => {
                st.armed -= 1;
                *next = st.tail();
                self.writer = Some(direct);
            }
            Slot::Ended {
                direct,
                next: from,
                rest,
            } => {
                *next = from;
                self.writer = Some(direct);
                self.rest = rest;
            }
            Slot::Free => unreachable!("a receiver's slot is freed only by it"),
        }
        st.direct_free.push(at);
        self.armed = None;
    }
}

impl<D: Direct> Receiver<D> {
    pub(crate) fn channel(&self) -> &Channel<D> {
        &self.channel
    }

    /// Lets this receiver take frames directly through `direct` whenever it would
    /// otherwise wait (see [`Channel`]'s module docs).
    pub(crate) fn set_direct(&mut self, direct: D) {
        self.direct.writer = Some(direct);
    }

    /// Lets the next wait (a poll that finds nothing to read) arm the direct writer. The
    /// stream allows it only when everything it yielded has been written: the writer and
    /// the stream's own writes must never overlap. [`Self::disarm`] withdraws it.
    pub(crate) fn allow_direct(&mut self) {
        self.direct.may_arm = self.direct.writer.is_some() || self.direct.armed.is_some();
    }

    /// Its direct writer, when parked here (not armed).
    pub(crate) fn direct_mut(&mut self) -> Option<&mut D> {
        self.direct.writer.as_mut()
    }

    /// Ends the direct phase, if armed: the writer comes back (see [`Self::direct_mut`])
    /// and reading resumes after what it took. Returns the bytes it left unwritten, which
    /// must go out before anything else. A receiver whose stream is about to write must
    /// call this first.
    pub(crate) fn disarm(&mut self) -> Option<Bytes> {
        self.direct.may_arm = false;
        if let Some(at) = self.direct.armed {
            let mut st = self.channel.lock();
            self.direct.take_back(&mut st, at, &mut self.next);
        }
        self.direct.rest.take()
    }

    /// Whether a partly written frame's rest waits to be taken with [`Self::disarm`].
    pub(crate) fn has_rest(&self) -> bool {
        self.direct.rest.is_some()
    }

    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Arc<MessageFrame>, BroadcastStreamRecvError>>> {
        let mut st = self.channel.lock();
        if let Some(at) = self.direct.armed {
            if let Slot::Armed { waker, .. } = &mut st.direct[at] {
                if !waker.will_wake(cx.waker()) {
                    *waker = cx.waker().clone();
                }
                return Poll::Pending;
            }
            self.direct.take_back(&mut st, at, &mut self.next);
        }
        if self.next < st.head {
            let missed = st.head - self.next;
            self.next = st.head;
            return Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(missed))));
        }
        if self.next < st.tail() {
            let at = (self.next - st.head) as usize;
            let entry = &mut st.queue[at];
            entry.1 -= 1;
            let frame = entry.0.clone();
            self.next += 1;
            if at == 0 {
                st.release();
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        if st.closed {
            return Poll::Ready(None);
        }
        if self.direct.may_arm && self.direct.rest.is_none() && st.receivers <= DIRECT_MAX {
            if let Some(direct) = self.direct.writer.take() {
                let slot = Slot::Armed {
                    direct,
                    waker: cx.waker().clone(),
                };
                let st = &mut *st;
                let at = place(&mut st.direct, &mut st.direct_free, slot);
                st.armed += 1;
                self.direct.armed = Some(at);
                return Poll::Pending;
            }
        }
        let epoch = st.epoch;
        match self.waiting {
            Some((e, i)) if e == epoch => {
                if !st.waiting[i].will_wake(cx.waker()) {
                    st.waiting[i] = cx.waker().clone();
                }
            }
            _ => {
                let st = &mut *st;
                let at = place(&mut st.waiting, &mut st.free, cx.waker().clone());
                self.waiting = Some((epoch, at));
            }
        }
        Poll::Pending
    }
}

/// Puts `item` in a place `free` lends, or at the end: its index.
fn place<T, L>(list: &mut L, free: &mut Vec<usize>, item: T) -> usize
where
    L: AsRef<[T]> + Extend<T> + std::ops::IndexMut<usize, Output = T>,
{
    match free.pop() {
        Some(at) => {
            list[at] = item;
            at
        }
        None => {
            list.extend(std::iter::once(item));
            list.as_ref().len() - 1
        }
    }
}

impl<D: Direct> Stream for Receiver<D> {
    type Item = Result<Arc<MessageFrame>, BroadcastStreamRecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<D: Direct> Drop for Receiver<D> {
    fn drop(&mut self) {
        let mut st = self.channel.lock();
        st.receivers -= 1;
        if let Some(at) = self.direct.armed {
            self.direct.take_back(&mut st, at, &mut self.next);
        }
        // What it had yet to read no longer waits for it.
        let from = self.next.max(st.head);
        let skip = (from - st.head) as usize;
        for (_, unread) in st.queue.iter_mut().skip(skip) {
            *unread -= 1;
        }
        st.release();
        if let Some((epoch, at)) = self.waiting {
            if epoch == st.epoch {
                st.waiting[at] = Waker::noop().clone();
                st.free.push(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use picloud_core::ids::AppId;
    use picloud_core::message::Message;
    use picloud_core::topic::TopicName;

    fn frame(seq: i64) -> Arc<MessageFrame> {
        Arc::new(MessageFrame::new(Arc::new(Message {
            app_id: AppId("a".into()),
            topic: TopicName::parse("t").unwrap(),
            seq: Some(seq),
            payload: Arc::from("{}"),
            published_at: 0,
            kind: Default::default(),
        })))
    }

    fn seq(item: Option<Result<Arc<MessageFrame>, BroadcastStreamRecvError>>) -> i64 {
        item.unwrap().unwrap().message.seq.unwrap()
    }

    trait Ready<T> {
        fn ready(self) -> T;
    }

    impl<T> Ready<T> for Poll<T> {
        fn ready(self) -> T {
            match self {
                Poll::Ready(t) => t,
                Poll::Pending => panic!("pending"),
            }
        }
    }

    fn queued(c: &Channel<Script>) -> usize {
        c.lock().queue.len()
    }

    #[tokio::test]
    async fn every_receiver_reads_every_frame_and_read_frames_are_dropped() {
        let c = Channel::<Script>::new(8);
        c.send(frame(0)); // no receiver: not kept
        assert_eq!(queued(&c), 0);
        let (mut a, mut b) = (c.subscribe(), c.subscribe());
        c.send(frame(1));
        c.send(frame(2));
        assert_eq!(seq(a.next().await), 1);
        assert_eq!(seq(a.next().await), 2);
        assert_eq!(queued(&c), 2, "b has read nothing yet");
        assert_eq!(seq(b.next().await), 1);
        assert_eq!(queued(&c), 1);
        assert_eq!(seq(b.next().await), 2);
        assert_eq!(queued(&c), 0, "read by all: released");
        let late = c.subscribe();
        c.send(frame(3));
        drop(late); // its unread frame no longer waits for it
        assert_eq!(seq(a.next().await), 3);
        assert_eq!(seq(b.next().await), 3);
        assert_eq!(queued(&c), 0);
    }

    #[tokio::test]
    async fn a_receiver_past_capacity_is_told_how_many_it_lost() {
        let c = Channel::<Script>::new(3);
        let mut slow = c.subscribe();
        for s in 1..=5 {
            c.send(frame(s));
        }
        assert_eq!(queued(&c), 3, "bounded");
        match slow.next().await {
            Some(Err(BroadcastStreamRecvError::Lagged(2))) => {}
            other => panic!("expected Lagged(2), got {:?}", other.map(|r| r.is_ok())),
        }
        assert_eq!(seq(slow.next().await), 3);
    }

    #[test]
    fn receivers_that_come_and_go_on_a_quiet_topic_leave_nothing_behind() {
        let c = Channel::<Script>::new(4);
        let mut cx = Context::from_waker(Waker::noop());
        let mut stays = c.subscribe();
        assert!(stays.poll_recv(&mut cx).is_pending());
        for _ in 0..100 {
            let mut r = c.subscribe();
            assert!(r.poll_recv(&mut cx).is_pending());
            assert!(
                r.poll_recv(&mut cx).is_pending(),
                "polled twice, registered once"
            );
            drop(r);
        }
        assert_eq!(
            c.lock().waiting.len(),
            2,
            "one place reused by each newcomer"
        );
        assert_eq!(c.receiver_count(), 1);
        c.send(frame(1));
        assert!(c.lock().waiting.is_empty());
        assert!(matches!(stays.poll_recv(&mut cx), Poll::Ready(Some(Ok(_)))));
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_and_close_ends_the_stream() {
        let c = Channel::<Script>::new(4);
        let mut r = c.subscribe();
        let waiter = tokio::spawn(async move {
            let first = seq(r.next().await);
            (first, r.next().await.is_none())
        });
        tokio::task::yield_now().await;
        c.send(frame(7));
        tokio::task::yield_now().await;
        c.close();
        let (first, ended) = waiter.await.unwrap();
        assert_eq!((first, ended), (7, true));
        assert_eq!(c.receiver_count(), 0);
    }

    /// A direct writer that records what it takes and answers from a script (then `Taken`).
    struct Script {
        taken: Arc<Mutex<Vec<i64>>>,
        answers: VecDeque<&'static str>,
        pos: i64,
    }

    impl Direct for Script {
        fn offer(&mut self, frame: &MessageFrame) -> Offer {
            let seq = frame.message.seq.unwrap();
            match self.answers.pop_front().unwrap_or("take") {
                "decline" => Offer::Declined,
                "partial" => {
                    self.taken.lock().unwrap().push(seq);
                    self.pos = seq;
                    Offer::Partial(Bytes::from_static(b"rest"))
                }
                _ => {
                    self.taken.lock().unwrap().push(seq);
                    self.pos = seq;
                    Offer::Taken
                }
            }
        }
        fn position(&self) -> i64 {
            self.pos
        }
        fn resume(&mut self, position: i64, _until: Option<std::time::Instant>) {
            self.pos = position;
        }
    }

    fn direct(r: &mut Receiver<Script>, answers: &[&'static str]) -> Arc<Mutex<Vec<i64>>> {
        let taken = Arc::new(Mutex::new(Vec::new()));
        r.set_direct(Script {
            taken: taken.clone(),
            answers: answers.iter().copied().collect(),
            pos: 0,
        });
        taken
    }

    /// Polls once with direct writing allowed, as a stream does before it waits.
    fn wait(
        r: &mut Receiver<Script>,
    ) -> Poll<Option<Result<Arc<MessageFrame>, BroadcastStreamRecvError>>> {
        r.allow_direct();
        r.poll_recv(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn an_armed_receiver_takes_frames_directly_and_resumes_after_them() {
        let c = Channel::<Script>::new(8);
        let mut r = c.subscribe();
        let mut other = c.subscribe();
        let taken = direct(&mut r, &[]);
        assert!(wait(&mut r).is_pending());
        c.send(frame(1));
        c.send(frame(2));
        assert_eq!(*taken.lock().unwrap(), [1, 2]);
        assert_eq!(queued(&c), 2, "queued for the other receiver only");
        assert!(
            r.poll_recv(&mut Context::from_waker(Waker::noop()))
                .is_pending(),
            "still armed"
        );
        assert_eq!(r.disarm(), None);
        assert_eq!(r.direct_mut().unwrap().position(), 2);
        c.send(frame(3));
        assert_eq!(
            seq(r.poll_recv(&mut Context::from_waker(Waker::noop())).ready()),
            3
        );
        assert_eq!(
            taken.lock().unwrap().len(),
            2,
            "disarmed: read the usual way"
        );
        for s in 1..=3 {
            assert_eq!(
                seq(other
                    .poll_recv(&mut Context::from_waker(Waker::noop()))
                    .ready()),
                s
            );
        }
        assert_eq!(queued(&c), 0, "nothing waits for the direct receiver");
    }

    #[test]
    fn a_receiver_is_armed_only_when_its_stream_allows_it() {
        let c = Channel::<Script>::new(8);
        let mut r = c.subscribe();
        let taken = direct(&mut r, &[]);
        assert!(r
            .poll_recv(&mut Context::from_waker(Waker::noop()))
            .is_pending());
        c.send(frame(1));
        assert!(
            taken.lock().unwrap().is_empty(),
            "a stream that has not allowed it is written by its task"
        );
        assert!(wait(&mut r).is_ready());
    }

    #[test]
    fn a_declined_frame_is_read_the_usual_way_and_so_is_what_follows() {
        let c = Channel::<Script>::new(8);
        let mut r = c.subscribe();
        let taken = direct(&mut r, &["take", "decline"]);
        assert!(wait(&mut r).is_pending());
        c.send(frame(1));
        c.send(frame(2)); // declined: the receiver is woken and reads it
        c.send(frame(3)); // not offered: no longer armed
        assert_eq!(*taken.lock().unwrap(), [1]);
        assert_eq!(seq(wait(&mut r).ready()), 2);
        assert_eq!(r.disarm(), None);
        assert_eq!(r.direct_mut().unwrap().position(), 1);
        assert_eq!(
            seq(r.poll_recv(&mut Context::from_waker(Waker::noop())).ready()),
            3
        );
        assert_eq!(queued(&c), 0);
    }

    #[test]
    fn a_partly_written_frame_leaves_its_rest_for_the_stream() {
        let c = Channel::<Script>::new(8);
        let mut r = c.subscribe();
        let taken = direct(&mut r, &["partial"]);
        assert!(wait(&mut r).is_pending());
        c.send(frame(1));
        assert_eq!(queued(&c), 0, "taken (in part) by its only receiver");
        assert!(
            wait(&mut r).is_pending(),
            "nothing to read, and not armed again"
        );
        assert!(r.has_rest());
        c.send(frame(2));
        assert_eq!(*taken.lock().unwrap(), [1], "not armed while a rest waits");
        assert_eq!(r.disarm(), Some(Bytes::from_static(b"rest")));
        assert_eq!(seq(wait(&mut r).ready()), 2);
    }

    #[test]
    fn a_crowded_channel_writes_through_tasks() {
        let c = Channel::<Script>::new(8);
        let mut r = c.subscribe();
        let taken = direct(&mut r, &[]);
        assert!(wait(&mut r).is_pending());
        let others: Vec<_> = (0..DIRECT_MAX).map(|_| c.subscribe()).collect();
        c.send(frame(1));
        assert!(taken.lock().unwrap().is_empty());
        assert_eq!(seq(wait(&mut r).ready()), 1);
        assert!(wait(&mut r).is_pending(), "not armed among so many");
        drop(others);
        c.send(frame(2));
        assert!(taken.lock().unwrap().is_empty());
        assert_eq!(seq(wait(&mut r).ready()), 2);
        assert!(wait(&mut r).is_pending());
        c.send(frame(3));
        assert_eq!(*taken.lock().unwrap(), [3], "armed again once few");
    }

    #[test]
    fn close_and_drop_end_the_direct_phase_cleanly() {
        let c = Channel::<Script>::new(8);
        let mut r = c.subscribe();
        let mut gone = c.subscribe();
        direct(&mut r, &[]);
        direct(&mut gone, &[]);
        assert!(wait(&mut r).is_pending());
        assert!(wait(&mut gone).is_pending());
        drop(gone);
        assert_eq!(c.lock().armed, 1);
        c.send(frame(1));
        assert_eq!(queued(&c), 0);
        c.close();
        assert!(matches!(wait(&mut r), Poll::Ready(None)));
        assert_eq!(c.lock().armed, 0);
    }
}
