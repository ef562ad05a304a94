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

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_util::Stream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::frame::MessageFrame;

pub struct Channel {
    state: Mutex<State>,
    capacity: usize,
}

struct State {
    /// Frames some receiver has yet to read, oldest first, each with how many have yet to
    /// read it. `head` is the position of the first.
    queue: VecDeque<(Arc<MessageFrame>, usize)>,
    head: u64,
    receivers: usize,
    /// Receivers waiting for the next frame, woken (and cleared) by each send. A receiver
    /// registers once per `epoch` (see [`Receiver::waiting`]); one dropped while waiting
    /// leaves a no-op waker (so its task is not kept alive) whose place `free` lends to
    /// the next to register, so subscribers coming and going on a quiet topic cannot grow
    /// the list.
    waiting: Vec<Waker>,
    free: Vec<usize>,
    epoch: u64,
    closed: bool,
}

impl State {
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
    fn wake_all(mut st: MutexGuard<'_, State>) {
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
}

/// Waiters woken under the lock (see [`State::wake_all`]).
const FEW_WAITERS: usize = 8;

impl Channel {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                head: 0,
                receivers: 0,
                waiting: Vec::new(),
                free: Vec::new(),
                epoch: 0,
                closed: false,
            }),
            capacity: capacity.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing that can panic runs under the lock; a poisoned one is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver of every frame sent from now on.
    pub fn subscribe(self: &Arc<Self>) -> Receiver {
        let mut st = self.lock();
        st.receivers += 1;
        let next = st.tail();
        drop(st);
        Receiver {
            channel: self.clone(),
            next,
            waiting: None,
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
        let unread = st.receivers;
        st.queue.push_back((frame, unread));
        if st.queue.len() > self.capacity {
            // The slowest receivers lose the oldest frame; they learn it as `Lagged`.
            st.queue.pop_front();
            st.head += 1;
        }
        State::wake_all(st);
    }

    /// Ends every receiver's stream once it has read what is queued for it.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        State::wake_all(st);
    }
}

/// One subscriber's read position in a [`Channel`].
pub struct Receiver {
    channel: Arc<Channel>,
    /// The position of the next frame to read.
    next: u64,
    /// The epoch and index of this receiver's entry in `waiting`, if it has one.
    waiting: Option<(u64, usize)>,
}

impl Receiver {
    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Arc<MessageFrame>, BroadcastStreamRecvError>>> {
        let mut st = self.channel.lock();
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
        let epoch = st.epoch;
        match self.waiting {
            Some((e, i)) if e == epoch => {
                if !st.waiting[i].will_wake(cx.waker()) {
                    st.waiting[i] = cx.waker().clone();
                }
            }
            _ => {
                let waker = cx.waker().clone();
                let at = match st.free.pop() {
                    Some(at) => {
                        st.waiting[at] = waker;
                        at
                    }
                    None => {
                        st.waiting.push(waker);
                        st.waiting.len() - 1
                    }
                };
                self.waiting = Some((epoch, at));
            }
        }
        Poll::Pending
    }
}

impl Stream for Receiver {
    type Item = Result<Arc<MessageFrame>, BroadcastStreamRecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut st = self.channel.lock();
        st.receivers -= 1;
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
        })))
    }

    fn seq(item: Option<Result<Arc<MessageFrame>, BroadcastStreamRecvError>>) -> i64 {
        item.unwrap().unwrap().message.seq.unwrap()
    }

    fn queued(c: &Channel) -> usize {
        c.lock().queue.len()
    }

    #[tokio::test]
    async fn every_receiver_reads_every_frame_and_read_frames_are_dropped() {
        let c = Channel::new(8);
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
        let c = Channel::new(3);
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
        let c = Channel::new(4);
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
        let c = Channel::new(4);
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
}
