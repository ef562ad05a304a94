//! Property tests (proptest) of the hand-written parsers in the core: topic names and
//! patterns, and Host normalisation. Each property runs on generated input, biased towards
//! the characters the rules are about; `PROPTEST_CASES` raises the count for a longer run
//! (docs/fuzzing.md).

use picloud_core::host::Host;
use picloud_core::topic::{TopicName, TopicPattern, MAX_TOPIC_LEN};
use proptest::prelude::*;

/// Text from the characters topic and host rules care about, and some they refuse.
fn tricky(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            6 => proptest::char::range('a', 'z'),
            2 => proptest::char::range('A', 'Z'),
            2 => proptest::char::range('0', '9'),
            3 => proptest::sample::select(vec!['.', '-', '_', ':', '@', '*', '[', ']']),
            1 => proptest::sample::select(vec![' ', '/', '?', '#', '%', ',', '=', '\t', '\n', 'é', '\0']),
        ],
        0..max,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// The documented rule for a topic name, written independently of the parser.
fn is_valid_topic(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TOPIC_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:@".contains(&b))
        && s.split('.').all(|seg| !seg.is_empty())
}

proptest! {
    #[test]
    fn topic_names_follow_the_documented_rule(s in tricky(140)) {
        let parsed = TopicName::parse(&s);
        prop_assert_eq!(parsed.is_ok(), is_valid_topic(&s), "{:?}", s);
        if let Ok(name) = parsed {
            prop_assert_eq!(name.as_str(), s.as_str());
        }
    }

    #[test]
    fn patterns_match_exactly_their_topics(p in tricky(24), t in tricky(32)) {
        let Ok(pattern) = TopicPattern::parse(&p) else {
            // Refused patterns: neither an exact name nor `name.*`.
            let exact = is_valid_topic(&p);
            let prefix = p.strip_suffix(".*").is_some_and(is_valid_topic);
            prop_assert!(!exact && !prefix, "{:?} refused", p);
            return Ok(());
        };
        let expected = match p.strip_suffix(".*") {
            Some(prefix) => t.len() > prefix.len() + 1 && t.starts_with(&format!("{prefix}.")),
            None => t == p,
        };
        prop_assert_eq!(pattern.matches(&t), expected, "{:?} ~ {:?}", p, t);
        prop_assert_eq!(TopicPattern::parse(&pattern.to_string()), Ok(pattern));
    }

    #[test]
    fn host_normalisation_is_idempotent(raw in tricky(40), port in proptest::option::of(0u32..70000)) {
        let raw = match port {
            Some(p) => format!("{raw}:{p}"),
            None => raw,
        };
        if let Ok(host) = Host::parse(&raw) {
            let s = host.as_str();
            prop_assert_eq!(Host::parse(s), Ok(host.clone()), "{:?}", raw);
            prop_assert!(!s.ends_with('.'), "{:?}", s);
            prop_assert_eq!(s.to_ascii_lowercase(), s.to_owned());
            prop_assert!(s.starts_with('[') || !s.contains(':'), "no port in {:?}", s);
        }
    }
}
