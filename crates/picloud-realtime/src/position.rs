//! Resume positions: what goes in `id:` and comes back as `Last-Event-ID`.
//!
//! A single-topic stream's id is the seq (`42`). A multi-topic stream's id carries every
//! topic's position as `name=seq` pairs joined by `,` (topic names never contain `=` or `,`),
//! sorted by name so the same positions always read the same. Clients treat it as opaque.

use std::collections::BTreeMap;

use picloud_core::topic::TopicName;

/// Longest id accepted back (100 topics × 128-character names, with room to spare).
const MAX_ID_LEN: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedPosition {
    /// A bare seq: valid only for a single-topic stream.
    Single(i64),
    Multi(BTreeMap<String, i64>),
}

#[derive(Debug, PartialEq, Eq)]
pub struct InvalidPosition;

pub fn parse(id: &str) -> Result<ParsedPosition, InvalidPosition> {
    let id = id.trim();
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(InvalidPosition);
    }
    if let Ok(seq) = id.parse::<i64>() {
        return if seq >= 0 {
            Ok(ParsedPosition::Single(seq))
        } else {
            Err(InvalidPosition)
        };
    }
    let mut map = BTreeMap::new();
    for pair in id.split(',') {
        let (name, seq) = pair.split_once('=').ok_or(InvalidPosition)?;
        TopicName::parse(name).map_err(|_| InvalidPosition)?;
        let seq: i64 = seq.parse().map_err(|_| InvalidPosition)?;
        if seq < 0 || map.insert(name.to_owned(), seq).is_some() {
            return Err(InvalidPosition);
        }
    }
    Ok(ParsedPosition::Multi(map))
}

/// Renders the id of a multi-topic stream from `(topic, position)` pairs.
pub fn render_multi<'a>(positions: impl Iterator<Item = (&'a TopicName, i64)>) -> String {
    let mut sorted: Vec<_> = positions.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    for (i, (name, seq)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name.as_str());
        out.push('=');
        out.push_str(&seq.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_positions_round_trip() {
        assert_eq!(parse("42"), Ok(ParsedPosition::Single(42)));
        let a = TopicName::parse("a:b").unwrap();
        let z = TopicName::parse("z.y").unwrap();
        let id = render_multi([(&z, 3), (&a, 9)].into_iter());
        assert_eq!(id, "a:b=9,z.y=3");
        let ParsedPosition::Multi(m) = parse(&id).unwrap() else {
            panic!()
        };
        assert_eq!(m.get("a:b"), Some(&9));
        assert_eq!(m.get("z.y"), Some(&3));
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            "",
            "-1",
            "abc",
            "a=",
            "=1",
            "a=1,a=2",
            "a=-3",
            "a*=1",
            "a=1,,b=2",
            "a=1;b=2",
            "1.5",
            &"9".repeat(30),
        ] {
            assert_eq!(parse(bad), Err(InvalidPosition), "{bad:?}");
        }
        assert_eq!(parse(&"a=1,".repeat(5000)), Err(InvalidPosition));
    }
}
