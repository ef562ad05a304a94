//! Triggers: which events run which script, and how failed runs are retried.

use chrono::{DateTime, Utc};

use crate::data::{Collection, FilePath, KvKey};
use crate::script::ScriptName;
use crate::topic::TopicPattern;
use crate::ValidationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerKind {
    Kv,
    Docs,
    Files,
    Cron,
    Pubsub,
    DeadLetter,
}

impl TriggerKind {
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        Ok(match input {
            "kv" => Self::Kv,
            "docs" => Self::Docs,
            "files" => Self::Files,
            "cron" => Self::Cron,
            "pubsub" => Self::Pubsub,
            "dead_letter" => Self::DeadLetter,
            _ => {
                return Err(ValidationError::new(
                    "kind",
                    "must be kv, docs, files, cron, pubsub or dead_letter",
                ))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kv => "kv",
            Self::Docs => "docs",
            Self::Files => "files",
            Self::Cron => "cron",
            Self::Pubsub => "pubsub",
            Self::DeadLetter => "dead_letter",
        }
    }
}

/// A cron schedule in UTC: 5 fields, or 6 with seconds first.
#[derive(Debug, Clone)]
pub struct Schedule {
    raw: String,
    // Boxed: a parsed schedule is large and most filters are small strings.
    cron: Box<croner::Cron>,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Schedule {
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let fields = input.split_whitespace().count();
        if !(fields == 5 || fields == 6) {
            return Err(ValidationError::new(
                "filter.schedule",
                "must have 5 fields (minute hour day month weekday), or 6 with seconds first",
            ));
        }
        let cron = croner::Cron::new(input)
            .with_seconds_optional()
            .parse()
            .map_err(|e| ValidationError::new("filter.schedule", e.to_string()))?;
        Ok(Self {
            raw: input.to_owned(),
            cron: Box::new(cron),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The scheduled times in `(after, until]`, oldest first, at most `max` of them
    /// counting back from `until` (older ones are skipped: a bounded catch-up).
    pub fn times_between(&self, after_ms: i64, until_ms: i64, max: usize) -> Vec<i64> {
        // A long outage with a per-second schedule must not loop for hours: start no
        // earlier than needed to find `max` ticks in a plausible window.
        let floor = until_ms - 7 * 24 * 3600 * 1000;
        let mut out = std::collections::VecDeque::new();
        for ms in self.ticks_after(after_ms.max(floor)) {
            if ms > until_ms {
                break;
            }
            out.push_back(ms);
            if out.len() > max {
                out.pop_front();
            }
        }
        out.into()
    }

    /// The next `n` scheduled times after `after_ms`, soonest first: when the trigger will
    /// fire (the dashboard's preview, through the wasm build).
    pub fn next_times(&self, after_ms: i64, n: usize) -> Vec<i64> {
        self.ticks_after(after_ms).take(n).collect()
    }

    /// The scheduled times after `after_ms`, in epoch milliseconds, soonest first; ends
    /// where the schedule or the calendar does, and after a million ticks at most.
    fn ticks_after(&self, after_ms: i64) -> impl Iterator<Item = i64> + '_ {
        let mut at = DateTime::<Utc>::from_timestamp_millis(after_ms);
        std::iter::from_fn(move || {
            let next = self.cron.find_next_occurrence(&at?, false).ok()?;
            at = Some(next);
            Some(next.timestamp_millis())
        })
        .take(1_000_000)
    }
}

/// What a trigger listens to, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerFilter {
    /// kv writes and deletes of keys starting with the prefix (`""`: every key).
    Kv {
        prefix: String,
    },
    Docs {
        collection: Collection,
    },
    Files {
        prefix: String,
    },
    Cron {
        schedule: Schedule,
    },
    Pubsub {
        topic: TopicPattern,
    },
    /// Dead letters of one trigger, or of every trigger (never of itself).
    DeadLetter {
        trigger: Option<String>,
    },
}

impl TriggerFilter {
    /// Parses `filter` (a JSON object) for `kind`.
    pub fn parse(kind: TriggerKind, filter: &serde_json::Value) -> Result<Self, ValidationError> {
        let obj = match filter {
            serde_json::Value::Object(o) => o.clone(),
            serde_json::Value::Null => serde_json::Map::new(),
            _ => return Err(ValidationError::new("filter", "must be a JSON object")),
        };
        let allowed: &[&str] = match kind {
            TriggerKind::Kv | TriggerKind::Files => &["prefix"],
            TriggerKind::Docs => &["collection"],
            TriggerKind::Cron => &["schedule"],
            TriggerKind::Pubsub => &["topic"],
            TriggerKind::DeadLetter => &["trigger"],
        };
        if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ValidationError::new(
                "filter",
                format!(
                    "unknown field {k:?} for a {} trigger; expected {}",
                    kind.as_str(),
                    allowed.join(", ")
                ),
            ));
        }
        let string =
            |name: &'static str, required: bool| -> Result<Option<String>, ValidationError> {
                match obj.get(name) {
                    Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                    None | Some(serde_json::Value::Null) if !required => Ok(None),
                    None | Some(serde_json::Value::Null) => Err(ValidationError::new(
                        "filter",
                        format!("a {} trigger needs filter.{name}", kind.as_str()),
                    )),
                    Some(_) => Err(ValidationError::new(
                        "filter",
                        format!("{name} must be a string"),
                    )),
                }
            };
        Ok(match kind {
            TriggerKind::Kv => {
                let prefix = string("prefix", false)?.unwrap_or_default();
                if !prefix.is_empty() {
                    KvKey::parse(&prefix)?;
                }
                Self::Kv { prefix }
            }
            TriggerKind::Files => {
                let prefix = string("prefix", false)?.unwrap_or_default();
                if !prefix.is_empty() {
                    FilePath::validate_prefix(&prefix)?;
                }
                Self::Files { prefix }
            }
            TriggerKind::Docs => Self::Docs {
                collection: Collection::parse(&string("collection", true)?.unwrap_or_default())?,
            },
            TriggerKind::Cron => Self::Cron {
                schedule: Schedule::parse(&string("schedule", true)?.unwrap_or_default())?,
            },
            TriggerKind::Pubsub => Self::Pubsub {
                topic: TopicPattern::parse(&string("topic", true)?.unwrap_or_default())?,
            },
            TriggerKind::DeadLetter => Self::DeadLetter {
                trigger: string("trigger", false)?,
            },
        })
    }

    pub fn kind(&self) -> TriggerKind {
        match self {
            Self::Kv { .. } => TriggerKind::Kv,
            Self::Docs { .. } => TriggerKind::Docs,
            Self::Files { .. } => TriggerKind::Files,
            Self::Cron { .. } => TriggerKind::Cron,
            Self::Pubsub { .. } => TriggerKind::Pubsub,
            Self::DeadLetter { .. } => TriggerKind::DeadLetter,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Kv { prefix } | Self::Files { prefix } => json!({ "prefix": prefix }),
            Self::Docs { collection } => json!({ "collection": collection.as_str() }),
            Self::Cron { schedule } => json!({ "schedule": schedule.as_str() }),
            Self::Pubsub { topic } => json!({ "topic": topic.to_string() }),
            Self::DeadLetter { trigger } => json!({ "trigger": trigger }),
        }
    }

    /// The stored match columns `(topic_match, topic_prefix)`: PostgreSQL's publish
    /// statement matches pubsub triggers with them; other kinds keep them for inspection.
    pub fn match_columns(&self) -> (Option<String>, bool) {
        match self {
            Self::Pubsub {
                topic: TopicPattern::Exact(t),
            } => (Some(t.to_string()), false),
            Self::Pubsub {
                topic: TopicPattern::Prefix(p),
            } => (Some(p.clone()), true),
            Self::Kv { prefix } | Self::Files { prefix } => (Some(prefix.clone()), true),
            Self::Docs { collection } => (Some(collection.to_string()), false),
            Self::DeadLetter { trigger } => (trigger.clone(), false),
            Self::Cron { .. } => (None, false),
        }
    }
}

/// How a failing delivery is retried: attempt `n` (1-based) that fails waits
/// `min(max_delay, base_delay * 2^(n-1))`, with jitter, before attempt `n + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay_ms: i64,
    pub max_delay_ms: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay_ms: 1000,
            max_delay_ms: 60_000,
        }
    }
}

impl RetryPolicy {
    pub fn validate(self) -> Result<Self, ValidationError> {
        if !(1..=100).contains(&self.max_attempts) {
            return Err(ValidationError::new(
                "retry.max_attempts",
                "must be 1 to 100",
            ));
        }
        if !(1..=86_400_000).contains(&self.base_delay_ms) {
            return Err(ValidationError::new(
                "retry.base_delay_ms",
                "must be 1 to 86400000",
            ));
        }
        if !(self.base_delay_ms..=7 * 86_400_000).contains(&self.max_delay_ms) {
            return Err(ValidationError::new(
                "retry.max_delay_ms",
                "must be at least base_delay_ms and at most 604800000 (7 days)",
            ));
        }
        Ok(self)
    }

    /// The delay before the attempt after failed attempt `attempt` (1-based), before
    /// jitter: exponential, capped.
    pub fn backoff_ms(&self, attempt: u32) -> i64 {
        let shift = attempt.saturating_sub(1).min(40);
        self.base_delay_ms
            .saturating_mul(1i64 << shift)
            .min(self.max_delay_ms)
    }

    /// `backoff_ms` with "equal jitter": half fixed, half random (`unit` in `[0, 1)`), so
    /// retries of many deliveries that failed together spread out but never come early
    /// by more than half.
    pub fn delay_with_jitter_ms(&self, attempt: u32, unit: f64) -> i64 {
        let d = self.backoff_ms(attempt);
        d / 2 + ((d - d / 2) as f64 * unit.clamp(0.0, 1.0)) as i64
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub id: String,
    pub script: ScriptName,
    pub filter: TriggerFilter,
    pub enabled: bool,
    pub retry: RetryPolicy,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewTrigger {
    pub script: ScriptName,
    pub filter: TriggerFilter,
    pub enabled: bool,
    pub retry: RetryPolicy,
}

#[derive(Debug, Clone, Default)]
pub struct TriggerPatch {
    pub script: Option<ScriptName>,
    pub filter: Option<TriggerFilter>,
    pub enabled: Option<bool>,
    pub retry: Option<RetryPolicy>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay_ms: 100,
            max_delay_ms: 1000,
        };
        let d: Vec<i64> = (1..=6).map(|a| p.backoff_ms(a)).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.delay_with_jitter_ms(3, 0.0), 200);
        assert_eq!(p.delay_with_jitter_ms(3, 0.999_999), 399);
        assert_eq!(p.backoff_ms(u32::MAX), 1000);
    }

    #[test]
    fn filters_parse_per_kind() {
        let f = TriggerFilter::parse(TriggerKind::Pubsub, &json!({"topic": "chat.*"})).unwrap();
        assert_eq!(f.match_columns(), (Some("chat.".into()), true));
        assert!(TriggerFilter::parse(TriggerKind::Pubsub, &json!({})).is_err());
        assert!(TriggerFilter::parse(TriggerKind::Kv, &json!({"topic": "x"})).is_err());
        assert!(TriggerFilter::parse(TriggerKind::Cron, &json!({"schedule": "* * *"})).is_err());
        assert!(
            TriggerFilter::parse(TriggerKind::Cron, &json!({"schedule": "61 * * * *"})).is_err()
        );
        TriggerFilter::parse(TriggerKind::Cron, &json!({"schedule": "*/5 * * * * *"})).unwrap();
        TriggerFilter::parse(TriggerKind::DeadLetter, &json!(null)).unwrap();
    }

    #[test]
    fn cron_catch_up_is_bounded() {
        let s = Schedule::parse("* * * * *").unwrap();
        let t0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000;
        let ticks = s.times_between(t0, t0 + 10 * 60_000, 3);
        assert_eq!(
            ticks,
            vec![t0 + 8 * 60_000, t0 + 9 * 60_000, t0 + 10 * 60_000]
        );
        assert!(s.times_between(t0, t0 + 59_000, 3).is_empty());
    }

    #[test]
    fn next_times_are_the_coming_ticks_soonest_first() {
        let s = Schedule::parse("30 9 * * 1-5").unwrap();
        // Friday 2026-12-04 10:00 UTC: the next ticks are Mon–Fri 09:30, skipping the weekend.
        let friday = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .timestamp_millis();
        let got: Vec<String> = s
            .next_times(friday, 3)
            .into_iter()
            .map(|ms| {
                DateTime::<Utc>::from_timestamp_millis(ms)
                    .unwrap()
                    .to_rfc3339()
            })
            .collect();
        assert_eq!(
            got,
            [
                "2026-12-07T09:30:00+00:00",
                "2026-12-08T09:30:00+00:00",
                "2026-12-09T09:30:00+00:00"
            ]
        );
        // A tick exactly at `after` is not "next".
        let every_second = Schedule::parse("* * * * * *").unwrap();
        assert_eq!(every_second.next_times(5_000, 2), vec![6_000, 7_000]);
        assert!(every_second.next_times(5_000, 0).is_empty());
    }
}
