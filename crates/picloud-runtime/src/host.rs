//! The I/O boundary: everything a script can do outside the engine goes
//! through a [`Host`] the server implements for the calling app.

use serde::Serialize;

/// `Err` carries a message for the script; it surfaces as a runtime error the
/// script can catch with `try`/`catch`, so it must not leak server internals.
pub type HostResult<T> = Result<T, String>;

/// One stored file, as listed by `files::list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileInfo {
    pub path: String,
    pub size: u64,
    pub updated_at_ms: i64,
}

/// Services available to a running script. Every call is already bound to
/// the calling app: implementations scope keys, collections, paths and topics
/// themselves, so a script cannot name another tenant's data.
///
/// Methods are called synchronously from the thread running the script (a
/// blocking thread in the server). They may block, but the run's wall-clock
/// limit is only checked between script operations, so a slow call delays
/// the time-limit error until it returns.
pub trait Host: Send + Sync {
    fn kv_get(&self, key: &str) -> HostResult<Option<serde_json::Value>>;
    fn kv_set(&self, key: &str, value: serde_json::Value, ttl_secs: Option<i64>) -> HostResult<()>;
    fn kv_delete(&self, key: &str) -> HostResult<bool>;
    fn kv_list(&self, prefix: &str, limit: u32) -> HostResult<Vec<(String, serde_json::Value)>>;

    fn docs_insert(&self, collection: &str, doc: serde_json::Value) -> HostResult<String>;
    fn docs_get(&self, collection: &str, id: &str) -> HostResult<Option<serde_json::Value>>;
    fn docs_update(&self, collection: &str, id: &str, doc: serde_json::Value) -> HostResult<bool>;
    fn docs_delete(&self, collection: &str, id: &str) -> HostResult<bool>;
    fn docs_find(
        &self,
        collection: &str,
        filter: serde_json::Map<String, serde_json::Value>,
        limit: u32,
    ) -> HostResult<Vec<serde_json::Value>>;

    fn files_put(&self, path: &str, bytes: Vec<u8>) -> HostResult<()>;
    fn files_get(&self, path: &str) -> HostResult<Option<Vec<u8>>>;
    fn files_delete(&self, path: &str) -> HostResult<bool>;
    fn files_list(&self, prefix: &str) -> HostResult<Vec<FileInfo>>;

    fn publish(&self, topic: &str, message: serde_json::Value) -> HostResult<i64>;
    fn publish_ephemeral(&self, topic: &str, message: serde_json::Value) -> HostResult<()>;
    fn subscriber_token(
        &self,
        topics: Vec<String>,
        ttl_secs: i64,
        subject: Option<String>,
    ) -> HostResult<String>;

    fn env_get(&self, name: &str) -> HostResult<Option<String>>;
}
