//! Relay frames between nodes: one per topic per committed batch (or per ephemeral
//! publish), on the topic's relay channel. JSON, with each payload inlined as it was
//! stored (already compact JSON). A batch whose payloads together exceed [`INLINE_MAX`]
//! goes as a pointer instead: only its last seq, which the receivers read from PostgreSQL.

use std::sync::Arc;

use picloud_core::ids::AppId;
use picloud_core::message::{Kind, Message};
use picloud_core::topic::TopicName;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Most payload bytes a frame carries inline.
pub const INLINE_MAX: usize = 64 * 1024;

const TOPIC_PREFIX: &str = "picloud:t:";

/// The relay channel of a topic (app ids hold no `:`, so the first one after the prefix
/// ends the app).
pub fn channel(app: &AppId, topic: &TopicName) -> String {
    format!("{TOPIC_PREFIX}{}:{}", app.as_str(), topic.as_str())
}

pub fn is_topic_channel(channel: &str) -> bool {
    channel.starts_with(TOPIC_PREFIX)
}

/// `messages`: one topic's, in seq order (ephemeral: one, without a seq); `own`: the
/// sender's [`prefix`].
pub fn encode(own: &[u8], messages: &[Arc<Message>]) -> Vec<u8> {
    let first = &messages[0];
    let inline: usize = messages.iter().map(|m| m.payload.len()).sum();
    let mut out = Vec::with_capacity(96 + inline.min(INLINE_MAX) + 48 * messages.len());
    out.extend_from_slice(own);
    out.extend_from_slice(b",\"app\":");
    string(&mut out, first.app_id.as_str());
    out.extend_from_slice(b",\"topic\":");
    string(&mut out, first.topic.as_str());
    if inline > INLINE_MAX {
        let end = messages.iter().filter_map(|m| m.seq).max().unwrap_or(0);
        out.extend_from_slice(format!(",\"end\":{end}}}").as_bytes());
        return out;
    }
    out.extend_from_slice(b",\"messages\":[");
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match m.seq {
            Some(seq) => out.extend_from_slice(format!("{{\"seq\":{seq},").as_bytes()),
            None => out.push(b'{'),
        }
        if m.kind == Kind::Presence {
            out.extend_from_slice(b"\"presence\":true,");
        }
        out.extend_from_slice(format!("\"at\":{},\"payload\":", m.published_at).as_bytes());
        out.extend_from_slice(m.payload.as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

fn string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("a string serialises");
}

#[derive(Deserialize)]
struct Frame<'a> {
    app: String,
    topic: String,
    #[serde(default, borrow)]
    messages: Vec<Item<'a>>,
    end: Option<i64>,
}

#[derive(Deserialize)]
struct Item<'a> {
    seq: Option<i64>,
    #[serde(default)]
    presence: bool,
    at: i64,
    #[serde(borrow)]
    payload: &'a RawValue,
}

/// A frame as received.
#[derive(Debug, PartialEq)]
pub struct Decoded {
    pub app: AppId,
    pub topic: TopicName,
    pub messages: Vec<Message>,
    /// A pointer frame's last seq.
    pub end: Option<i64>,
}

/// How every frame `node` sends begins (`encode` writes the name first).
pub fn prefix(node: &str) -> Vec<u8> {
    let mut out = b"{\"node\":".to_vec();
    string(&mut out, node);
    out
}

/// The frame, unless it starts with `own` ([`prefix`] of this node: its echo is dropped
/// without being parsed). `None` also for a frame that does not parse or names an invalid
/// topic.
pub fn decode(bytes: &[u8], own: &[u8]) -> Option<Decoded> {
    if bytes.starts_with(own) {
        return None;
    }
    let frame: Frame<'_> = serde_json::from_slice(bytes).ok()?;
    let app = AppId(frame.app);
    let topic = TopicName::parse(&frame.topic).ok()?;
    let messages = frame
        .messages
        .into_iter()
        .map(|i| Message {
            app_id: app.clone(),
            topic: topic.clone(),
            seq: i.seq,
            payload: Arc::from(i.payload.get()),
            published_at: i.at,
            kind: if i.presence {
                Kind::Presence
            } else {
                Kind::Publish
            },
        })
        .collect();
    Some(Decoded {
        app,
        topic,
        messages,
        end: frame.end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(seq: Option<i64>, payload: &str) -> Arc<Message> {
        Arc::new(Message {
            app_id: AppId("app1".into()),
            topic: TopicName::parse("room.1").unwrap(),
            seq,
            payload: Arc::from(payload),
            published_at: 42,
            kind: Default::default(),
        })
    }

    #[test]
    fn frames_round_trip_and_own_echoes_are_dropped() {
        let sent = [m(Some(7), r#"{"a":"x\"y"}"#), m(Some(8), "[1,2]")];
        let bytes = encode(&prefix("n\"1"), &sent);
        assert_eq!(decode(&bytes, &prefix("n\"1")), None, "own echo");
        let got = decode(&bytes, &prefix("n2")).unwrap();
        assert_eq!(got.end, None);
        let want: Vec<Message> = sent.iter().map(|m| (**m).clone()).collect();
        assert_eq!(got.messages, want);

        let eph = decode(&encode(&prefix("n1"), &[m(None, "1")]), &prefix("n2")).unwrap();
        assert_eq!(eph.messages[0].seq, None);
        assert_eq!(&*eph.messages[0].payload, "1");
        assert_eq!(eph.messages[0].kind, Kind::Publish);

        let mut presence = (*m(None, r#"{"event":"leave"}"#)).clone();
        presence.kind = Kind::Presence;
        let got = decode(
            &encode(&prefix("n1"), &[Arc::new(presence.clone())]),
            &prefix("n2"),
        );
        assert_eq!(got.unwrap().messages, [presence]);
    }

    #[test]
    fn large_batches_go_as_pointers() {
        let big = format!("\"{}\"", "x".repeat(INLINE_MAX));
        let got = decode(
            &encode(&prefix("n1"), &[m(Some(3), "1"), m(Some(4), &big)]),
            &prefix("n2"),
        )
        .unwrap();
        assert!(got.messages.is_empty());
        assert_eq!(got.end, Some(4));
        assert_eq!(got.topic.as_str(), "room.1");
    }

    #[test]
    fn garbage_is_ignored() {
        let own = prefix("n");
        assert_eq!(decode(b"{", &own), None);
        let bad_topic = br#"{"node":"a","app":"x","topic":"bad topic!","end":1}"#;
        assert_eq!(decode(bad_topic, &own), None);
        let good = br#"{"node":"a","app":"x","topic":"ok","end":1}"#;
        assert_eq!(decode(good, &own).unwrap().end, Some(1));
        assert_eq!(decode(good, &prefix("a")), None, "a's own");
    }
}
