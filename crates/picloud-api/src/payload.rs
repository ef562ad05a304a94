//! Message payloads as stored and sent: the publisher's JSON text, validated, with the
//! whitespace between tokens removed. Compact, so no raw newline can reach an SSE `data:`
//! line (a JSON string cannot hold one); otherwise exactly what was sent: key order,
//! duplicate keys, escapes and numbers stay as written. (Parsing into `serde_json::Value`
//! and printing it again, as before, sorted object keys and rounded integers beyond 64
//! bits to floats: `12345678901234567890123` came out as `1.2345678901234568e22`.)

use serde_json::value::RawValue;

/// `text` as one line of compact JSON, or the parser's error when it is not JSON.
pub fn compact(text: &[u8]) -> Result<String, serde_json::Error> {
    let raw: &RawValue = serde_json::from_slice(text)?;
    Ok(strip_whitespace(raw.get()))
}

/// Compact JSON for a value already parsed as raw text (the batch endpoint's `data`).
pub fn compact_raw(raw: &RawValue) -> String {
    strip_whitespace(raw.get())
}

/// Drops the whitespace outside strings of valid JSON `text`.
fn strip_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else {
            match c {
                ' ' | '\t' | '\n' | '\r' => {}
                '"' => {
                    in_string = true;
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> String {
        compact(text.as_bytes()).unwrap()
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
