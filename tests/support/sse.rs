//! Server-Sent Events as the system tests read them: whole frames only, so a frame cut off
//! by a killed server is never seen (and a resuming reader's last id is a whole frame's).

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
