//! Reading HTTP answers off a raw socket, so tests see the bytes on the wire.

use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// One response read off the wire.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    /// Lower-cased `name: value` lines.
    pub headers: Vec<String>,
    pub body: String,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find_map(|h| h.strip_prefix(&format!("{name}: ")))
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

/// Reads `n` responses (each with a Content-Length, or chunked) from `conn`.
pub(crate) async fn read_answers(conn: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Vec<Answer> {
    let mut answers = Vec::new();
    while answers.len() < n {
        let Some(head_end) = find(buf, b"\r\n\r\n") else {
            read_more(conn, buf).await;
            continue;
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next().unwrap()[9..12].parse().unwrap();
        let headers: Vec<String> = lines.map(|l| l.to_ascii_lowercase()).collect();
        let start = head_end + 4;
        let answer = |body: String| Answer {
            status,
            headers: headers.clone(),
            body,
        };
        if status == 100 {
            buf.drain(..start);
            answers.push(answer(String::new()));
            continue;
        }
        if status == 204 || status == 304 {
            buf.drain(..start);
            answers.push(answer(String::new()));
            continue;
        }
        if headers.iter().any(|h| h == "transfer-encoding: chunked") {
            let Some(end) = find(&buf[start..], b"0\r\n\r\n") else {
                read_more(conn, buf).await;
                continue;
            };
            let raw = String::from_utf8(buf[start..start + end].to_vec()).unwrap();
            buf.drain(..start + end + 5);
            answers.push(answer(dechunk(&raw)));
            continue;
        }
        let length: usize = headers
            .iter()
            .find_map(|h| h.strip_prefix("content-length: "))
            .expect("a length")
            .parse()
            .unwrap();
        if buf.len() < start + length {
            read_more(conn, buf).await;
            continue;
        }
        let body = String::from_utf8(buf[start..start + length].to_vec()).unwrap();
        buf.drain(..start + length);
        answers.push(answer(body));
    }
    answers
}

pub(crate) fn dechunk(mut raw: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = raw.split_once("\r\n") {
        let size = usize::from_str_radix(size, 16).unwrap();
        out.push_str(&rest[..size]);
        raw = &rest[size + 2..];
    }
    out
}

pub(crate) async fn read_more(conn: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    assert!(
        n > 0,
        "closed early; so far: {}",
        String::from_utf8_lossy(buf)
    );
    buf.extend_from_slice(&chunk[..n]);
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether the server closes `conn` within 5 s (reading anything else first).
pub(crate) async fn closes(conn: &mut TcpStream) -> bool {
    let mut sink = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut sink))
        .await
        .is_ok()
}
