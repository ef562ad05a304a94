//! The accept loop: accept (within [`ApiConfig::max_connections`]), read the first request
//! far enough to classify it, and hand the connection to the reader that serves it:
//! - a plain realtime `GET` ([`STREAM_REQUESTS`]) → [`event_stream`], which writes the
//!   stream straight to the socket: hyper keeps about 24 KiB of buffers per HTTP/1
//!   connection for its whole life, and an idle subscriber is what PiCloud holds most of;
//! - an admin API `POST` ([`PUBLISH_REQUESTS`], a publisher's) → [`keep_alive`]'s
//!   hand-written HTTP/1.1 loop, which hands the connection to hyper at the first request
//!   it does not take;
//! - anything else (other requests, HTTP/2, HTTP/1.0, a head [`http1`] does not take) →
//!   [`hyper_conn`], with the bytes already read replayed first.
//!
//! Every path keeps the same [`Limits`] and answers through the same service.
//!
//! [`ApiConfig::max_connections`]: crate::ApiConfig::max_connections

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::router::{PUBLISH_REQUESTS, STREAM_REQUESTS};
use crate::service::HttpService;
use handler::Handler;
use http1::{Parsed, REQUEST_TIMEOUT};
use limits::Limits;

#[cfg(test)]
mod differential;
mod event_stream;
mod handler;
mod http1;
mod hyper_conn;
mod keep_alive;
mod limits;

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
    let limits = Limits {
        body: service.body_limit(),
        request: service.request_timeout(),
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

/// `native`: the service's own path for requests answered from their bytes (`None` in
/// tests that run a plain router).
async fn connection(
    mut stream: TcpStream,
    service: impl Handler,
    native: Option<HttpService>,
    stop: watch::Receiver<bool>,
    limits: Limits,
) {
    let first = match tokio::time::timeout(limits.request, read_first(&mut stream)).await {
        Ok(Ok(first)) => first,
        Ok(Err(_)) => return, // closed or failed before a request
        Err(_) => {
            let _ = stream.write_all(REQUEST_TIMEOUT).await;
            return;
        }
    };
    match first {
        First::Stream(req) => event_stream::serve(stream, service, *req).await,
        // Boxed for the same reason.
        First::KeepAlive(buf) => {
            Box::pin(keep_alive::serve(
                stream, buf, service, native, limits, stop,
            ))
            .await
        }
        // Boxed: hyper's state would otherwise double every connection's task, streams too.
        First::Other(prefix) => {
            Box::pin(hyper_conn::serve(stream, prefix, service, stop, limits)).await
        }
    }
}

/// A connection's first request, as far as it was read to classify it.
enum First {
    /// A realtime `GET`, parsed.
    Stream(Box<Request<Body>>),
    /// An admin API `POST` (its first bytes, at least) for [`keep_alive`].
    KeepAlive(BytesMut),
    /// Anything else, with the bytes read so far.
    Other(Bytes),
}

/// Reads until the request can be classified: as soon as the bytes match neither
/// [`STREAM_REQUESTS`] nor [`PUBLISH_REQUESTS`], once the latter is whole, or once a
/// stream's whole head is in.
async fn read_first(stream: &mut TcpStream) -> io::Result<First> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if http1::starts_like(&buf, PUBLISH_REQUESTS) {
            if buf.len() >= PUBLISH_REQUESTS.len() {
                return Ok(First::KeepAlive(buf));
            }
            continue;
        }
        if !http1::starts_like(&buf, STREAM_REQUESTS) {
            return Ok(First::Other(buf.freeze()));
        }
        if buf.len() < STREAM_REQUESTS.len() {
            continue;
        }
        match http1::parse(&buf, 0) {
            Parsed::Partial => continue,
            // A whole GET, nothing pipelined after it.
            Parsed::Complete(head) if head.len == buf.len() => {
                let bytes = buf.freeze();
                return Ok(match head.request(&bytes) {
                    Some(req) => First::Stream(Box::new(req)),
                    None => First::Other(bytes),
                });
            }
            _ => return Ok(First::Other(buf.freeze())),
        }
    }
}

#[cfg(test)]
mod tests {
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
        let limits = super::Limits {
            body: 1024,
            request: std::time::Duration::from_secs(1),
            idle: std::time::Duration::from_secs(1),
        };
        let task = super::connection(socket, axum::Router::new(), None, stop, limits);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1280, "connection future is {size} bytes");
    }
}
