//! Identifiers. Ids are UUIDv7 strings: sortable by creation time, opaque to clients.

use std::fmt;

/// Generates a new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The id of an app. A newtype so an app id can never be passed where a slug is expected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(pub String);

impl AppId {
    pub fn new() -> Self {
        Self(new_id())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for AppId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True when `s` has the shape of an id from [`new_id`]. A slug can have that shape too, so
/// callers resolving "slug or id" try the id first and fall back to the slug.
pub fn looks_like_id(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}
