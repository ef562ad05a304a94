//! Server-Sent Events as the system tests read them: whole frames only, so a frame cut off
//! by a killed server is never seen (and a resuming reader's last id is a whole frame's).

use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

/// One frame with an `event:` line (`retry:` hints and comments are skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl Frame {
    /// A `message` frame's JSON, `None` for any other event.
    pub fn message(&self) -> Option<Value> {
        (self.event == "message").then(|| serde_json::from_str(&self.data).unwrap())
    }

    fn parse(raw: &str) -> Option<Self> {
        let mut frame = Frame {
            id: None,
            event: String::new(),
            data: String::new(),
        };
        for line in raw.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                frame.id = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("event: ") {
                frame.event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                frame.data = v.to_owned();
            }
        }
        (!frame.event.is_empty()).then_some(frame)
    }
}

/// An open SSE response, read frame by frame.
pub struct SseStream {
    res: reqwest::Response,
    buf: String,
}

impl SseStream {
    pub fn new(res: reqwest::Response) -> Self {
        Self {
            res,
            buf: String::new(),
        }
    }

    /// The next frame; `None` once the stream has ended or broken. Callers that must not
    /// wait for ever wrap it in a timeout.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                if let Some(frame) = Frame::parse(&raw) {
                    return Some(frame);
                }
            }
            match self.res.chunk().await {
                Ok(Some(chunk)) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }
}

/// What a subscriber that reconnects across server restarts and node failures has read.
#[derive(Debug, Default)]
pub struct Received {
    /// (seq, message id) of every durable message, in arrival order.
    pub frames: Vec<(i64, String)>,
    /// Ephemeral messages' ids.
    pub ephemeral: Vec<String>,
    /// Each (re)connection: to which port, when.
    pub connections: Vec<(u16, Instant)>,
    /// The last whole frame's id, to resume after.
    pub last_id: Option<String>,
}

/// One connection of a following subscriber: subscribes to `topic` of app `demo` on `port`,
/// resuming after what `got` read last, and reads until the stream ends (a refused or failed
/// connection returns at once). `ready` fires at the first `position` frame.
pub async fn follow_once(
    client: &reqwest::Client,
    port: u16,
    topic: &str,
    got: &Mutex<Received>,
    ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
) {
    let mut req = client
        .get(format!("http://127.0.0.1:{port}/realtime/topics/{topic}"))
        .header("host", "demo.localhost");
    let last_id = got.lock().unwrap().last_id.clone();
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    let Ok(res) = req.send().await else { return };
    if res.status() != 200 {
        return;
    }
    got.lock().unwrap().connections.push((port, Instant::now()));
    let mut stream = SseStream::new(res);
    while let Some(frame) = stream.next().await {
        if frame.event == "position" {
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
        }
        let mut g = got.lock().unwrap();
        if let Some(id) = &frame.id {
            g.last_id = Some(id.clone());
        }
        if let Some(v) = frame.message() {
            let mid = v["message"]["id"].as_str().unwrap_or_default().to_owned();
            match v["seq"].as_i64() {
                Some(seq) => g.frames.push((seq, mid)),
                None => g.ephemeral.push(mid),
            }
        }
    }
}
