//! Topics: named streams of messages inside an app, and who may subscribe to them.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::ids::AppId;
use crate::ValidationError;

/// Longest topic name. Names travel in URLs, token claims and multi-topic resume ids.
pub const MAX_TOPIC_LEN: usize = 128;

/// A validated topic name: 1–128 characters from `[A-Za-z0-9_-.:@]`, dot-separated
/// non-empty segments. `*` is reserved for token patterns (`chat.*`), so it never appears in
/// a name; control characters, spaces, `/`, `?`, `#`, `%`, `,` and `=` never do either, so a
/// name is safe in a path segment, a query value and a resume id without escaping.
///
/// Shared text: a publish hands its name to the message, the answer and the hub, so a
/// clone is a reference count, not a copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Arc<str>);

impl TopicName {
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let err = |m: &str| Err(ValidationError::new("topic", m));
        if input.is_empty() || input.len() > MAX_TOPIC_LEN {
            return err("must be 1 to 128 characters");
        }
        if input.contains('*') {
            return err("must not contain '*' (reserved for token patterns like 'chat.*')");
        }
        if let Some(c) = input
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@')))
        {
            return Err(ValidationError::new(
                "topic",
                format!(
                    "must not contain {c:?}; allowed: letters, digits, '_', '-', '.', ':', '@'"
                ),
            ));
        }
        if input.split('.').any(str::is_empty) {
            return err("must not have empty '.'-separated segments");
        }
        Ok(Self(input.into()))
    }

    /// For values read back from the database, which were validated when written.
    pub fn from_trusted(s: String) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TopicName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(t) => f.write_str(t.as_str()),
            Self::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// A topic pattern from a token or a trigger: an exact name, or `prefix.*` for every topic
/// under `prefix.` (not `prefix` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicPattern {
    Exact(TopicName),
    Prefix(String),
}

impl TopicPattern {
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        match input.strip_suffix(".*") {
            Some(prefix) => {
                let p = TopicName::parse(prefix)?;
                Ok(Self::Prefix(format!("{}.", p.as_str())))
            }
            None => Ok(Self::Exact(TopicName::parse(input)?)),
        }
    }

    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Self::Exact(name) => name.as_str() == topic,
            Self::Prefix(prefix) => {
                topic.len() > prefix.len() && topic.starts_with(prefix.as_str())
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Anyone who can reach the app's Host may subscribe.
    Public,
    /// A subscriber token for this app and topic is required.
    Token,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Token => "token",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "public" => Ok(Self::Public),
            "token" => Ok(Self::Token),
            _ => Err(ValidationError::new(
                "auth_mode",
                "must be \"public\" or \"token\"",
            )),
        }
    }
}

/// How much history a topic keeps. `None` means no limit on that axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    pub max_messages: Option<i64>,
    pub max_age_secs: Option<i64>,
}

impl Retention {
    /// What a topic keeps when nobody said: the last 10,000 messages for a day. Bounded by
    /// default, so a forgotten topic cannot fill the disk.
    pub const DEFAULT: Retention = Retention {
        max_messages: Some(10_000),
        max_age_secs: Some(86_400),
    };

    pub fn validate(self) -> Result<Self, ValidationError> {
        if self.max_messages.is_some_and(|n| n < 1) {
            return Err(ValidationError::new(
                "retention.max_messages",
                "must be at least 1",
            ));
        }
        if self.max_age_secs.is_some_and(|n| n < 1) {
            return Err(ValidationError::new(
                "retention.max_age_secs",
                "must be at least 1",
            ));
        }
        Ok(self)
    }
}

/// A rate over a window: `count` events per `per_secs` seconds (a topic's own limit on
/// client events per connection, stricter than the app's, e.g. 60 a minute for typing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per_secs: u32,
}

impl RateLimit {
    pub fn validate(self) -> Result<Self, ValidationError> {
        if self.count < 1 || self.per_secs < 1 || self.per_secs > 86_400 {
            return Err(ValidationError::new(
                "client_event_limit",
                "count must be at least 1 and per_secs 1 to 86400",
            ));
        }
        Ok(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub app_id: AppId,
    pub name: TopicName,
    pub description: String,
    pub external_subscribable: bool,
    pub auth_mode: AuthMode,
    pub retention: Retention,
    /// Whether WebSocket clients may send ephemeral client events to it (their token's
    /// `publish` claim must cover it too).
    pub client_publish: bool,
    /// Whether clients may enter its presence, and its subscribers get presence events.
    pub presence: bool,
    /// A per-connection limit on client events stricter than the app's.
    pub client_event_limit: Option<RateLimit>,
    /// The seq of the newest message ever published (0 before the first).
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: TopicName,
    pub description: String,
    pub external_subscribable: bool,
    pub auth_mode: AuthMode,
    pub retention: Retention,
    pub client_publish: bool,
    pub presence: bool,
    pub client_event_limit: Option<RateLimit>,
}

impl NewTopic {
    /// A topic with the defaults: internal, token mode, default retention, no client
    /// events, no presence.
    pub fn internal(name: TopicName) -> Self {
        Self {
            name,
            description: String::new(),
            external_subscribable: false,
            auth_mode: AuthMode::Token,
            retention: Retention::DEFAULT,
            client_publish: false,
            presence: false,
            client_event_limit: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct TopicPatch {
    pub description: Option<String>,
    pub external_subscribable: Option<bool>,
    pub auth_mode: Option<AuthMode>,
    pub retention: Option<Retention>,
    pub client_publish: Option<bool>,
    pub presence: Option<bool>,
    /// `Some(None)` removes the topic's own limit.
    pub client_event_limit: Option<Option<RateLimit>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        for ok in [
            "chat",
            "chat.room-1",
            "user:42",
            "a@b",
            "A_b.C",
            &"x".repeat(128),
        ] {
            assert!(TopicName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "*",
            "chat.*",
            "a b",
            "a/b",
            "a?b",
            "a#b",
            "a%b",
            "a,b",
            "a=b",
            "a\nb",
            ".a",
            "a.",
            "a..b",
            "ü",
            &"x".repeat(129),
        ] {
            assert!(TopicName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn patterns_match_exact_names_and_prefixes() {
        let exact = TopicPattern::parse("chat").unwrap();
        assert!(exact.matches("chat"));
        assert!(!exact.matches("chat.room"));
        let prefix = TopicPattern::parse("chat.*").unwrap();
        assert!(prefix.matches("chat.room"));
        assert!(prefix.matches("chat.room.sub"));
        assert!(!prefix.matches("chat"));
        assert!(!prefix.matches("chatter.x"));
        assert!(TopicPattern::parse("*").is_err());
        assert!(TopicPattern::parse("a.*.b").is_err());
    }
}
