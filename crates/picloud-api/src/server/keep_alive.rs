//! Hand-served HTTP/1.1 keep-alive connections for the admin API's POSTs (publishes).
//!
//! A publisher keeps one connection and sends small POSTs one after another. Hyper's
//! per-request machinery (dispatcher, buffered I/O, the `Incoming` body channel, head
//! encoding) was ~11k of a one-message publish's ~37.5k instructions (callgrind,
//! docs/benchmarks.md). This loop reads each request whole (its head, then exactly
//! Content-Length bytes), runs it through the same service as every other request, and
//! writes the answer in one write. A plain one-message publish on an admin Host in normal
//! form (nearly all of them) skips building the `http::Request` too: the service answers
//! it from the parsed head's offsets (`HttpService::native_publish`), which was ~10 % of
//! S4's server time (request and header map building, the boxed service future, dispatch).
//!
//! It takes only what it can serve exactly: HTTP/1.1 `POST`s under `/api/v1/apps/` with one
//! Content-Length within the body limit and no Transfer-Encoding, Expect or Upgrade. The
//! first request it does not take (a GET, a chunked or oversized body, HTTP/1.0, a head
//! httparse rejects…) goes to hyper with every byte read so far replayed, and hyper serves
//! the rest of the connection: hyper stays the one place that answers unusual HTTP.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;

use axum::body::{Body, HttpBody as _};
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, Uri, Version};
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Duration;
use tower::ServiceExt;

use super::{hyper_conn, Handler, Policy, MAX_HEAD, MAX_HEADERS, REQUEST_TIMEOUT};
use crate::routes::publish::Published;
use crate::service::{HttpService, NativeCall, NativePublish};

/// The requests this loop takes start with these bytes.
pub(super) const PREFIX: &[u8] = b"POST /api/v1/apps/";
/// Read at least this much room at a time.
const READ_CHUNK: usize = 4096;

/// What the loop enforces itself, as the service would: hyper streams a body into the
/// handler, under the service's deadline; here the body is read first.
#[derive(Clone, Copy)]
pub(super) struct Limits {
    /// Larger bodies go to hyper (and the router's 413).
    pub body: usize,
    /// From a request's first byte until it is whole.
    pub request_time: Duration,
    /// Silence between requests after which the connection is closed (see [`Idle`]).
    pub idle: Duration,
}

impl Limits {
    /// The same limits, for a connection handed to hyper.
    pub(super) fn policy(&self) -> Policy {
        Policy {
            head: self.request_time,
            idle: self.idle,
        }
    }
}

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
        let (bytes, head, client_closes) = match next {
            Next::Request(bytes, head, close) => {
                idle.served += 1;
                (bytes, head, close)
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
        // A one-message publish is answered from the bytes; anything else as a request.
        let native = native
            .as_ref()
            .and_then(|n| n.native_publish(head.native(&bytes)));
        let res = match native {
            Some(NativeCall::Ready(Ok(published))) => Answer::Published(published),
            Some(NativeCall::Ready(Err(res))) => Answer::Full(res),
            Some(NativeCall::Pending(answer)) => Answer::Full(answer.await),
            None => Answer::Full({
                let Some(req) = head.request(&bytes) else {
                    // A header value `http` refuses: hyper answers it (and the rest).
                    let mut prefix = BytesMut::with_capacity(bytes.len() + buf.len());
                    prefix.extend_from_slice(&bytes);
                    prefix.extend_from_slice(&buf);
                    return to_hyper(stream, prefix.freeze(), service, stop, limits).await;
                };
                match service.clone().oneshot(req).await {
                    Ok(res) => res,
                    Err(never) => match never {},
                }
            }),
        };
        // A stopping server answers what it has, then closes (hyper's graceful shutdown).
        let close = client_closes || *stop.borrow();
        let written = match res {
            Answer::Published(published) => write_published(&mut stream, published, close).await,
            Answer::Full(res) => write_response(&mut stream, res, close).await,
        };
        if written.is_err() || close {
            let _ = stream.shutdown().await;
            return;
        }
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
    Box::pin(hyper_conn::serve(
        stream,
        prefix,
        service,
        stop,
        limits.policy(),
    ))
    .await
}

/// An answer to write: a publish's, written straight from its parts, or any response.
enum Answer {
    Published(Published),
    Full(Response<Body>),
}

// Moved once per request, on the stack; boxing the request would allocate per request.
#[allow(clippy::large_enum_variant)]
enum Next {
    /// A request to serve (its bytes, head then body, and its parsed head), and whether
    /// the client asked to close after it.
    Request(Bytes, Head, bool),
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
    tokio::time::timeout(limits.request_time, rest)
        .await
        .unwrap_or(Next::TimedOut)
}

/// The next request if `buf` holds all of it (or it is hyper's); `None`: read more.
fn take_request(buf: &mut BytesMut, body_limit: usize) -> Option<Next> {
    let head = match parse(buf, body_limit) {
        Parsed::Partial => return None,
        Parsed::Hyper => return Some(Next::Hyper(std::mem::take(buf).freeze())),
        Parsed::Complete(head) => head,
    };
    if buf.len() < head.len + head.body_len {
        return None;
    }
    let bytes = buf.split_to(head.len + head.body_len).freeze();
    let close = head.close;
    Some(Next::Request(bytes, head, close))
}

// The head's offsets are inline on purpose (no allocation per request); it is moved once.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Partial,
    Hyper,
    Complete(Head),
}

/// A parsed head, as offsets into the request's bytes (the buffer is split off and frozen
/// before the request is built, so its parts are shared rather than copied).
struct Head {
    len: usize,
    body_len: usize,
    close: bool,
    path: Range<usize>,
    /// Each header's name and value as `[name start, name end, value start, value end]`
    /// (a head is at most `MAX_HEAD`, 16 KiB: `u16` holds any offset), the first `count`.
    headers: [[u16; 4]; LEAN_HEADERS],
    count: usize,
}

/// Headers a request may have and still be taken here (more go to hyper): kept inline,
/// so that parsing a request allocates nothing for them.
const LEAN_HEADERS: usize = 32;

fn parse(buf: &[u8], body_limit: usize) -> Parsed {
    if !super::starts_like(buf, PREFIX) {
        return Parsed::Hyper;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Parsed::Partial,
        _ => return Parsed::Hyper, // too long, or malformed: hyper answers it
    };
    if req.version != Some(1) || req.method != Some("POST") || req.headers.len() > LEAN_HEADERS {
        return Parsed::Hyper;
    }
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - buf.as_ptr() as usize;
        start..start + s.len()
    };
    let Some(path) = req.path.map(|p| at(p.as_bytes())) else {
        return Parsed::Hyper;
    };
    let (mut body_len, mut close, mut count) = (None, false, 0);
    let mut offsets = [[0u16; 4]; LEAN_HEADERS];
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            // Digits only: `parse` would also take a sign.
            let parsed = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok());
            match (body_len, parsed) {
                (None, Some(n)) => body_len = Some(n),
                _ => return Parsed::Hyper, // repeated or not a number
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            return Parsed::Hyper;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::Hyper;
                }
            }
        }
        let (n, v) = (at(name), at(h.value));
        offsets[count] = [n.start, n.end, v.start, v.end].map(|o| o as u16);
        count += 1;
    }
    // No length (hyper reads none) or over the limit (hyper streams it to the 413): rare.
    match body_len {
        Some(body_len) if body_len <= body_limit => Parsed::Complete(Head {
            len,
            body_len,
            close,
            path,
            headers: offsets,
            count,
        }),
        _ => Parsed::Hyper,
    }
}

impl Head {
    /// What [`HttpService::native_publish`] reads of the request over `bytes`.
    fn native<'a>(&self, bytes: &'a [u8]) -> NativePublish<'a> {
        let target = std::str::from_utf8(&bytes[self.path.clone()]).unwrap_or_default();
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        // The first of each, as `HeaderMap::get` would find it; a second Host leaves none,
        // so the request takes the service path, which refuses it.
        let (mut host, mut hosts, mut authorization) = (None, 0, None);
        for &[ns, ne, vs, ve] in &self.headers[..self.count] {
            let name = &bytes[usize::from(ns)..usize::from(ne)];
            let value = &bytes[usize::from(vs)..usize::from(ve)];
            if name.eq_ignore_ascii_case(b"host") {
                hosts += 1;
                host = host.or(Some(value));
            } else if authorization.is_none() && name.eq_ignore_ascii_case(b"authorization") {
                authorization = Some(value);
            }
        }
        let host = host.filter(|_| hosts == 1);
        NativePublish {
            path,
            query,
            host,
            authorization,
            body: &bytes[self.len..],
        }
    }

    /// The request over `bytes` (head and body), or `None` if `http` refuses a part.
    fn request(&self, bytes: &Bytes) -> Option<Request<Body>> {
        let uri = Uri::from_maybe_shared(bytes.slice(self.path.clone())).ok()?;
        // Set in place rather than through `Request::builder`, whose every step moves the
        // whole request head.
        let mut req = Request::new(Body::from(bytes.slice(self.len..)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        headers.reserve(self.count);
        for &offsets in &self.headers[..self.count] {
            let [ns, ne, vs, ve] = offsets.map(usize::from);
            let name = HeaderName::from_bytes(&bytes[ns..ne]).ok()?;
            let value = HeaderValue::from_maybe_shared(bytes.slice(vs..ve)).ok()?;
            headers.append(name, value);
        }
        Some(req)
    }
}

/// Writes a publish's answer as [`write_response`] writes `published.into_response()`, the
/// same bytes, without building the response (its header map and body).
async fn write_published<W: AsyncWrite + Unpin>(
    stream: &mut W,
    published: Published,
    close: bool,
) -> io::Result<()> {
    let mut json = Vec::with_capacity(128);
    if !published.write_json(&mut json) {
        return write_response(stream, published.into_response(), close).await;
    }
    let mut out = BytesMut::with_capacity(256 + json.len());
    super::put_status_line(&mut out, published.status);
    out.put_slice(b"content-type: application/json\r\n");
    put_date_at(&mut out, published.unix_secs());
    if close {
        out.put_slice(b"connection: close\r\n");
    }
    out.put_slice(b"content-length: ");
    out.put_slice(itoa::Buffer::new().format(json.len()).as_bytes());
    out.put_slice(b"\r\n\r\n");
    out.put_slice(&json);
    stream.write_all(&out).await
}

/// Writes `res` with its length (or chunked, for a body of unknown length), in one write
/// when its body is already whole.
async fn write_response<W: AsyncWrite + Unpin>(
    stream: &mut W,
    res: Response<Body>,
    close: bool,
) -> io::Result<()> {
    let (parts, mut body) = res.into_parts();
    let status = parts.status;
    let mut out = BytesMut::with_capacity(512);
    super::put_head(&mut out, &parts);
    put_date(&mut out);
    if close {
        out.put_slice(b"connection: close\r\n");
    }
    if status.is_informational() || status == 204 || status == 304 {
        out.put_slice(b"\r\n");
        return stream.write_all(&out).await;
    }
    if let Some(length) = body.size_hint().exact() {
        // Its frames straight into the answer (no `collect`: one frame, usually).
        out.put_slice(b"content-length: ");
        out.put_slice(itoa::Buffer::new().format(length).as_bytes());
        out.put_slice(b"\r\n\r\n");
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| io::Error::other(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                out.put_slice(&data);
            }
        }
        return stream.write_all(&out).await;
    }
    out.put_slice(b"transfer-encoding: chunked\r\n\r\n");
    stream.write_all(&out).await?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| io::Error::other(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let mut chunk = BytesMut::with_capacity(data.len() + 16);
        let _ = write!(chunk, "{:x}\r\n", data.len());
        chunk.put_slice(&data);
        chunk.put_slice(b"\r\n");
        stream.write_all(&chunk).await?;
    }
    stream.write_all(b"0\r\n\r\n").await
}

/// `date: <IMF-fixdate>\r\n`, formatted once a second per thread.
fn put_date(out: &mut BytesMut) {
    put_date_at(out, chrono::Utc::now().timestamp());
}

/// [`put_date`] for a time already read (a publish's own clock reading: one fewer per
/// answer), in Unix seconds.
fn put_date_at(out: &mut BytesMut, secs: i64) {
    thread_local! {
        static DATE: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = chrono::DateTime::from_timestamp(secs, 0)
                .unwrap_or_default()
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string();
        }
        out.put_slice(b"date: ");
        out.put_slice(text.as_bytes());
        out.put_slice(b"\r\n");
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[tokio::test]
    async fn a_publish_answer_is_written_as_its_response_would_be() {
        let cases = [
            (StatusCode::ACCEPTED, None, 1_764_000_000_123, false),
            (StatusCode::CREATED, Some(42), 1_764_000_000_000, true),
            // Past 9999: chrono's text, through the response.
            (StatusCode::CREATED, Some(7), 253_402_300_800_000, false),
        ];
        for (status, seq, at, close) in cases {
            let published = || Published::for_test(status, "chat.room-1", seq, at);
            let (mut lean, mut full) = (Vec::new(), Vec::new());
            write_published(&mut lean, published(), close)
                .await
                .unwrap();
            write_response(&mut full, published().into_response(), close)
                .await
                .unwrap();
            let (lean, full) = (
                String::from_utf8(lean).unwrap(),
                String::from_utf8(full).unwrap(),
            );
            // The date may tick between the two writes; each has one.
            let undated = |text: &str| {
                assert_eq!(text.matches("\r\ndate: ").count(), 1, "{text}");
                text.split("\r\n")
                    .filter(|line| !line.starts_with("date: "))
                    .collect::<Vec<_>>()
                    .join("\r\n")
            };
            assert_eq!(undated(&lean), undated(&full));
            assert!(lean.starts_with(&format!("HTTP/1.1 {status}")), "{lean}");
            assert!(lean.contains(r#"{"topic":"chat.room-1""#), "{lean}");
            assert_eq!(lean.contains("connection: close\r\n"), close);
        }
    }

    fn parsed(raw: &str) -> Parsed {
        parse(raw.as_bytes(), 1024)
    }

    #[test]
    fn takes_plain_publishes_only() {
        let ok = "POST /api/v1/apps/a/topics/t/publish HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}";
        match parsed(ok) {
            Parsed::Complete(h) => {
                assert_eq!(h.body_len, 2);
                assert!(!h.close);
                assert_eq!(&ok[h.path.clone()], "/api/v1/apps/a/topics/t/publish");
            }
            _ => panic!("a plain publish is taken"),
        }
        let close = "POST /api/v1/apps/a/publish HTTP/1.1\r\nConnection: keep-alive, Close\r\ncontent-length: 0\r\n\r\n";
        assert!(matches!(parsed(close), Parsed::Complete(h) if h.close));
        assert!(matches!(parsed("POST /api/v1/ap"), Parsed::Partial));
        assert!(matches!(
            parsed("POST /api/v1/apps/a HTTP/1.1\r\nhost"),
            Parsed::Partial
        ));
        for hyper in [
            "GET /api/v1/apps HTTP/1.1\r\n\r\n",
            "POST /api/v1/apps/a/publish HTTP/1.0\r\ncontent-length: 0\r\n\r\n",
            "POST /api/v1/apps/a/publish HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            "POST /api/v1/apps/a/publish HTTP/1.1\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n",
            "POST /api/v1/apps/a/publish HTTP/1.1\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\n",
            "POST /api/v1/apps/a/publish HTTP/1.1\r\ncontent-length: +2\r\n\r\n",
            "POST /api/v1/apps/a/publish HTTP/1.1\r\ncontent-length: 2048\r\n\r\n",
            "POST /api/v1/apps/a/publish HTTP/1.1\r\nhost: x\r\n\r\n",
            "POST /api/v1/apps/a/publish HTTP/1.1\r\nconnection: upgrade\r\ncontent-length: 0\r\n\r\n",
            "POST /api/v1/apps/a/publish HTTP/1.1\r\nbad header\r\n\r\n",
            &format!(
                "POST /api/v1/apps/a/publish HTTP/1.1\r\ncontent-length: 0\r\n{}\r\n",
                "x-many: 1\r\n".repeat(LEAN_HEADERS)
            ),
            &format!(
                "POST /api/v1/apps/a/publish HTTP/1.1\r\ncontent-length: 0\r\nx-long: {}\r\n\r\n",
                "y".repeat(MAX_HEAD)
            ),
        ] {
            assert!(matches!(parsed(hyper), Parsed::Hyper), "{hyper:?} goes to hyper");
        }
    }

    #[test]
    fn a_request_is_taken_only_when_whole() {
        let one = "POST /api/v1/apps/a/publish HTTP/1.1\r\ncontent-length: 5\r\n\r\n";
        let mut buf = BytesMut::from(format!("{one}[1,").as_bytes());
        assert!(take_request(&mut buf, 1024).is_none());
        buf.extend_from_slice(b"2]POST /api");
        let Some(Next::Request(bytes, head, false)) = take_request(&mut buf, 1024) else {
            panic!("whole now");
        };
        let req = head.request(&bytes).unwrap();
        assert_eq!(req.uri().path(), "/api/v1/apps/a/publish");
        let native = head.native(&bytes);
        assert_eq!(
            (native.path, native.query, native.body),
            ("/api/v1/apps/a/publish", None, &b"[1,2]"[..])
        );
        assert_eq!(&buf[..], b"POST /api", "the pipelined next request stays");
    }
}
