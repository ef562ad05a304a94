//! Frames, rendered to bytes once and shared: SSE, and a message's WebSocket frame (on
//! first use: most messages never reach a WebSocket).
//!
//! A durable message's frame is `id: <position>\n` followed by the message body
//! (`event: message\ndata: {...}\n\n`). The body is the same for every subscriber, so it is
//! rendered once per message ([`MessageFrame`]) and only the `id:` line is per stream (a
//! single-topic stream's id is the seq; a multi-topic stream's id carries every position).

use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, SecondsFormat};
use picloud_core::message::{Kind, Message};

/// A message with its frames, rendered once and shared by every subscriber.
#[derive(Debug)]
pub struct MessageFrame {
    pub message: Arc<Message>,
    /// `event: message\ndata: {"topic","seq","message","published_at"}\n\n`
    pub body: Bytes,
    /// The whole frame as a single-topic stream sends it: `id: <seq>\n` + `body` (just
    /// `body` for an ephemeral message). Most subscribers use this one: no per-delivery copy.
    pub single: Bytes,
    ws: OnceLock<Bytes>,
}

impl MessageFrame {
    pub fn new(message: Arc<Message>) -> Self {
        let body = render_body(&message);
        let single = match message.seq {
            Some(seq) => with_id(itoa::Buffer::new().format(seq), &body),
            None => body.clone(),
        };
        Self {
            message,
            body,
            single,
            ws: OnceLock::new(),
        }
    }

    /// The WebSocket text frame: SSE's `data` object with its `type` first, and a durable
    /// message's `position` (its seq, as the topic's resume position) last.
    pub fn ws(&self) -> &Bytes {
        self.ws.get_or_init(|| {
            let (name, data) = sse_parts(&self.body);
            let mut b = BytesMut::with_capacity(data.len() + 48);
            b.put_slice(b"{\"type\":\"");
            b.put_slice(name);
            b.put_slice(b"\",");
            b.put_slice(&data[1..data.len() - 1]);
            if let Some(seq) = self.message.seq {
                b.put_slice(b",\"position\":\"");
                b.put_slice(itoa::Buffer::new().format(seq).as_bytes());
                b.put_u8(b'"');
            }
            b.put_u8(b'}');
            b.freeze()
        })
    }
}

/// The event name and the data of an `event: <name>\ndata: <json>\n\n` body.
fn sse_parts(body: &[u8]) -> (&[u8], &[u8]) {
    let rest = &body[b"event: ".len()..];
    let nl = rest.iter().position(|&c| c == b'\n').unwrap_or(0);
    let data = &rest[nl + 1 + b"data: ".len()..rest.len() - 2];
    (&rest[..nl], data)
}

fn render_body(m: &Message) -> Bytes {
    if m.kind == Kind::Presence {
        // `{"topic":…,` then the event's own fields.
        let mut b = BytesMut::with_capacity(m.payload.len() + m.topic.as_str().len() + 48);
        b.put_slice(b"event: presence\ndata: {\"topic\":\"");
        b.put_slice(m.topic.as_str().as_bytes());
        b.put_slice(b"\",");
        b.put_slice(&m.payload.as_bytes()[1..]);
        b.put_slice(b"\n\n");
        return b.freeze();
    }
    let mut at = [0u8; 24];
    let chrono_text;
    let published_at = match picloud_core::time::write_utc_millis(m.published_at, true, &mut at) {
        Some(text) => text,
        None => {
            chrono_text = DateTime::from_timestamp_millis(m.published_at)
                .unwrap_or_default()
                .to_rfc3339_opts(SecondsFormat::Millis, true);
            &chrono_text
        }
    };
    let mut b = BytesMut::with_capacity(m.payload.len() + m.topic.as_str().len() + 96);
    b.put_slice(b"event: message\ndata: {\"topic\":\"");
    // Topic names cannot contain '"' or '\\' (see TopicName), so no escaping is needed.
    b.put_slice(m.topic.as_str().as_bytes());
    b.put_slice(b"\",\"seq\":");
    match m.seq {
        Some(seq) => b.put_slice(itoa::Buffer::new().format(seq).as_bytes()),
        None => b.put_slice(b"null"),
    }
    b.put_slice(b",\"message\":");
    // Payloads are compact JSON (no raw newlines): normalised at publish.
    b.put_slice(m.payload.as_bytes());
    b.put_slice(b",\"published_at\":\"");
    b.put_slice(published_at.as_bytes());
    b.put_slice(b"\"}\n\n");
    b.freeze()
}

/// `id: <id>\n` + `body`.
pub fn with_id(id: &str, body: &Bytes) -> Bytes {
    let mut b = BytesMut::with_capacity(id.len() + 5 + body.len());
    b.put_slice(b"id: ");
    b.put_slice(id.as_bytes());
    b.put_u8(b'\n');
    b.put_slice(body);
    b.freeze()
}

/// A named event with a JSON data line.
pub fn event(name: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// A stream's last frame: `event: error` with its code.
pub fn error(code: crate::codes::Code) -> Bytes {
    event("error", &serde_json::json!({ "code": code.as_str() }))
}

/// The stream's position before any message: `id:` with an empty `position` event (a frame
/// without `data:` is not dispatched by EventSource parsers, and its id would be lost). A
/// client that drops before the first message resumes from here instead of from "now".
pub fn position(id: &str) -> Bytes {
    with_id(id, &Bytes::from_static(b"event: position\ndata: null\n\n"))
}

/// `retry: <ms>` alone: tells the client how long to wait before reconnecting.
pub fn retry(ms: u64) -> Bytes {
    Bytes::from(format!("retry: {ms}\n\n"))
}

/// A comment frame, ignored by clients; keeps proxies from cutting an idle stream.
pub fn keepalive() -> Bytes {
    Bytes::from_static(b": keepalive\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use picloud_core::ids::AppId;
    use picloud_core::topic::TopicName;

    #[test]
    fn message_frames_follow_the_protocol() {
        let m = Arc::new(Message {
            app_id: AppId("a".into()),
            topic: TopicName::parse("chat").unwrap(),
            seq: Some(7),
            payload: Arc::from(r#"{"text":"hi\nthere"}"#),
            published_at: 1_700_000_000_123,
            kind: Default::default(),
        });
        let f = MessageFrame::new(m);
        let framed = f.single.clone();
        assert_eq!(
            std::str::from_utf8(&framed).unwrap(),
            "id: 7\nevent: message\ndata: {\"topic\":\"chat\",\"seq\":7,\"message\":{\"text\":\"hi\\nthere\"},\"published_at\":\"2023-11-14T22:13:20.123Z\"}\n\n"
        );
        let data = std::str::from_utf8(&f.body)
            .unwrap()
            .split_once("data: ")
            .unwrap()
            .1
            .trim_end();
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["message"]["text"], "hi\nthere");
        assert_eq!(
            std::str::from_utf8(f.ws()).unwrap(),
            r#"{"type":"message","topic":"chat","seq":7,"message":{"text":"hi\nthere"},"published_at":"2023-11-14T22:13:20.123Z","position":"7"}"#
        );
    }

    #[test]
    fn presence_frames_carry_the_topic_and_the_event() {
        let m = Arc::new(Message {
            app_id: AppId("a".into()),
            topic: TopicName::parse("room").unwrap(),
            seq: None,
            payload: Arc::from(r#"{"event":"join","member":{"sub":"ann","data":{"x":1}}}"#),
            published_at: 1,
            kind: Kind::Presence,
        });
        let f = MessageFrame::new(m);
        assert_eq!(
            std::str::from_utf8(&f.single).unwrap(),
            "event: presence\ndata: {\"topic\":\"room\",\"event\":\"join\",\"member\":{\"sub\":\"ann\",\"data\":{\"x\":1}}}\n\n"
        );
        assert_eq!(
            std::str::from_utf8(f.ws()).unwrap(),
            r#"{"type":"presence","topic":"room","event":"join","member":{"sub":"ann","data":{"x":1}}}"#
        );
    }
}
