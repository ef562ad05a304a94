//! Message payloads as stored and sent: the publisher's JSON text, validated, with the
//! whitespace between tokens removed. Compact, so no raw newline can reach an SSE `data:`
//! line (a JSON string cannot hold one); otherwise exactly what was sent: key order,
//! duplicate keys, escapes and numbers stay as written. (Parsing into `serde_json::Value`
//! and printing it again, as before, sorted object keys and rounded integers beyond 64
//! bits to floats: `12345678901234567890123` came out as `1.2345678901234568e22`.)

use std::sync::Arc;

use serde_json::value::RawValue;

/// `text` as one line of compact JSON, or the parser's error when it is not JSON.
pub fn compact(text: &[u8]) -> Result<Arc<str>, serde_json::Error> {
    let raw: &RawValue = serde_json::from_slice(text)?;
    Ok(compact_raw(raw))
}

/// Compact JSON for a value already parsed as raw text (the batch endpoint's `data`).
pub fn compact_raw(raw: &RawValue) -> Arc<str> {
    let text = raw.get();
    // Machine-written JSON seldom has any: then it is stored as it came, in one copy.
    // Folded without an early exit, so that it compiles to a vector loop.
    if !text.bytes().fold(false, |any, b| any | is_whitespace(b)) {
        return Arc::from(text);
    }
    Arc::from(strip_whitespace(text))
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Drops the whitespace outside strings of valid JSON `text`. Byte by byte: JSON's
/// whitespace, quotes and backslashes are ASCII, and no byte of a multi-byte UTF-8
/// character is.
fn strip_whitespace(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for b in text.bytes() {
        if in_string {
            out.push(b);
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if !is_whitespace(b) {
            in_string = b == b'"';
            out.push(b);
        }
    }
    String::from_utf8(out).expect("only ASCII bytes were dropped")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> String {
        compact(text.as_bytes()).unwrap().to_string()
    }

    #[test]
    fn whitespace_between_tokens_goes() {
        assert_eq!(
            ok(" {\n\t\"a\" : [ 1 , 2 ],\r\n \"b\" : { } }\n"),
            r#"{"a":[1,2],"b":{}}"#
        );
    }

    #[test]
    fn strings_keep_their_spaces_and_escapes() {
        assert_eq!(
            ok(r#"{ "s" : " a \" b \\ c \n \u00e9 \/ " }"#),
            r#"{"s":" a \" b \\ c \n \u00e9 \/ "}"#
        );
        assert_eq!(ok(r#"[ "\\", "x" ]"#), r#"["\\","x"]"#);
        assert_eq!(ok("\"tab\\tand é\""), "\"tab\\tand é\"");
        assert_eq!(ok("{ \"é\" :\t\"ü ß\" }"), "{\"é\":\"ü ß\"}");
    }

    #[test]
    fn order_duplicates_and_numbers_stay_as_written() {
        assert_eq!(ok(r#"{"b":1,"a":2,"b":3}"#), r#"{"b":1,"a":2,"b":3}"#);
        assert_eq!(
            ok("[12345678901234567890123, 1.50, -0, 1E2]"),
            "[12345678901234567890123,1.50,-0,1E2]"
        );
    }

    #[test]
    fn scalars_are_json_too() {
        assert_eq!(ok(" 42 "), "42");
        assert_eq!(ok("null"), "null");
        assert_eq!(ok(r#""x""#), r#""x""#);
    }

    #[test]
    fn invalid_json_is_an_error() {
        for bad in [
            "",
            "{",
            "{\"a\":1,}",
            "[1] [2]",
            "\"raw\nnewline\"",
            "{'a':1}",
            "NaN",
        ] {
            assert!(compact(bad.as_bytes()).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn no_raw_newline_survives() {
        let out = ok("{\n\"a\":\n[\n\"x\\ny\"\n]\n}");
        assert!(!out.contains('\n') && !out.contains('\r'), "{out}");
    }
}
