//! Hand-served HTTP/1.1 keep-alive connections for the admin API's POSTs (publishes).
//!
//! A publisher keeps one connection and sends small POSTs one after another. Hyper's
//! per-request machinery (dispatcher, buffered I/O, the `Incoming` body channel, head
//! encoding) was ~11k of a one-message publish's ~37.5k instructions (callgrind,
//! docs/benchmarks.md). This loop reads each request whole (its head, then exactly
//! Content-Length bytes; framing in [`super::http1`]) and writes each answer in one write.
//! The service may answer a request from the parsed head's offsets without a request being
//! built (`HttpService::call_parsed`: a plain one-message publish); any other goes through
//! the service as a request.
//!
//! It takes only [`PUBLISH_REQUESTS`] that `http1` parses exactly. The first request it
//! does not take goes to hyper with every byte read so far replayed, and hyper serves the
//! rest of the connection: hyper stays the one place that answers unusual HTTP.

use std::future::Future;
use std::pin::Pin;

use axum::body::Body;
use axum::http::Response;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Duration;
use tower::ServiceExt;

use super::handler::Handler;
use super::http1::{self, Head, Parsed, REQUEST_TIMEOUT};
use super::limits::Limits;
use crate::router::PUBLISH_REQUESTS;
use crate::service::{HttpService, ParsedRequest, Reply};

/// Read at least this much room at a time.
const READ_CHUNK: usize = 4096;

/// The idle limit between requests, at no cost per request: one timer for the connection,
/// armed for `limit` and re-armed only when it fires after requests came in meanwhile. So
/// a connection silent for `limit` is closed within `2 × limit`, and a busy one never
/// touches the timer wheel (resetting a timer per request would).
struct Idle {
    limit: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// Requests served so far, and as many when the timer was last armed.
    served: u64,
    armed_at: u64,
}

impl Idle {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            served: 0,
            armed_at: 0,
        }
    }

    /// Completes once the connection has been silent for a whole period.
    async fn elapsed(&mut self) {
        loop {
            self.timer.as_mut().await;
            if self.served == self.armed_at {
                return;
            }
            self.armed_at = self.served;
            let next = tokio::time::Instant::now() + self.limit;
            self.timer.as_mut().reset(next);
        }
    }
}

/// Serves requests from `stream` (`buf` holds bytes already read) until the client closes,
/// the server stops, or a request goes to hyper.
pub(super) async fn serve(
    mut stream: TcpStream,
    mut buf: BytesMut,
    service: impl Handler,
    native: Option<HttpService>,
    limits: Limits,
    stop: watch::Receiver<bool>,
) {
    // One wait for the stop signal for the connection's life, polled beside each idle
    // read: a fresh `changed()` per request registered and removed a waiter every time.
    let mut watch = stop.clone();
    let stopped = async move {
        let _ = watch.changed().await;
    };
    let mut stopped = std::pin::pin!(stopped);
    let mut idle = Idle::new(limits.idle);
    loop {
        let next = next_request(&mut stream, &mut buf, limits, stopped.as_mut(), &mut idle).await;
        let (bytes, head) = match next {
            Next::Request(bytes, head) => {
                idle.served += 1;
                (bytes, head)
            }
            Next::Hyper(prefix) => return to_hyper(stream, prefix, service, stop, limits).await,
            Next::Closed => return,
            Next::Idle => {
                let _ = stream.shutdown().await;
                return;
            }
            Next::TimedOut => {
                // A request not whole in time (slowloris): the answer every path gives.
                let _ = stream.write_all(REQUEST_TIMEOUT).await;
                let _ = stream.shutdown().await;
                return;
            }
        };
        // The service may answer from the bytes; else the request is built and called.
        let parsed = native
            .as_ref()
            .and_then(|n| n.call_parsed(parsed(&head, &bytes)));
        let reply = match parsed {
            Some(reply) => reply.await,
            None => {
                let Some(req) = head.request(&bytes) else {
                    // A header value `http` refuses: hyper answers it (and the rest).
                    let mut prefix = BytesMut::with_capacity(bytes.len() + buf.len());
                    prefix.extend_from_slice(&bytes);
                    prefix.extend_from_slice(&buf);
                    return to_hyper(stream, prefix.freeze(), service, stop, limits).await;
                };
                let res: Response<Body> = match service.clone().oneshot(req).await {
                    Ok(res) => res,
                    Err(never) => match never {},
                };
                Reply::Full(res)
            }
        };
        // A stopping server answers what it has, then closes (hyper's graceful shutdown).
        let close = head.close || *stop.borrow();
        let written = match reply {
            Reply::Json { status, secs, body } => {
                http1::write_json(&mut stream, status, secs, &body, close).await
            }
            Reply::Full(res) => http1::write_response(&mut stream, res, close).await,
        };
        if written.is_err() || close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// What [`HttpService::call_parsed`] reads of the request over `bytes`.
fn parsed<'a>(head: &'a Head, bytes: &'a [u8]) -> ParsedRequest<'a> {
    let target = head.target(bytes);
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    ParsedRequest {
        path,
        query,
        // A second Host leaves none, so the request takes the service path, which
        // refuses it.
        host: head.sole(bytes, b"host"),
        authorization: head.first(bytes, b"authorization"),
        body: &bytes[head.len..],
    }
}

/// Hands the connection to hyper for the rest of its life, with `prefix` (read already)
/// replayed first. Boxed: hyper's state would otherwise sit in every connection's task.
async fn to_hyper(
    stream: TcpStream,
    prefix: Bytes,
    service: impl Handler,
    stop: watch::Receiver<bool>,
    limits: Limits,
) {
    Box::pin(super::hyper_conn::serve(
        stream, prefix, service, stop, limits,
    ))
    .await
}

// Moved once per request, on the stack; boxing the request would allocate per request.
#[allow(clippy::large_enum_variant)]
enum Next {
    /// A request to serve: its bytes (head then body) and its parsed head.
    Request(Bytes, Head),
    /// Hyper's from here: the bytes read and not yet served.
    Hyper(Bytes),
    Closed,
    TimedOut,
    /// Silent between requests for the idle limit.
    Idle,
}

async fn next_request(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    limits: Limits,
    stopped: Pin<&mut impl Future<Output = ()>>,
    idle: &mut Idle,
) -> Next {
    if buf.is_empty() {
        // Idle between requests: no request deadline, but an idle limit, and a stopping
        // server closes.
        buf.reserve(READ_CHUNK);
        tokio::select! {
            biased;
            read = stream.read_buf(buf) => match read {
                Ok(0) | Err(_) => return Next::Closed,
                Ok(_) => {}
            },
            () = stopped => return Next::Closed,
            () = idle.elapsed() => return Next::Idle,
        }
    }
    // Usually the whole request came in that one read: no timer then.
    if let Some(next) = take_request(buf, limits.body) {
        return next;
    }
    // From its first byte, a request has the service's deadline to arrive whole.
    let rest = async {
        loop {
            buf.reserve(READ_CHUNK);
            match stream.read_buf(buf).await {
                Ok(0) | Err(_) => return Next::Closed,
                Ok(_) => {}
            }
            if let Some(next) = take_request(buf, limits.body) {
                return next;
            }
        }
    };
    tokio::time::timeout(limits.request, rest)
        .await
        .unwrap_or(Next::TimedOut)
}

/// The next request if `buf` holds all of it (or it is hyper's); `None`: read more. The
/// loop takes the requests the accept loop gave it for, [`PUBLISH_REQUESTS`].
fn take_request(buf: &mut BytesMut, body_limit: usize) -> Option<Next> {
    if !http1::starts_like(buf, PUBLISH_REQUESTS) {
        return Some(Next::Hyper(std::mem::take(buf).freeze()));
    }
    let head = match http1::parse(buf, body_limit) {
        Parsed::Partial => return None,
        Parsed::Hyper => return Some(Next::Hyper(std::mem::take(buf).freeze())),
        Parsed::Complete(head) => head,
    };
    if buf.len() < head.len + head.body_len {
        return None;
    }
    let bytes = buf.split_to(head.len + head.body_len).freeze();
    Some(Next::Request(bytes, head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_taken_only_when_whole() {
        let one = "POST /api/v1/apps/a/publish HTTP/1.1\r\ncontent-length: 5\r\n\r\n";
        let mut buf = BytesMut::from(format!("{one}[1,").as_bytes());
        assert!(take_request(&mut buf, 1024).is_none());
        buf.extend_from_slice(b"2]POST /api");
        let Some(Next::Request(bytes, head)) = take_request(&mut buf, 1024) else {
            panic!("whole now");
        };
        assert!(!head.close);
        let req = head.request(&bytes).unwrap();
        assert_eq!(req.uri().path(), "/api/v1/apps/a/publish");
        let native = parsed(&head, &bytes);
        assert_eq!(
            (native.path, native.query, native.body),
            ("/api/v1/apps/a/publish", None, &b"[1,2]"[..])
        );
        assert_eq!(&buf[..], b"POST /api", "the pipelined next request stays");
        let mut other = BytesMut::from(&b"GET /api/v1/apps HTTP/1.1\r\n\r\n"[..]);
        assert!(matches!(
            take_request(&mut other, 1024),
            Some(Next::Hyper(_))
        ));
    }
}
