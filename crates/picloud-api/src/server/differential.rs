//! Differential fuzzing of the hand-written HTTP/1 readers against hyper (proptest): every
//! generated request goes once through the accept path (which gives it to the lean stream
//! reader, the keep-alive loop or hyper, as production does) and once straight to hyper,
//! over real sockets, to a router that echoes the request it sees. The two must agree on
//! the status and, when the request was taken, on the request itself. `PROPTEST_CASES`
//! raises the count for a longer run (docs/fuzzing.md).

use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::http1::REQUEST_TIMEOUT;
use super::limits::Limits;
use super::{connection, hyper_conn};

/// Echoes what the service was handed: method, target, version, headers, body. A body
/// not in within the request time gets the `408` the real service's deadline gives (the
/// hand paths read a body before the service; hyper streams it into the service).
async fn echo(req: Request) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let Ok(body) = tokio::time::timeout(LIMITS.request, body.collect()).await else {
        let text = std::str::from_utf8(REQUEST_TIMEOUT).expect("ASCII");
        let (_, json) = text.split_once("\r\n\r\n").expect("a head and a body");
        return (
            axum::http::StatusCode::REQUEST_TIMEOUT,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response();
    };
    let body = body.map(|b| b.to_bytes()).unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    axum::Json(serde_json::json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
    .into_response()
}

const LIMITS: Limits = Limits {
    body: 64,
    request: Duration::from_millis(200),
    idle: Duration::from_millis(200),
};

/// The first answer's status and body, as the client reads them.
async fn exchange(input: Vec<u8>, hyper_only: bool) -> (u16, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let _ = c.write_all(&input).await;
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(2), c.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => {
                    got.extend_from_slice(&chunk[..n]);
                    if first_answer(&got).is_some() {
                        break;
                    }
                }
                _ => break,
            }
        }
        got
    });
    let (socket, _) = listener.accept().await.unwrap();
    let router = Router::new().fallback(echo);
    let (_stop_tx, stop) = watch::channel(false);
    let server = async move {
        if hyper_only {
            hyper_conn::serve(socket, Bytes::new(), router, stop, LIMITS).await
        } else {
            connection(socket, router, None, stop, LIMITS).await
        }
    };
    let server = tokio::spawn(tokio::time::timeout(Duration::from_secs(3), server));
    let got = client.await.unwrap();
    server.abort();
    first_answer(&got).unwrap_or((0, String::from_utf8_lossy(&got).into_owned()))
}

/// Parses the first whole response in `bytes`: (status, body).
fn first_answer(bytes: &[u8]) -> Option<(u16, String)> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let rest = &bytes[end + 4..];
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|l| l.trim().parse::<usize>().ok());
    let body = match length {
        Some(n) if rest.len() >= n => &rest[..n],
        Some(_) => return None,
        None if lower.contains("transfer-encoding: chunked") => {
            let text = std::str::from_utf8(rest).ok()?;
            let end = text.find("\r\n0\r\n\r\n")?;
            let mut out = String::new();
            let mut chunks = &text[..end + 2];
            while let Some((size, after)) = chunks.split_once("\r\n") {
                let size = usize::from_str_radix(size, 16).ok()?;
                out.push_str(after.get(..size)?);
                chunks = after.get(size + 2..)?;
            }
            return Some((status, out));
        }
        None => &rest[..0],
    };
    Some((status, String::from_utf8_lossy(body).into_owned()))
}

/// `PROPTEST_CASES` when set (a longer run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn request() -> impl Strategy<Value = Vec<u8>> {
    let method =
        prop_oneof![4 => Just("GET"), 4 => Just("POST"), 1 => Just("PUT"), 1 => Just("get")];
    let target = prop_oneof![
        3 => Just("/realtime/topics/t"),
        2 => Just("/realtime?topic=a&topic=b"),
        2 => Just("/realtime/topics/t?last_event_id=3"),
        4 => Just("/api/v1/apps/a/topics/t/publish"),
        2 => Just("/api/v1/apps/a/publish?ephemeral=true"),
        2 => Just("/other"),
        1 => Just("/realtime/%2e%2e/x"),
        1 => Just("/api/v1/apps/a b"),
        1 => Just("http://h/realtime/topics/t"),
        1 => Just("*"),
    ];
    let version = prop_oneof![
        16 => Just("HTTP/1.1"),
        1 => Just("HTTP/1.0"),
        1 => Just("HTTP/1.2"),
        1 => Just("HTTP/2.0")
    ];
    let name = prop_oneof![
        2 => Just("host"),
        3 => Just("content-length"),
        1 => Just("Content-Length"),
        2 => Just("transfer-encoding"),
        1 => Just("expect"),
        1 => Just("upgrade"),
        2 => Just("connection"),
        3 => Just("x-a"),
        1 => Just("x a"),
        1 => Just("x\u{7f}"),
        1 => Just(""),
        6 => Just("x-b"),
    ];
    let value = prop_oneof![
        3 => Just("localhost"),
        2 => Just("0"),
        3 => Just("3"),
        1 => Just("+3"),
        1 => Just(" 3 "),
        1 => Just("3, 3"),
        2 => Just("chunked"),
        1 => Just("100-continue"),
        2 => Just("close"),
        1 => Just("keep-alive"),
        1 => Just("a\u{1}b"),
        1 => Just("é"),
        1 => Just(""),
        6 => Just("v"),
    ];
    let header = (name, prop_oneof![8 => Just(":"), 1 => Just(" :")], value);
    let eol = prop_oneof![12 => Just("\r\n"), 1 => Just("\n")];
    // Whether the head also says the body's true length, as most real requests do.
    let exact_length = prop_oneof![2 => Just(false), 3 => Just(true)];
    (
        method,
        target,
        version,
        proptest::collection::vec(header, 0..4),
        eol,
        "[a-z0-9\r\n]{0,8}",
        exact_length,
    )
        .prop_map(|(m, t, v, headers, eol, body, exact)| {
            let mut out = format!("{m} {t} {v}{eol}host: localhost{eol}");
            for (n, sep, val) in headers {
                out.push_str(&format!("{n}{sep} {val}{eol}"));
            }
            if exact {
                out.push_str(&format!("content-length: {}{eol}", body.len()));
            }
            out.push_str(eol);
            out.push_str(&body);
            out.into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(192)))]

    #[test]
    fn the_hand_readers_and_hyper_agree(input in request()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (ours, hypers) = rt.block_on(async {
            (exchange(input.clone(), false).await, exchange(input.clone(), true).await)
        });
        prop_assert_eq!(&ours, &hypers, "{:?}", String::from_utf8_lossy(&input));
    }
}
