//! Turning an endpoint script's result into an HTTP response.
//!
//! Project convention: an endpoint result that is a map with `status`,
//! `headers` or `body` keys is a response; anything else is sent as JSON with
//! status 200.

use serde_json::Value;

/// Hop-by-hop and framing headers belong to the server: letting a script set
/// them could desynchronise the connection (request smuggling, truncated
/// bodies) or is invalid in HTTP/2.
const FORBIDDEN_HEADERS: [&str; 7] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
];

const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// Serialized as JSON; the server sets `content-type: application/json`
    /// unless the headers already name one.
    Json(Value),
    /// Sent as is; `content-type` is always present in the headers.
    Text(String),
    Empty,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    /// Names are lower-cased and validated; values are visible ASCII.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl HttpResponse {
    /// The value of the first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Interprets an endpoint result. `Err` explains what is wrong with a
/// response map, for the app's logs and the 500 the server sends instead.
pub fn into_http_response(result: Value) -> Result<HttpResponse, String> {
    let mut map = match result {
        Value::Object(map) if is_response_map(&map) => map,
        other => {
            return Ok(HttpResponse {
                status: 200,
                headers: Vec::new(),
                body: Body::Json(other),
            })
        }
    };
    if let Some(key) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "status" | "headers" | "body"))
    {
        return Err(format!(
            "response map has unknown key '{key}'; a response map may only have status, headers and body (wrap other data in body)"
        ));
    }
    let status = parse_status(map.remove("status"))?;
    let mut headers = parse_headers(map.remove("headers"))?;
    let body = match map.remove("body") {
        None | Some(Value::Null) => Body::Empty,
        Some(Value::String(text)) => {
            if !headers.iter().any(|(n, _)| n == "content-type") {
                headers.push(("content-type".into(), TEXT_CONTENT_TYPE.into()));
            }
            Body::Text(text)
        }
        Some(other) => Body::Json(other),
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn is_response_map(map: &serde_json::Map<String, Value>) -> bool {
    ["status", "headers", "body"]
        .iter()
        .any(|k| map.contains_key(*k))
}

/// A final status: 1xx are interim answers (`100 Continue`, `101 Switching Protocols`) that
/// would leave the client, or a proxy reusing the connection, waiting for the real one.
fn parse_status(status: Option<Value>) -> Result<u16, String> {
    let Some(status) = status else {
        return Ok(200);
    };
    status
        .as_u64()
        .filter(|s| (200..=599).contains(s))
        .map(|s| s as u16)
        .ok_or_else(|| format!("response status must be an integer from 200 to 599, got {status}"))
}

fn parse_headers(headers: Option<Value>) -> Result<Vec<(String, String)>, String> {
    let map = match headers {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(format!(
                "response headers must be a map of header name to string, got {other}"
            ))
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let name = name.to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(format!("invalid response header name '{name}'"));
        }
        if FORBIDDEN_HEADERS.contains(&name.as_str()) {
            return Err(format!(
                "response header '{name}' is set by the server and cannot be set by a script"
            ));
        }
        let Value::String(value) = value else {
            return Err(format!(
                "response header '{name}' must be a string, got {value}"
            ));
        };
        if !value.bytes().all(is_header_value_byte) {
            return Err(format!(
                "response header '{name}' has an invalid value: only visible ASCII, spaces and tabs are allowed"
            ));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What the `http` crate accepts from a `&str` header value; excludes CR/LF,
/// which would allow header injection.
fn is_header_value_byte(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_values_are_json_with_200() {
        for v in [
            json!({"a": 1}),
            json!([1, 2]),
            json!("hi"),
            json!(null),
            json!(3),
        ] {
            let r = into_http_response(v.clone()).unwrap();
            assert_eq!(r.status, 200);
            assert!(r.headers.is_empty());
            assert_eq!(r.body, Body::Json(v));
        }
    }

    #[test]
    fn full_response_map() {
        let r = into_http_response(json!({
            "status": 201,
            "headers": {"X-Thing": "a b", "Location": "/items/1"},
            "body": {"id": 1}
        }))
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.header("x-thing"), Some("a b"));
        assert_eq!(r.header("location"), Some("/items/1"));
        assert!(r.headers.iter().all(|(n, _)| n == &n.to_ascii_lowercase()));
        assert_eq!(r.body, Body::Json(json!({"id": 1})));
    }

    #[test]
    fn text_body_gets_text_content_type_unless_set() {
        let r = into_http_response(json!({"body": "hello"})).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, Body::Text("hello".into()));
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

        let r =
            into_http_response(json!({"body": "<p>", "headers": {"Content-Type": "text/html"}}))
                .unwrap();
        assert_eq!(r.header("content-type"), Some("text/html"));
        assert_eq!(r.headers.len(), 1);
    }

    #[test]
    fn missing_or_null_body_is_empty() {
        let r = into_http_response(json!({"status": 204})).unwrap();
        assert_eq!((r.status, r.body), (204, Body::Empty));
        let r = into_http_response(json!({"status": 404, "body": null, "headers": null})).unwrap();
        assert_eq!((r.status, r.body), (404, Body::Empty));
        let r = into_http_response(json!({"headers": {"x-a": "1"}})).unwrap();
        assert_eq!((r.status, r.body), (200, Body::Empty));
    }

    #[test]
    fn invalid_status_is_rejected() {
        for status in [
            json!(99),
            json!(100),
            json!(101),
            json!(199),
            json!(600),
            json!(-1),
            json!(200.5),
            json!("200"),
            json!(null),
        ] {
            let err = into_http_response(json!({"status": status})).unwrap_err();
            assert!(
                err.contains("status must be an integer from 200 to 599"),
                "{err}"
            );
        }
        assert_eq!(
            into_http_response(json!({"status": 200})).unwrap().status,
            200
        );
        assert_eq!(
            into_http_response(json!({"status": 599})).unwrap().status,
            599
        );
    }

    #[test]
    fn forbidden_headers_are_rejected() {
        for name in [
            "Content-Length",
            "transfer-encoding",
            "CONNECTION",
            "keep-alive",
            "upgrade",
        ] {
            let err = into_http_response(json!({"headers": {name: "x"}})).unwrap_err();
            assert!(err.contains("set by the server"), "{err}");
            assert!(err.contains(&name.to_ascii_lowercase()), "{err}");
        }
    }

    #[test]
    fn invalid_headers_are_rejected() {
        let err = into_http_response(json!({"headers": {"bad name": "x"}})).unwrap_err();
        assert!(
            err.contains("invalid response header name 'bad name'"),
            "{err}"
        );
        let err = into_http_response(json!({"headers": {"": "x"}})).unwrap_err();
        assert!(err.contains("invalid response header name"), "{err}");
        let err =
            into_http_response(json!({"headers": {"x-a": "a\r\nset-cookie: x"}})).unwrap_err();
        assert!(err.contains("'x-a' has an invalid value"), "{err}");
        let err = into_http_response(json!({"headers": {"x-a": "é"}})).unwrap_err();
        assert!(err.contains("invalid value"), "{err}");
        let err = into_http_response(json!({"headers": {"x-a": 5}})).unwrap_err();
        assert!(err.contains("'x-a' must be a string"), "{err}");
        let err = into_http_response(json!({"headers": ["x-a"]})).unwrap_err();
        assert!(err.contains("headers must be a map"), "{err}");
    }

    #[test]
    fn unknown_keys_in_a_response_map_are_rejected() {
        let err = into_http_response(json!({"body": 1, "extra": 2})).unwrap_err();
        assert!(err.contains("unknown key 'extra'"), "{err}");
    }
}
