//! Parsing a subscribe request: topics, token, resume position. Pure functions, so every
//! malformed input has a unit test and a clear 400.

use crate::codes::Code;
use std::collections::BTreeMap;

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use picloud_core::topic::TopicName;

use crate::position::{self, ParsedPosition};

#[derive(Debug, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// Deduplicated, in request order.
    pub topics: Vec<TopicName>,
    pub token: Option<String>,
    /// Per topic (same order): the last seq the client saw, if it is resuming.
    pub positions: Vec<Option<i64>>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct BadRequest {
    pub code: Code,
    pub message: String,
}

fn bad(code: Code, message: impl Into<String>) -> BadRequest {
    BadRequest {
        code,
        message: message.into(),
    }
}

/// `path_topic` is the `{topic}` of `/realtime/topics/{topic}`; otherwise the topics come
/// from repeated `?topic=` parameters.
pub fn parse(
    path_topic: Option<&str>,
    query: Option<&str>,
    headers: &HeaderMap,
    max_topics: usize,
) -> Result<SubscribeRequest, BadRequest> {
    let mut raw_topics: Vec<String> = path_topic.map(str::to_owned).into_iter().collect();
    let mut token = None;
    let mut last_event_id = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "topic" if path_topic.is_none() => {
                if raw_topics.len() >= max_topics {
                    return Err(bad(
                        Code::TooManyTopics,
                        format!("at most {max_topics} topics per stream"),
                    ));
                }
                raw_topics.push(v.into_owned());
            }
            "token" => token = Some(v.into_owned()),
            "last_event_id" => last_event_id = Some(v.into_owned()),
            _ => {}
        }
    }
    if raw_topics.is_empty() {
        return Err(bad(
            Code::InvalidTopic,
            "name at least one topic (?topic=name)",
        ));
    }
    let mut topics: Vec<TopicName> = Vec::with_capacity(raw_topics.len());
    for raw in &raw_topics {
        let name = TopicName::parse(raw).map_err(|e| bad(Code::InvalidTopic, e.to_string()))?;
        if !topics.contains(&name) {
            topics.push(name);
        }
    }

    if let Some(v) = headers.get(AUTHORIZATION) {
        let v = v.to_str().unwrap_or_default();
        let bearer = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "));
        token = bearer.map(|t| t.trim().to_owned()).or(token);
    }
    // The header wins: it is what an EventSource sends when it reconnects by itself.
    if let Some(v) = headers.get("last-event-id") {
        last_event_id = Some(
            v.to_str()
                .map_err(|_| bad(Code::InvalidLastEventId, "Last-Event-ID is not valid text"))?
                .to_owned(),
        );
    }
    let positions = match last_event_id.filter(|id| !id.trim().is_empty()) {
        None => vec![None; topics.len()],
        Some(id) => {
            let parsed = position::parse(&id).map_err(|_| {
                bad(
                    Code::InvalidLastEventId,
                    "Last-Event-ID is not a position this server issued",
                )
            })?;
            positions_for(&topics, parsed)?
        }
    };
    Ok(SubscribeRequest {
        topics,
        token: token.filter(|t| !t.is_empty()),
        positions,
    })
}

fn positions_for(
    topics: &[TopicName],
    parsed: ParsedPosition,
) -> Result<Vec<Option<i64>>, BadRequest> {
    match parsed {
        ParsedPosition::Single(seq) if topics.len() == 1 => Ok(vec![Some(seq)]),
        ParsedPosition::Single(_) => Err(bad(
            Code::InvalidLastEventId,
            "a multi-topic stream needs the id of a multi-topic event",
        )),
        // Topics absent from the id start from now; positions of other topics are ignored.
        ParsedPosition::Multi(map) => Ok(topics.iter().map(|t| lookup(&map, t)).collect()),
    }
}

fn lookup(map: &BTreeMap<String, i64>, topic: &TopicName) -> Option<i64> {
    map.get(topic.as_str()).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn single_topic_with_header_token_and_position() {
        let r = parse(
            Some("chat"),
            None,
            &headers(&[("authorization", "Bearer abc"), ("last-event-id", "41")]),
            100,
        )
        .unwrap();
        assert_eq!(r.topics, vec![TopicName::parse("chat").unwrap()]);
        assert_eq!(r.token.as_deref(), Some("abc"));
        assert_eq!(r.positions, vec![Some(41)]);
    }

    #[test]
    fn multi_topic_from_query() {
        let q = "topic=a&topic=b&topic=a&token=t&last_event_id=a%3D5%2Cc%3D9";
        let r = parse(None, Some(q), &HeaderMap::new(), 100).unwrap();
        assert_eq!(r.topics.len(), 2, "duplicates collapse");
        assert_eq!(r.token.as_deref(), Some("t"));
        assert_eq!(r.positions, vec![Some(5), None]);
    }

    #[test]
    fn bad_requests_are_named() {
        let h = HeaderMap::new();
        assert_eq!(
            parse(None, None, &h, 100).unwrap_err().code,
            Code::InvalidTopic
        );
        assert_eq!(
            parse(Some("a*"), None, &h, 100).unwrap_err().code,
            Code::InvalidTopic
        );
        assert_eq!(
            parse(None, Some("topic=a%20b"), &h, 100).unwrap_err().code,
            Code::InvalidTopic
        );
        let many: Vec<_> = (0..101).map(|i| format!("topic=t{i}")).collect();
        assert_eq!(
            parse(None, Some(&many.join("&")), &h, 100)
                .unwrap_err()
                .code,
            Code::TooManyTopics
        );
        for garbage in ["abc", "-1", "a=b", "1;2"] {
            let err = parse(
                Some("chat"),
                None,
                &headers(&[("last-event-id", garbage)]),
                100,
            )
            .unwrap_err();
            assert_eq!(err.code, Code::InvalidLastEventId, "{garbage}");
        }
        let err = parse(None, Some("topic=a&topic=b&last_event_id=4"), &h, 100).unwrap_err();
        assert_eq!(err.code, Code::InvalidLastEventId);
    }
}
