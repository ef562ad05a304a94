//! The accept loop, with a lean path for SSE streams.
//!
//! An idle SSE subscriber is the thing PiCloud holds most of, and hyper keeps about 24 KiB of
//! buffers per HTTP/1 connection (an 8 KiB head buffer that grows to 16 KiB when the request
//! still references it, and an 8 KiB write buffer) for as long as the connection lives.
//! So each new connection's first request head is read here: a plain `GET /realtime…` with no
//! body is parsed (httparse), run through the same service as everything else, and its
//! response is written straight to the socket, close-delimited (`Connection: close`, no
//! chunked framing): no buffer outlives the head, and ready frames go out in one write.
//! A connection whose first request is an admin API `POST` (a publisher's, typically) is
//! served by [`keep_alive`]'s hand-written HTTP/1.1 loop, which hands it to hyper at the
//! first request it does not take. Anything else — other paths, HTTP/2, HTTP/1.0, a head we
//! cannot parse — is handed to hyper untouched, with the bytes already read replayed first.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, Version};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use picloud_realtime::sse::DirectSocket;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::service::HttpService;

#[cfg(test)]
mod differential;
mod hyper_conn;
mod keep_alive;

/// What a connection runs its requests through: [`HttpService`] in production; any
/// router in this module's tests.
trait Handler:
    tower::Service<
        Request<Body>,
        Response = Response<Body>,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> Handler for S where
    S: tower::Service<
            Request<Body>,
            Response = Response<Body>,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// The requests the lean path takes: every realtime stream.
const STREAM_PREFIX: &[u8] = b"GET /realtime";
/// A longer head goes to hyper (which answers 431).
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// The answer to a client too slow to send its request, on every path.
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n\
content-type: application/json\r\ncontent-length: 83\r\n\r\n\
{\"error\":{\"code\":\"request_timeout\",\"message\":\"the request did not arrive in time\"}}";

/// The limits every connection keeps, whichever path serves it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    /// From a request's first byte until its head (the keep-alive loop: the whole request)
    /// is in; then `408` and close.
    pub head: Duration,
    /// Silence with no request in flight after which a connection is closed.
    pub idle: Duration,
}

/// Serves `service` on `listener` until `shutdown` completes, then stops accepting, asks
/// open connections to finish (SSE streams end on the realtime shutdown signal) and waits
/// for them.
pub async fn serve(
    listener: TcpListener,
    service: HttpService,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    let upkeep = crate::metrics::spawn_upkeep();
    let limits = keep_alive::Limits {
        body: service.body_limit(),
        request_time: service.request_timeout(),
        idle: service.keep_alive_idle(),
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(service.max_connections()));
    let refused = metrics::counter!(CONNECTIONS_REFUSED);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Over the limit: accepted and closed at once, so the client learns now rather
        // than after a connect timeout, and nothing of it is held.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused.increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (service, stop, done) = (service.clone(), stop_rx.clone(), done_rx.clone());
        tokio::spawn(async move {
            let native = Some(service.clone());
            connection(stream, service, native, stop, limits).await;
            drop((slot, done));
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
    upkeep.abort();
    Ok(())
}

/// Connections accepted and closed at once because [`ApiConfig::max_connections`] were
/// open.
///
/// [`ApiConfig::max_connections`]: crate::ApiConfig::max_connections
pub const CONNECTIONS_REFUSED: &str = "picloud_connections_refused_total";

/// `native`: the service's own publish path for the keep-alive loop (`None` in tests that
/// run a plain router).
async fn connection(
    mut stream: TcpStream,
    service: impl Handler,
    native: Option<HttpService>,
    stop: watch::Receiver<bool>,
    limits: keep_alive::Limits,
) {
    let policy = limits.policy();
    let head = match tokio::time::timeout(policy.head, read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(_)) => return, // closed or failed before a request
        Err(_) => {
            let _ = stream.write_all(REQUEST_TIMEOUT).await;
            return;
        }
    };
    match head {
        Head::Stream(req) => stream_response(stream, service, *req).await,
        // Boxed for the same reason.
        Head::KeepAlive(buf) => {
            Box::pin(keep_alive::serve(
                stream, buf, service, native, limits, stop,
            ))
            .await
        }
        // Boxed: hyper's state would otherwise double every connection's task, streams too.
        Head::Other(prefix) => {
            Box::pin(hyper_conn::serve(stream, prefix, service, stop, policy)).await
        }
    }
}

enum Head {
    /// A realtime `GET`, parsed.
    Stream(Box<Request<Body>>),
    /// An admin API `POST` (its first bytes, at least) for [`keep_alive`].
    KeepAlive(BytesMut),
    /// Anything else, with the bytes read so far.
    Other(Bytes),
}

/// Reads until the request can be classified: as soon as the bytes match neither
/// [`STREAM_PREFIX`] nor [`keep_alive::PREFIX`], once the latter is whole, or once a
/// stream's whole head is in.
async fn read_head(stream: &mut TcpStream) -> io::Result<Head> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if starts_like(&buf, keep_alive::PREFIX) {
            if buf.len() >= keep_alive::PREFIX.len() {
                return Ok(Head::KeepAlive(buf));
            }
            continue;
        }
        if !starts_like(&buf, STREAM_PREFIX) || buf.len() > MAX_HEAD {
            return Ok(Head::Other(buf.freeze()));
        }
        if buf.len() < STREAM_PREFIX.len() {
            continue;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(len)) if len == buf.len() => {
                return Ok(match to_request(&parsed) {
                    Some(req) => Head::Stream(Box::new(req)),
                    None => Head::Other(buf.freeze()),
                })
            }
            // Pipelined bytes after the head, or a head httparse rejects: hyper's job.
            _ => return Ok(Head::Other(buf.freeze())),
        }
    }
}

/// Whether `buf` is `prefix` so far (all of it, or as much as `buf` holds).
fn starts_like(buf: &[u8], prefix: &[u8]) -> bool {
    let n = buf.len().min(prefix.len());
    buf[..n] == prefix[..n]
}

/// The request for the service, or `None` when hyper should take it (HTTP/1.0, a body, a
/// connection upgrade, anything unusual).
fn to_request(parsed: &httparse::Request<'_, '_>) -> Option<Request<Body>> {
    if parsed.version != Some(1) || parsed.method != Some("GET") {
        return None;
    }
    let uri: Uri = parsed.path?.parse().ok()?;
    let mut req = Request::builder()
        .method("GET")
        .uri(uri)
        .version(Version::HTTP_11);
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::UPGRADE
            || name == header::EXPECT
        {
            return None;
        }
        req = req.header(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    req.body(Body::empty()).ok()
}

/// Runs the request and writes the response itself. A stream goes out close-delimited;
/// anything else (an error answer) with its length. Either way the connection then closes.
/// The stream's live frames may also be written by publishing tasks
/// ([`DirectSocket`]), so the socket is shared and written through `&TcpStream`.
async fn stream_response(stream: TcpStream, service: impl Handler, mut req: Request<Body>) {
    let stream = Arc::new(stream);
    req.extensions_mut().insert(DirectSocket(stream.clone()));
    let res: Response<Body> = match service.oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    // Built outside this async fn: its locals would otherwise keep their space in every
    // subscriber's task for the stream's whole life.
    let (mut out, body, streaming) = head_of(res);
    if streaming {
        out.extend_from_slice(b"\r\n");
        let head = write_all(&stream, &out).await;
        drop(out);
        if head.is_ok() {
            pump(&stream, body).await;
        }
    } else {
        // An error answer: rare, so its state is boxed.
        Box::pin(answer(&stream, out, body)).await;
    }
    // The body (and with it any direct writer's handle) is gone: the socket is ours again.
    if let Ok(mut stream) = Arc::try_unwrap(stream) {
        let _ = stream.shutdown().await;
    }
}

/// The response's head so far (status, headers, `connection: close`), its body, and
/// whether it is an event stream.
fn head_of(res: Response<Body>) -> (BytesMut, Body, bool) {
    let streaming = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let (parts, body) = res.into_parts();
    let mut out = BytesMut::with_capacity(512);
    put_head(&mut out, &parts);
    out.extend_from_slice(b"connection: close\r\n");
    (out, body, streaming)
}

/// Writes a whole (non-streaming) answer: `head` so far, then its length and body.
async fn answer(stream: &TcpStream, mut head: BytesMut, body: Body) {
    let Ok(collected) = body.collect().await else {
        return;
    };
    let bytes = collected.to_bytes();
    head.extend_from_slice(format!("content-length: {}\r\n\r\n", bytes.len()).as_bytes());
    head.extend_from_slice(&bytes);
    let _ = write_all(stream, &head).await;
}

/// `write_all` for a shared socket. Poll-based readiness (not `writable()`'s future) keeps
/// this state small: it is part of every subscriber's task.
async fn write_all(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    std::future::poll_fn(|cx| {
        while !buf.is_empty() {
            match stream.try_write(buf) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::task::ready!(stream.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    })
    .await
}

/// `HTTP/1.1 <code> <reason>\r\n`.
fn put_status_line(out: &mut BytesMut, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A response's status line and headers, less those the writer sets itself (framing,
/// connection, date); the caller ends the head.
fn put_head(out: &mut BytesMut, parts: &axum::http::response::Parts) {
    put_status_line(out, parts.status);
    for (name, value) in &parts.headers {
        if name == header::CONNECTION
            || name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::DATE
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Copies the body's frames to the socket until either ends. Waits for the socket to take
/// each write before pulling more (backpressure: nothing queues here), and notices a client
/// that hangs up while idle. Frames that are ready together come as one (the stream
/// gathers them), so each is one write.
async fn pump(stream: &TcpStream, mut body: Body) {
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = hang_up(stream) => return,
        };
        let Some(Ok(frame)) = frame else { return };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if write_all(stream, &data).await.is_err() {
            return;
        }
    }
}

/// Completes when the client closes its end (or the socket fails); anything it sends is
/// read and ignored.
async fn hang_up(stream: &TcpStream) {
    let mut probe = [0u8; 64];
    std::future::poll_fn(|cx| loop {
        match stream.try_read(&mut probe) {
            Ok(0) => return Poll::Ready(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if std::task::ready!(stream.poll_read_ready(cx)).is_err() {
                    return Poll::Ready(());
                }
            }
            Err(_) => return Poll::Ready(()),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_408_is_well_framed() {
        let text = std::str::from_utf8(super::REQUEST_TIMEOUT).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "request_timeout");
    }

    /// Every connection's task holds this future for its whole life, so its size is part of
    /// each idle subscriber's memory: hyper's connection state (~2 KiB) is boxed, paid only
    /// by connections that go to hyper.
    #[tokio::test]
    async fn a_streams_task_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let limits = super::keep_alive::Limits {
            body: 1024,
            request_time: std::time::Duration::from_secs(1),
            idle: std::time::Duration::from_secs(1),
        };
        let task = super::connection(socket, axum::Router::new(), None, stop, limits);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1280, "connection future is {size} bytes");
    }
}
