//! Connections hyper serves, under the limits the hand-served paths keep themselves.
//!
//! hyper's own header-read timeout needs a timer and then also ends idle keep-alive
//! connections on the same clock, and it closes without an answer. So the connection is
//! watched from outside instead: the socket wrapper notes when a request's first byte
//! arrives, the service wrapper when hyper has a whole head (the request reaches the
//! service) and when its answer is done (the response body ends or is dropped). From those:
//! - a request head not whole within the head timeout of its first byte is answered `408`
//!   and the connection closed, as the keep-alive loop does (HTTP/2: the connection is
//!   closed); a body that stops arriving is the service's to answer (its deadline gives the
//!   same `408`, see `service.rs`);
//! - a connection with no request in flight for the idle limit is closed;
//! - a request in flight (an SSE stream among them) is never cut by either.
//!
//! Heads are capped at [`MAX_HEAD`] bytes (hyper answers `431`), as on the lean paths.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use bytes::{Buf, Bytes};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::handler::Handler;
use super::http1::{starts_like, write_all, MAX_HEAD, REQUEST_TIMEOUT};
use super::limits::Limits;

/// The HTTP/2 connection preface: such a connection gets no `408` (it is not HTTP/1 text).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";
/// No request byte seen since the connection went quiet.
const NONE: u64 = u64::MAX;

/// What the watchdog reads: shared by the socket wrapper, the service wrapper and the
/// connection's task. Times are milliseconds since `epoch`.
struct Activity {
    epoch: Instant,
    /// Requests whose answer is not done (HTTP/2: streams).
    in_flight: AtomicUsize,
    /// When the last request in flight finished (or the connection opened).
    quiet_since: AtomicU64,
    /// When the first byte of the next request arrived, or [`NONE`].
    first_byte: AtomicU64,
}

impl Activity {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn read_some(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.first_byte.compare_exchange(
                NONE,
                self.now(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.first_byte.store(NONE, Ordering::Release);
        InFlight(self.clone())
    }
}

/// One request in flight; dropped when its answer is done.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.quiet_since.store(self.0.now(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds its request's [`InFlight`] until it ends.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

pub(super) async fn serve(
    stream: TcpStream,
    prefix: Bytes,
    service: impl Handler,
    mut stop: watch::Receiver<bool>,
    limits: Limits,
) {
    let h2 = !prefix.is_empty() && starts_like(&prefix, H2_PREFACE);
    let activity = Arc::new(Activity {
        epoch: Instant::now(),
        in_flight: AtomicUsize::new(0),
        quiet_since: AtomicU64::new(0),
        first_byte: AtomicU64::new(if prefix.is_empty() { NONE } else { 0 }),
    });
    let remote = stream.peer_addr().ok().map(ConnectInfo);
    let socket = Arc::new(stream);
    let io = TokioIo::new(Replay {
        prefix,
        inner: socket.clone(),
        activity: activity.clone(),
    });
    let watched = activity.clone();
    let service = TowerToHyperService::new(service);
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let in_flight = watched.request_started();
        let mut req = req.map(Body::new);
        if let Some(remote) = remote {
            req.extensions_mut().insert(remote);
        }
        let call = hyper::service::Service::call(&service, req);
        async move {
            let res: Response<Body> = call.await?;
            Ok::<_, std::convert::Infallible>(res.map(|body| {
                Body::new(Tracked {
                    body,
                    _in_flight: in_flight,
                })
            }))
        }
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().max_buf_size(MAX_HEAD);
    builder.http2().max_header_list_size(MAX_HEAD as u32);
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let check = (limits.request.min(limits.idle) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut tick = tokio::time::interval(check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                    return;
                }
            }
            _ = tick.tick() => match overdue(&activity, limits) {
                None => {}
                Some(Overdue::Head) => {
                    if !h2 {
                        let _ = write_all(&socket, REQUEST_TIMEOUT, Some(Duration::from_secs(1))).await;
                    }
                    return;
                }
                Some(Overdue::Idle) => return,
            }
        }
    }
}

enum Overdue {
    /// A request began arriving and its head is still not whole after the head timeout.
    Head,
    /// Nothing in flight and nothing arriving for the idle limit.
    Idle,
}

fn overdue(a: &Activity, limits: Limits) -> Option<Overdue> {
    if a.in_flight.load(Ordering::Acquire) > 0 {
        return None;
    }
    let now = a.now();
    let since =
        |at: &AtomicU64| Duration::from_millis(now.saturating_sub(at.load(Ordering::Acquire)));
    if a.first_byte.load(Ordering::Acquire) != NONE {
        return (since(&a.first_byte) >= limits.request).then_some(Overdue::Head);
    }
    (since(&a.quiet_since) >= limits.idle).then_some(Overdue::Idle)
}

/// The socket, shared with the watchdog (which may write the `408`), whose first reads
/// return bytes already taken from it, and whose reads are noted in the [`Activity`].
struct Replay {
    prefix: Bytes,
    inner: Arc<TcpStream>,
    activity: Arc<Activity>,
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        loop {
            std::task::ready!(self.inner.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match self.inner.try_read(unfilled) {
                Ok(n) => {
                    buf.advance(n);
                    if n > 0 {
                        self.activity.read_some();
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.inner.poll_write_ready(cx))?;
            match self.inner.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.inner.poll_write_ready(cx))?;
            match self.inner.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The socket closes when the connection ends and drops it (the watchdog's handle goes
    /// with it): nothing more to do here.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
