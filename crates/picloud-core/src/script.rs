//! Scripts: named Rhai sources deployed as immutable numbered versions, and the routes
//! that map HTTP requests on an app's Host to them.

use chrono::{DateTime, Utc};

use crate::ValidationError;

/// A script, route-path segment or collection style name: 1–64 characters from
/// `[A-Za-z0-9_.-]`, not starting with `.`. Safe in URLs and file names without escaping.
pub(crate) fn validate_name(field: &'static str, input: &str) -> Result<(), ValidationError> {
    if input.is_empty() || input.len() > 64 {
        return Err(ValidationError::new(field, "must be 1 to 64 characters"));
    }
    if input.starts_with('.') {
        return Err(ValidationError::new(field, "must not start with '.'"));
    }
    if let Some(c) = input
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(ValidationError::new(
            field,
            format!("must not contain {c:?}; allowed: letters, digits, '_', '-', '.'"),
        ));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(input: &str) -> Result<Self, ValidationError> {
                $crate::script::validate_name($field, input)?;
                Ok(Self(input.to_owned()))
            }

            /// For values read back from the database, which were validated when written.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use name_type;

name_type!(
    /// A script's name within its app.
    ScriptName,
    "name"
);

/// Largest script source accepted at deploy.
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;

/// A script and which of its versions runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptInfo {
    pub name: ScriptName,
    pub active_version: i64,
    pub latest_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One immutable version of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptVersion {
    pub name: ScriptName,
    pub version: i64,
    pub source: String,
    pub created_at: DateTime<Utc>,
}

/// The HTTP method a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    /// Every method.
    Any,
}

impl RouteMethod {
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        Ok(match input.to_ascii_uppercase().as_str() {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            "ANY" | "*" => Self::Any,
            _ => {
                return Err(ValidationError::new(
                    "method",
                    "must be GET, POST, PUT, PATCH, DELETE or ANY",
                ))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Any => "ANY",
        }
    }

    /// Whether a request with `method` (as sent, upper case) is answered. HEAD is served
    /// by GET routes.
    pub fn accepts(self, method: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Get => method == "GET" || method == "HEAD",
            m => m.as_str() == method,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A route path pattern: `/`, `/items`, `/items/:id/comments`. Literal segments match
/// exactly; `:name` segments match any one non-empty segment and bind it as a param.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePath {
    raw: String,
    segments: Vec<Segment>,
}

/// The reserved prefix of the realtime endpoints, which routes cannot shadow.
const RESERVED: &str = "realtime";

impl RoutePath {
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let err = |m: String| Err(ValidationError::new("path", m));
        if !input.starts_with('/') {
            return err("must start with '/'".into());
        }
        if input.len() > 512 {
            return err("must be at most 512 characters".into());
        }
        let mut segments = Vec::new();
        let mut params = std::collections::HashSet::new();
        for part in input[1..].split('/') {
            if part.is_empty() {
                if input == "/" {
                    break;
                }
                return err("must not have empty segments or a trailing '/'".into());
            }
            if let Some(name) = part.strip_prefix(':') {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return err(format!(
                        "parameter {part:?} must be ':' and a name of letters, digits and '_'"
                    ));
                }
                if !params.insert(name.to_owned()) {
                    return err(format!("parameter {part:?} appears twice"));
                }
                segments.push(Segment::Param(name.to_owned()));
            } else {
                if let Some(c) = part.chars().find(|c| {
                    !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '~' | '@'))
                }) {
                    return err(format!(
                        "segment {part:?} must not contain {c:?}; allowed: letters, digits, '_', '-', '.', '~', '@', or ':param'"
                    ));
                }
                segments.push(Segment::Literal(part.to_owned()));
            }
        }
        if matches!(segments.first(), Some(Segment::Literal(s)) if s == RESERVED) {
            return err("must not start with /realtime (reserved for subscriptions)".into());
        }
        Ok(Self {
            raw: input.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The params bound when `path` (already percent-decoded segments) matches.
    pub fn matches(&self, path: &[&str]) -> Option<Vec<(String, String)>> {
        if path.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segments.iter().zip(path) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) if !part.is_empty() => {
                    params.push((name.clone(), (*part).to_owned()))
                }
                Segment::Param(_) => return None,
            }
        }
        Some(params)
    }

    /// Sort key for precedence: literal segments before params, earlier segments first.
    pub fn specificity(&self) -> Vec<u8> {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 0,
                Segment::Param(_) => 1,
            })
            .collect()
    }
}

/// A route: requests with `method` and a path matching `path` run `script`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub id: String,
    pub method: RouteMethod,
    pub path: RoutePath,
    pub script: ScriptName,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewRoute {
    pub method: RouteMethod,
    pub path: RoutePath,
    pub script: ScriptName,
}

/// Picks the route for a request: the most specific path that matches, and among equally
/// specific ones a method-specific route before `ANY`.
pub fn match_route<'a>(
    routes: &'a [Route],
    method: &str,
    path: &str,
) -> Option<(&'a Route, Vec<(String, String)>)> {
    let parts: Vec<&str> = if path == "/" {
        Vec::new()
    } else {
        path.trim_start_matches('/').split('/').collect()
    };
    routes
        .iter()
        .filter(|r| r.method.accepts(method))
        .filter_map(|r| r.path.matches(&parts).map(|p| (r, p)))
        .min_by_key(|(r, _)| (r.path.specificity(), r.method == RouteMethod::Any))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> Route {
        Route {
            id: path.into(),
            method: RouteMethod::parse(method).unwrap(),
            path: RoutePath::parse(path).unwrap(),
            script: ScriptName::parse("s").unwrap(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn paths_validate() {
        for ok in ["/", "/a", "/items/:id", "/a/:x/b/:y", "/v1.2/x-y"] {
            RoutePath::parse(ok).unwrap();
        }
        for bad in [
            "",
            "a",
            "/a/",
            "//",
            "/:",
            "/:a/:a",
            "/a b",
            "/realtime",
            "/realtime/x",
            "/a?b",
        ] {
            assert!(RoutePath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn literal_beats_param_and_method_beats_any() {
        let routes = vec![
            route("ANY", "/items/:id"),
            route("GET", "/items/:id"),
            route("GET", "/items/new"),
            route("GET", "/"),
        ];
        let (r, p) = match_route(&routes, "GET", "/items/7").unwrap();
        assert_eq!(
            (r.method, p),
            (RouteMethod::Get, vec![("id".into(), "7".into())])
        );
        let (r, _) = match_route(&routes, "GET", "/items/new").unwrap();
        assert_eq!(r.path.as_str(), "/items/new");
        let (r, _) = match_route(&routes, "DELETE", "/items/7").unwrap();
        assert_eq!(r.method, RouteMethod::Any);
        assert_eq!(
            match_route(&routes, "GET", "/").unwrap().0.path.as_str(),
            "/"
        );
        assert!(match_route(&routes, "GET", "/items").is_none());
        assert!(match_route(&routes, "POST", "/").is_none());
        assert!(match_route(&routes, "HEAD", "/items/new").is_some());
    }

    #[test]
    fn names_validate() {
        ScriptName::parse("hello-world_1.v2").unwrap();
        for bad in ["", ".x", "a/b", "a b", &"x".repeat(65)] {
            assert!(ScriptName::parse(bad).is_err());
        }
    }
}
