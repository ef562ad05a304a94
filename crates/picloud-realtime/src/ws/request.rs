//! A client's frame read into a request, and the frames that answer one.

use bytes::Bytes;
use picloud_core::topic::TopicName;
use serde_json::{json, Map, Value};

use crate::codes::Code;

/// Longest request id a client may use.
const MAX_ID: usize = 64;

pub(super) enum Request {
    Auth {
        token: String,
    },
    Subscribe {
        topic: TopicName,
        position: Option<i64>,
    },
    Unsubscribe {
        topic: TopicName,
    },
    Publish {
        topic: TopicName,
        data: String,
    },
    Enter {
        topic: TopicName,
        data: String,
    },
    Update {
        topic: TopicName,
        data: String,
    },
    Leave {
        topic: TopicName,
    },
    Members {
        topic: TopicName,
    },
    Ping,
}

/// A request that cannot be read: the error to answer it with (the connection stays).
pub(super) struct Refusal {
    pub code: Code,
    pub message: String,
}

fn refuse(code: Code, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// The request and its `id` (echoed by the answer), or the refusal with what could be
/// read of the id.
pub(super) fn parse(text: &str) -> (Option<Value>, Result<Request, Refusal>) {
    let Ok(Value::Object(mut frame)) = serde_json::from_str::<Value>(text) else {
        return (
            None,
            Err(refuse(Code::BadRequest, "a frame is one JSON object")),
        );
    };
    let id = match frame.remove("id") {
        None | Some(Value::Null) => None,
        Some(id @ Value::Number(_)) => Some(id),
        Some(Value::String(s)) if s.len() <= MAX_ID => Some(Value::String(s)),
        Some(_) => {
            return (
                None,
                Err(refuse(
                    Code::BadRequest,
                    "id must be a number or a string of at most 64 characters",
                )),
            )
        }
    };
    (id, request(&mut frame))
}

fn request(f: &mut Map<String, Value>) -> Result<Request, Refusal> {
    let kind = match f.get("type") {
        Some(Value::String(t)) => t.clone(),
        _ => return Err(refuse(Code::BadRequest, "type must be a string")),
    };
    Ok(match kind.as_str() {
        "auth" | "refresh" => Request::Auth {
            token: string(f, "token")?,
        },
        "subscribe" => Request::Subscribe {
            topic: topic(f)?,
            position: position(f)?,
        },
        "unsubscribe" => Request::Unsubscribe { topic: topic(f)? },
        "publish" => Request::Publish {
            topic: topic(f)?,
            data: data(f, true)?,
        },
        "presence.enter" => Request::Enter {
            topic: topic(f)?,
            data: data(f, false)?,
        },
        "presence.update" => Request::Update {
            topic: topic(f)?,
            data: data(f, true)?,
        },
        "presence.leave" => Request::Leave { topic: topic(f)? },
        "presence.get" => Request::Members { topic: topic(f)? },
        "ping" => Request::Ping,
        other => {
            return Err(refuse(
                Code::BadRequest,
                format!("unknown type {:?}", truncate(other)),
            ))
        }
    })
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(32) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn string(f: &mut Map<String, Value>, field: &str) -> Result<String, Refusal> {
    match f.remove(field) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(refuse(
            Code::BadRequest,
            format!("{field} must be a string"),
        )),
    }
}

fn topic(f: &mut Map<String, Value>) -> Result<TopicName, Refusal> {
    let name = string(f, "topic")?;
    TopicName::parse(&name).map_err(|e| refuse(Code::InvalidTopic, e.to_string()))
}

/// A resume position: the seq of the last message processed, as a string (a number is
/// taken too).
fn position(f: &mut Map<String, Value>) -> Result<Option<i64>, Refusal> {
    let bad = || {
        refuse(
            Code::BadRequest,
            "position must be a non-negative integer in a string",
        )
    };
    match f.remove("position") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s
            .parse::<i64>()
            .ok()
            .filter(|p| *p >= 0)
            .map(Some)
            .ok_or_else(bad),
        Some(Value::Number(n)) => n.as_i64().filter(|p| *p >= 0).map(Some).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// The `data` field as compact JSON; absent is `null` unless `required`.
fn data(f: &mut Map<String, Value>, required: bool) -> Result<String, Refusal> {
    match f.remove("data") {
        Some(v) => Ok(v.to_string()),
        None if !required => Ok("null".to_owned()),
        None => Err(refuse(Code::BadRequest, "data is required")),
    }
}

/// `{"type": kind, "id"?, …fields}` as a text frame.
pub(super) fn answer(kind: &str, id: Option<&Value>, fields: Value) -> Bytes {
    let mut out = Map::new();
    out.insert("type".into(), Value::String(kind.to_owned()));
    if let Some(id) = id {
        out.insert("id".into(), id.clone());
    }
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    Bytes::from(Value::Object(out).to_string())
}

pub(super) fn error(id: Option<&Value>, code: Code, message: &str) -> Bytes {
    answer(
        "error",
        id,
        json!({"code": code.as_str(), "message": message}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_and_bad_ones_refused_with_their_id() {
        let (id, r) = parse(r#"{"type":"subscribe","id":7,"topic":"chat","position":"41"}"#);
        assert_eq!(id, Some(json!(7)));
        assert!(
            matches!(r, Ok(Request::Subscribe { ref topic, position: Some(41) }) if topic.as_str() == "chat")
        );
        let (_, r) = parse(r#"{"type":"publish","id":"a","topic":"t","data":{"x" : [1, 2]}}"#);
        assert!(matches!(r, Ok(Request::Publish { ref data, .. }) if data == r#"{"x":[1,2]}"#));
        let (_, r) = parse(r#"{"type":"presence.enter","topic":"t"}"#);
        assert!(matches!(r, Ok(Request::Enter { ref data, .. }) if data == "null"));

        for (frame, code) in [
            ("not json", Code::BadRequest),
            ("[1]", Code::BadRequest),
            (r#"{"type":"nope","id":1}"#, Code::BadRequest),
            (r#"{"type":"subscribe","id":1}"#, Code::BadRequest),
            (
                r#"{"type":"subscribe","id":1,"topic":"a b"}"#,
                Code::InvalidTopic,
            ),
            (
                r#"{"type":"subscribe","id":1,"topic":"a","position":"-1"}"#,
                Code::BadRequest,
            ),
            (r#"{"type":"publish","id":1,"topic":"a"}"#, Code::BadRequest),
        ] {
            let (_, r) = parse(frame);
            assert_eq!(r.err().map(|e| e.code), Some(code), "{frame}");
        }
        let (id, _) = parse(r#"{"type":"nope","id":"x"}"#);
        assert_eq!(
            id,
            Some(json!("x")),
            "the id of a refused request is echoed"
        );
        let (id, r) = parse(&format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(65)));
        assert!(id.is_none() && r.is_err(), "an over-long id is refused");
    }

    #[test]
    fn answers_carry_type_id_and_fields() {
        let a = answer(
            "subscribed",
            Some(&json!(1)),
            json!({"topic": "t", "position": "3"}),
        );
        let v: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(
            v,
            json!({"type": "subscribed", "id": 1, "topic": "t", "position": "3"})
        );
    }
}
