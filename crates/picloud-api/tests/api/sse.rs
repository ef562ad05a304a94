//! A minimal SSE client for tests: reads the raw byte stream, splits frames on blank lines,
//! and keeps every field, comments and `retry:` included, so tests can assert the exact
//! wire format (a browser's EventSource would hide most of it).

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    /// `None` for a frame with no `event:` line (a comment or `retry:` alone).
    pub event: Option<String>,
    pub data: Option<String>,
    pub retry: Option<u64>,
    pub comment: Option<String>,
}

impl Frame {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.data.as_deref().expect("data")).expect("JSON data")
    }

    pub fn seq(&self) -> i64 {
        self.json()["seq"].as_i64().expect("seq")
    }
}

pub struct Sse {
    pub headers: HeaderMap,
    /// The id of the last `position` frame seen (the stream's position before a message).
    pub position: Option<String>,
    res: reqwest::Response,
    buf: Vec<u8>,
}

impl Sse {
    /// Opens a stream; on a non-200 answer returns the status and JSON body.
    pub async fn open(
        req: reqwest::RequestBuilder,
    ) -> Result<Self, (StatusCode, serde_json::Value)> {
        let res = match req.send().await {
            Ok(res) => res,
            // No server there (yet): the caller may retry.
            Err(e) => {
                return Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({ "connect": e.to_string() }),
                ))
            }
        };
        let status = res.status();
        if status != StatusCode::OK {
            let body = res.json().await.unwrap_or(serde_json::Value::Null);
            return Err((status, body));
        }
        Ok(Self {
            headers: res.headers().clone(),
            position: None,
            res,
            buf: Vec::new(),
        })
    }

    /// The next frame of any kind, or `None` at end of stream or after `wait`.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = find(&self.buf, b"\n\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 2).collect();
                return Some(parse(&String::from_utf8(raw).expect("UTF-8 frame")));
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk())
                .await
                .ok()?;
            match chunk {
                Ok(Some(bytes)) => self.buf.extend_from_slice(&bytes),
                _ => return None,
            }
        }
    }

    /// The next frame that carries an event (skips comments, bare `retry:`, and `position`
    /// frames, whose id it keeps in [`Self::position`]).
    pub async fn next_event(&mut self, wait: Duration) -> Option<Frame> {
        loop {
            let f = self.next_frame(wait).await?;
            match f.event.as_deref() {
                Some("position") => self.position = f.id,
                Some(_) => return Some(f),
                None => {}
            }
        }
    }

    /// Reads up to the `position` frame every stream sends before its first message and
    /// returns its id.
    pub async fn start_position(&mut self, wait: Duration) -> String {
        while self.position.is_none() {
            let f = self.next_frame(wait).await.expect("a position frame");
            if f.event.as_deref() == Some("position") {
                assert_eq!(f.data.as_deref(), Some("null"));
                self.position = f.id;
            } else {
                assert!(f.event.is_none(), "a message before the position: {f:?}");
            }
        }
        self.position.clone().unwrap()
    }

    /// `n` message events, panicking with what arrived if they do not.
    pub async fn messages(&mut self, n: usize) -> Vec<Frame> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.next_event(Duration::from_secs(10)).await {
                Some(f) if f.event.as_deref() == Some("message") => out.push(f),
                Some(f) => panic!("unexpected event {f:?} after {} messages", out.len()),
                None => panic!(
                    "stream ended or stalled after {} of {n} messages",
                    out.len()
                ),
            }
        }
        out
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse(raw: &str) -> Frame {
    let mut f = Frame::default();
    for line in raw.lines() {
        if let Some(c) = line.strip_prefix(':') {
            f.comment = Some(c.trim().to_owned());
            continue;
        }
        let (field, value) = line
            .split_once(':')
            .map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
        match field {
            "id" => f.id = Some(value.to_owned()),
            "event" => f.event = Some(value.to_owned()),
            "data" => {
                assert!(f.data.is_none(), "one data line per frame: {raw:?}");
                f.data = Some(value.to_owned());
            }
            "retry" => f.retry = value.parse().ok(),
            "" => {}
            other => panic!("unknown SSE field {other:?} in {raw:?}"),
        }
    }
    f
}
