//! The direct writer: while a one-topic stream waits with nothing unwritten, its channel
//! (see `channel`) hands each live frame to this writer under the channel's lock, and it
//! writes the frame to the subscriber's socket from the publishing task. It keeps the
//! stream's rules ([`order`]): only the next seq (or an ephemeral frame), nothing once the
//! stream's token needs its attention; anything else is declined and the stream's task
//! takes over.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpStream;

use crate::channel::{Direct, Offer};
use crate::frame::MessageFrame;
use crate::order::{order, Order};
use crate::streams::Positions;
use crate::SendRecorder;

pub(crate) struct SocketWriter {
    /// `_socket`'s descriptor, kept beside the rest of the writer: reading it through the
    /// `TcpStream` was a cache miss of its own on every delivery (perf, S4).
    fd: RawFd,
    /// Keeps `fd` open for as long as this writer lives.
    _socket: Arc<TcpStream>,
    sends: SendRecorder,
    /// The last seq sent.
    pos: i64,
    /// The stream's positions in the node's stream list: `pos` is stored there too (a store
    /// does not wait for its cache line, so a cold list entry costs the send nothing).
    shown: Positions,
    /// From this instant the stream's task must handle everything (its token expires).
    until: Option<Instant>,
}

impl SocketWriter {
    pub(crate) fn new(socket: Arc<TcpStream>, sends: SendRecorder, shown: Positions) -> Self {
        Self {
            fd: socket.as_raw_fd(),
            _socket: socket,
            sends,
            pos: 0,
            shown,
            until: None,
        }
    }
}

impl Direct for SocketWriter {
    fn offer(&mut self, f: &MessageFrame) -> Offer {
        if self.until.is_some_and(|until| Instant::now() >= until) {
            return Offer::Declined;
        }
        let seq = f.message.seq;
        match order(self.pos, seq) {
            Order::Skip => return Offer::Taken,
            Order::Gap => return Offer::Declined, // the stream repairs it
            Order::Send => {}
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
                if let Some(shown) = self.shown.first() {
                    shown.store(seq, std::sync::atomic::Ordering::Relaxed);
                }
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
