//! HTTP/1.1 framing for the hand-served readers (the lean stream path and the keep-alive
//! loop): a request head parsed into offsets, the request built from it, and answers
//! written. Each reader takes only what this module parses exactly; everything else —
//! other versions, bodies without a length, `Transfer-Encoding`, `Expect`, `Upgrade`,
//! heads it cannot parse — is hyper's, so hyper stays the one owner of unusual HTTP.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::future::Future as _;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use axum::body::{Body, HttpBody as _};
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use axum::http::{response, Version};
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// The longest head a hand reader takes; hyper is held to the same (it answers `431`).
pub(super) const MAX_HEAD: usize = 16 * 1024;
/// Headers a request may have and still be taken by a hand reader (more go to hyper):
/// kept inline, so that parsing a request allocates nothing for them.
const LEAN_HEADERS: usize = 32;
/// The answer to a client too slow to send its request, on every path.
pub(super) const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n\
content-type: application/json\r\ncontent-length: 83\r\n\r\n\
{\"error\":{\"code\":\"request_timeout\",\"message\":\"the request did not arrive in time\"}}";

/// Whether `buf` is `prefix` so far (all of it, or as much as `buf` holds).
pub(super) fn starts_like(buf: &[u8], prefix: &[u8]) -> bool {
    let n = buf.len().min(prefix.len());
    buf[..n] == prefix[..n]
}

// The head's offsets are inline on purpose (no allocation per request); it is moved once.
#[allow(clippy::large_enum_variant)]
pub(super) enum Parsed {
    /// Read more.
    Partial,
    /// Not for a hand reader: hyper's.
    Hyper,
    Complete(Head),
}

/// A parsed head, as offsets into the request's bytes (the buffer is split off and frozen
/// before the request is built, so its parts are shared rather than copied).
pub(super) struct Head {
    method: Method,
    /// The head's length; the body follows.
    pub len: usize,
    pub body_len: usize,
    /// The client asked to close after this request.
    pub close: bool,
    target: Range<usize>,
    /// Each header's name and value as `[name start, name end, value start, value end]`
    /// (a head is at most [`MAX_HEAD`], 16 KiB: `u16` holds any offset), the first `count`.
    headers: [[u16; 4]; LEAN_HEADERS],
    count: usize,
}

/// Parses an HTTP/1.1 `GET` (no body) or `POST` (one Content-Length, at most
/// `body_limit`) head at the start of `buf`.
pub(super) fn parse(buf: &[u8], body_limit: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; LEAN_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Parsed::Partial,
        // Too long, too many headers, or malformed: hyper answers it.
        _ => return Parsed::Hyper,
    };
    let method = match req.method {
        Some("GET") => Method::GET,
        Some("POST") => Method::POST,
        _ => return Parsed::Hyper,
    };
    if req.version != Some(1) {
        return Parsed::Hyper;
    }
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - buf.as_ptr() as usize;
        start..start + s.len()
    };
    let Some(target) = req.path.map(|p| at(p.as_bytes())) else {
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
        } else if hypers(name) {
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
    let body_len = match (&method, body_len) {
        (&Method::GET, None) => 0,
        // A POST with no length (hyper reads none) or over the limit (hyper streams it to
        // the 413), or a GET with a body: rare.
        (&Method::POST, Some(n)) if n <= body_limit => n,
        _ => return Parsed::Hyper,
    };
    Parsed::Complete(Head {
        method,
        len,
        body_len,
        close,
        target,
        headers: offsets,
        count,
    })
}

/// Header fields whose meaning only hyper implements.
fn hypers(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"transfer-encoding")
        || name.eq_ignore_ascii_case(b"expect")
        || name.eq_ignore_ascii_case(b"upgrade")
}

impl Head {
    /// The request target, over the request's `bytes`.
    pub(super) fn target<'a>(&self, bytes: &'a [u8]) -> &'a str {
        std::str::from_utf8(&bytes[self.target.clone()]).unwrap_or_default()
    }

    /// The fields' names and values, over the request's `bytes`.
    fn fields<'a>(&'a self, bytes: &'a [u8]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        self.headers[..self.count].iter().map(move |&o| {
            let [ns, ne, vs, ve] = o.map(usize::from);
            (&bytes[ns..ne], &bytes[vs..ve])
        })
    }

    /// The first value of field `name`, as `HeaderMap::get` finds it.
    pub(super) fn first<'a>(&'a self, bytes: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        self.fields(bytes)
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of field `name` when the head has exactly one.
    pub(super) fn sole<'a>(&'a self, bytes: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        let mut found = self
            .fields(bytes)
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let (_, value) = found.next()?;
        found.next().is_none().then_some(value)
    }

    /// The request over `bytes` (head and body), or `None` if `http` refuses a part.
    pub(super) fn request(&self, bytes: &Bytes) -> Option<Request<Body>> {
        let uri = Uri::from_maybe_shared(bytes.slice(self.target.clone())).ok()?;
        // Set in place rather than through `Request::builder`, whose every step moves the
        // whole request head.
        let body = match self.body_len {
            0 => Body::empty(),
            _ => Body::from(bytes.slice(self.len..self.len + self.body_len)),
        };
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
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
pub(super) fn put_head(out: &mut BytesMut, parts: &response::Parts) {
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

/// Writes a JSON answer as [`write_response`] writes the same answer built as a response
/// (`content-type: application/json`, the body given), without building one. `secs`: the
/// answer's time, for its `date` (a clock reading the caller already has).
pub(super) async fn write_json<W: AsyncWrite + Unpin>(
    stream: &mut W,
    status: StatusCode,
    secs: i64,
    json: &[u8],
    close: bool,
) -> io::Result<()> {
    let mut out = BytesMut::with_capacity(256 + json.len());
    put_status_line(&mut out, status);
    out.put_slice(b"content-type: application/json\r\n");
    put_date_at(&mut out, secs);
    if close {
        out.put_slice(b"connection: close\r\n");
    }
    out.put_slice(b"content-length: ");
    out.put_slice(itoa::Buffer::new().format(json.len()).as_bytes());
    out.put_slice(b"\r\n\r\n");
    out.put_slice(json);
    stream.write_all(&out).await
}

/// Writes `res` with its length (or chunked, for a body of unknown length), in one write
/// when its body is already whole.
pub(super) async fn write_response<W: AsyncWrite + Unpin>(
    stream: &mut W,
    res: Response<Body>,
    close: bool,
) -> io::Result<()> {
    let (parts, mut body) = res.into_parts();
    let status = parts.status;
    let mut out = BytesMut::with_capacity(512);
    put_head(&mut out, &parts);
    put_date_at(&mut out, chrono::Utc::now().timestamp());
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

/// `date: <IMF-fixdate>\r\n` for `secs` (Unix seconds), formatted once a second per thread.
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

/// `write_all` for a shared socket. Poll-based readiness (not `writable()`'s future) keeps
/// this state small: it is part of every subscriber's task. With `stall`, a client that
/// takes none of it for that long has stopped reading: `TimedOut`. Its timer is made (and
/// boxed) only once the socket is full, so a write that goes out at once never has one.
pub(super) async fn write_all(
    stream: &TcpStream,
    mut buf: &[u8],
    stall: Option<Duration>,
) -> io::Result<()> {
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    std::future::poll_fn(|cx| {
        while !buf.is_empty() {
            match stream.try_write(buf) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    buf = &buf[n..];
                    if let (Some(t), Some(after)) = (timer.as_mut(), stall) {
                        t.as_mut().reset(tokio::time::Instant::now() + after);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Poll::Ready(ready) = stream.poll_write_ready(cx) {
                        ready?;
                        continue;
                    }
                    let Some(after) = stall else {
                        return Poll::Pending;
                    };
                    let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
                    return match t.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
                        Poll::Pending => Poll::Pending,
                    };
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_408_is_well_framed() {
        let text = std::str::from_utf8(REQUEST_TIMEOUT).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "request_timeout");
    }

    #[tokio::test]
    async fn a_json_answer_is_written_as_its_response_would_be() {
        for (status, close) in [(StatusCode::ACCEPTED, false), (StatusCode::CREATED, true)] {
            let json = br#"{"topic":"chat","seq":4}"#;
            let secs = chrono::Utc::now().timestamp();
            let (mut lean, mut full) = (Vec::new(), Vec::new());
            write_json(&mut lean, status, secs, json, close)
                .await
                .unwrap();
            let mut res = Response::new(Body::from(&json[..]));
            *res.status_mut() = status;
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            write_response(&mut full, res, close).await.unwrap();
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
            assert_eq!(lean.contains("connection: close\r\n"), close);
        }
    }

    fn parsed(raw: &str) -> Parsed {
        parse(raw.as_bytes(), 1024)
    }

    #[test]
    fn takes_plain_heads_only() {
        let ok = "POST /api/v1/apps/a/topics/t/publish HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}";
        match parsed(ok) {
            Parsed::Complete(h) => {
                assert_eq!(h.body_len, 2);
                assert!(!h.close);
                assert_eq!(h.target(ok.as_bytes()), "/api/v1/apps/a/topics/t/publish");
                assert_eq!(h.first(ok.as_bytes(), b"HOST"), Some(&b"x"[..]));
            }
            _ => panic!("a plain publish is taken"),
        }
        let get = "GET /realtime/topics/t HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n";
        match parsed(get) {
            Parsed::Complete(h) => {
                assert_eq!((h.method.clone(), h.body_len), (Method::GET, 0));
                assert_eq!(h.first(get.as_bytes(), b"host"), Some(&b"a"[..]));
                assert_eq!(h.sole(get.as_bytes(), b"host"), None, "two Hosts");
            }
            _ => panic!("a plain GET is taken"),
        }
        let close = "POST /api/v1/apps/a/publish HTTP/1.1\r\nConnection: keep-alive, Close\r\ncontent-length: 0\r\n\r\n";
        assert!(matches!(parsed(close), Parsed::Complete(h) if h.close));
        assert!(matches!(parsed("POST /api/v1/ap"), Parsed::Partial));
        assert!(matches!(
            parsed("POST /api/v1/apps/a HTTP/1.1\r\nhost"),
            Parsed::Partial
        ));
        for hyper in [
            "PUT /api/v1/apps HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
            "GET /realtime/topics/t HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
            "GET /realtime/topics/t HTTP/1.1\r\nupgrade: websocket\r\n\r\n",
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
}
