//! Tenant data the script SDK reaches: kv keys, document collections, file paths, env
//! values. Every store call on them takes the app id; nothing here crosses apps.

use crate::script::name_type;
use crate::ValidationError;

/// Largest kv value, document or env value, as compact JSON/text.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Largest file.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// A kv key: 1–512 bytes, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KvKey(String);

impl KvKey {
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        if input.is_empty() || input.len() > 512 {
            return Err(ValidationError::new("key", "must be 1 to 512 bytes"));
        }
        if input.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "key",
                "must not contain control characters",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

name_type!(
    /// A document collection's name.
    Collection,
    "collection"
);

name_type!(
    /// An env value's name.
    EnvName,
    "name"
);

/// A file path: `a/b/c.txt`, segments of `[A-Za-z0-9_.-]` (not `.` or `..`), no leading
/// or trailing `/`, at most 512 bytes. Never a file system path: blobs are stored under
/// generated names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FilePath(String);

impl FilePath {
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        Self::validate_prefix(input)?;
        if input.is_empty() || input.ends_with('/') {
            return Err(ValidationError::new(
                "path",
                "must be non-empty and not end with '/'",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// For values read back from the database, which were validated when written.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// A list/trigger prefix: the same characters as a path, and may end with `/`.
    pub fn validate_prefix(input: &str) -> Result<(), ValidationError> {
        let err = |m: String| Err(ValidationError::new("path", m));
        if input.len() > 512 {
            return err("must be at most 512 bytes".into());
        }
        if input.starts_with('/') {
            return err("must not start with '/'".into());
        }
        let body = input.strip_suffix('/').unwrap_or(input);
        if body.is_empty() {
            return if input.is_empty() {
                Ok(())
            } else {
                err("must not be '/'".into())
            };
        }
        for seg in body.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." {
                return err(format!("segment {seg:?} is not allowed"));
            }
            if let Some(c) = seg
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            {
                return err(format!(
                    "must not contain {c:?}; allowed: letters, digits, '_', '-', '.', '/'"
                ));
            }
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct KvEntry {
    pub key: String,
    pub value: serde_json::Value,
    /// Unix ms; `None` never expires.
    pub expires_at: Option<i64>,
}

/// A document with its id and collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub id: String,
    pub doc: serde_json::Value,
}

/// Equality filters on top-level fields of a document (all must hold).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocFilter(pub Vec<(String, serde_json::Value)>);

impl DocFilter {
    pub fn parse(map: serde_json::Map<String, serde_json::Value>) -> Result<Self, ValidationError> {
        if map.len() > 16 {
            return Err(ValidationError::new("filter", "at most 16 fields"));
        }
        for k in map.keys() {
            if k.is_empty()
                || k.len() > 64
                || !k
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(ValidationError::new(
                    "filter",
                    format!("field {k:?} must be 1 to 64 letters, digits, '_' or '-'"),
                ));
            }
        }
        Ok(Self(map.into_iter().collect()))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileMeta {
    pub path: String,
    /// The blob's name on disk (under the app's blob directory).
    pub blob: String,
    pub size: u64,
    pub updated_at: i64,
}

/// A file of an app's static site, served on its Host (see `StaticStore`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticFile {
    pub path: FilePath,
    /// The bytes' blob, and precompressed variants' (present only when smaller).
    pub blob: String,
    pub gzip_blob: Option<String>,
    pub br_blob: Option<String>,
    pub size: u64,
    /// Hex SHA-256 of the bytes: the `ETag`, and how a deploy tells an unchanged file.
    pub etag: String,
    pub content_type: String,
    pub updated_at: i64,
}

impl StaticFile {
    /// Every blob the file holds.
    pub fn blobs(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.blob.as_str())
            .chain(self.gzip_blob.as_deref())
            .chain(self.br_blob.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths() {
        FilePath::parse("a/b-c/d.txt").unwrap();
        for bad in [
            "", "/a", "a/", "a//b", "../x", "a/../b", "a/./b", "a b", "a\\b",
        ] {
            assert!(FilePath::parse(bad).is_err(), "{bad}");
        }
        FilePath::validate_prefix("").unwrap();
        FilePath::validate_prefix("img/").unwrap();
        assert!(FilePath::validate_prefix("/").is_err());
    }

    #[test]
    fn kv_keys_and_filters() {
        KvKey::parse("user:1/profile").unwrap();
        assert!(KvKey::parse("").is_err());
        assert!(KvKey::parse("a\nb").is_err());
        let m = serde_json::json!({"a": 1, "b c": 2});
        assert!(DocFilter::parse(m.as_object().unwrap().clone()).is_err());
    }
}
