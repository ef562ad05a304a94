//! The lean path for a connection whose first request is a realtime stream: the request
//! (parsed by [`super::http1`]) runs through the same service as everything else, and its
//! response is written straight to the socket, close-delimited (`Connection: close`, no
//! chunked framing): no buffer outlives the head, and ready frames go out in one write.
//! The stream's live frames may also be written by publishing tasks ([`DirectSocket`]), so
//! the socket is shared and written through `&TcpStream`.

use std::io;
use std::sync::Arc;
use std::task::Poll;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, Response};
use bytes::BytesMut;
use http_body_util::BodyExt;
use picloud_realtime::sse::{DirectSocket, SendDeadline};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tower::ServiceExt;

use super::handler::Handler;
use super::http1::{put_head, write_all};

/// Runs the request and writes the response itself. A stream goes out close-delimited;
/// anything else (an error answer) with its length. Either way the connection then closes.
pub(super) async fn serve(stream: TcpStream, service: impl Handler, mut req: Request<Body>) {
    let stream = attach(stream, &mut req);
    let res: Response<Body> = match service.oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    // Built outside this async fn: its locals would otherwise keep their space in every
    // subscriber's task for the stream's whole life.
    let (mut out, body, streaming, deadline) = head_of(res);
    if streaming {
        out.extend_from_slice(b"\r\n");
        let head = write_all(&stream, &out, deadline.as_ref().map(|d| d.after)).await;
        drop(out);
        let end = match head {
            Ok(()) => pump(&stream, body, deadline.as_ref()).await,
            Err(e) => e,
        };
        if let (io::ErrorKind::TimedOut, Some(d)) = (end.kind(), deadline) {
            d.missed();
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

/// Puts the socket (for direct writes) and the client's address on the request. Outside
/// the async fn, so that nothing of it takes space in the task.
fn attach(stream: TcpStream, req: &mut Request<Body>) -> Arc<TcpStream> {
    if let Ok(remote) = stream.peer_addr() {
        req.extensions_mut().insert(ConnectInfo(remote));
    }
    let stream = Arc::new(stream);
    req.extensions_mut().insert(DirectSocket(stream.clone()));
    stream
}

/// The response's head so far (status, headers, `connection: close`), its body, whether
/// it is an event stream, and how long its writes may stall.
fn head_of(res: Response<Body>) -> (BytesMut, Body, bool, Option<SendDeadline>) {
    let streaming = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let (mut parts, body) = res.into_parts();
    let deadline = parts.extensions.remove::<SendDeadline>();
    let mut out = BytesMut::with_capacity(512);
    put_head(&mut out, &parts);
    out.extend_from_slice(b"connection: close\r\n");
    (out, body, streaming, deadline)
}

/// Writes a whole (non-streaming) answer: `head` so far, then its length and body.
async fn answer(stream: &TcpStream, mut head: BytesMut, body: Body) {
    let Ok(collected) = body.collect().await else {
        return;
    };
    let bytes = collected.to_bytes();
    head.extend_from_slice(format!("content-length: {}\r\n\r\n", bytes.len()).as_bytes());
    head.extend_from_slice(&bytes);
    let _ = write_all(stream, &head, None).await;
}

/// Copies the body's frames to the socket until either ends; why it ended. Waits for the
/// socket to take each write before pulling more (backpressure: nothing queues here), at
/// most `stall` without progress, and notices a client that hangs up while idle. Frames
/// that are ready together come as one (the stream gathers them), so each is one write.
async fn pump(stream: &TcpStream, mut body: Body, stall: Option<&SendDeadline>) -> io::Error {
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = hang_up(stream) => return io::ErrorKind::ConnectionReset.into(),
        };
        let Some(Ok(frame)) = frame else {
            return io::ErrorKind::UnexpectedEof.into();
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if let Err(e) = write_all(stream, &data, stall.map(|d| d.after)).await {
            return e;
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
