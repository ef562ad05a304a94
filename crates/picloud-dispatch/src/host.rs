//! The script SDK's host side: every call made by a running script, bound to that
//! script's app. Scripts run on a script thread (`pool.rs`), so each call blocks on the async store
//! through the runtime handle. Errors are short and safe to show to the tenant (they
//! become catchable script errors); internal details go to the server log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use picloud_core::data::{
    Collection, DocFilter, EnvName, FilePath, KvKey, MAX_FILE_BYTES, MAX_VALUE_BYTES,
};
use picloud_core::ids::AppId;
use picloud_core::store::Store;
use picloud_core::topic::TopicName;
use picloud_core::{StoreError, ValidationError};
use picloud_realtime::Realtime;
use picloud_runtime::{FileInfo, HostResult};
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::blobs::BlobStore;

/// What every app's host shares.
#[derive(Clone)]
pub struct HostDeps {
    pub store: Arc<dyn Store>,
    pub realtime: Realtime,
    pub blobs: BlobStore,
    /// Woken after writes that may have queued deliveries.
    pub outbox_written: Arc<Notify>,
}

pub struct AppHost {
    app: AppId,
    deps: Arc<HostDeps>,
    handle: Handle,
    /// Set when a call was refused because the database is full, so an endpoint whose
    /// script failed on it answers 507 like every other durable write.
    storage_full: AtomicBool,
}

impl AppHost {
    pub fn new(app: AppId, deps: Arc<HostDeps>, handle: Handle) -> Self {
        Self {
            app,
            deps,
            handle,
            storage_full: AtomicBool::new(false),
        }
    }

    /// Whether a call of this run was refused for lack of space.
    pub fn hit_storage_full(&self) -> bool {
        self.storage_full.load(Ordering::Relaxed)
    }

    fn store_err(&self, e: StoreError) -> String {
        match e {
            StoreError::Conflict(what) => format!("{what} already exists"),
            StoreError::Unavailable(_) => "storage unavailable, try again".into(),
            StoreError::StorageFull(_) => {
                self.storage_full.store(true, Ordering::Relaxed);
                "storage full: nothing was stored, try again later".into()
            }
            StoreError::Internal(reason) => {
                tracing::error!(%reason, "store error in a script call");
                "internal storage error".into()
            }
        }
    }

    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.handle.block_on(f)
    }

    fn store(&self) -> &dyn Store {
        &*self.deps.store
    }

    fn wrote(&self) {
        self.deps.outbox_written.notify_one();
    }
}

fn invalid(e: ValidationError) -> String {
    e.to_string()
}

fn compact(value: &Value, what: &str) -> HostResult<String> {
    let s = value.to_string();
    if s.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "{what} is {} bytes; the limit is {MAX_VALUE_BYTES}",
            s.len()
        ));
    }
    Ok(s)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn with_id(mut doc: Value, id: &str) -> Value {
    if let Value::Object(m) = &mut doc {
        m.insert("_id".into(), Value::String(id.to_owned()));
    }
    doc
}

const MAX_LIST: u32 = 1000;

impl picloud_runtime::Host for AppHost {
    fn kv_get(&self, key: &str) -> HostResult<Option<Value>> {
        let key = KvKey::parse(key).map_err(invalid)?;
        let e = self
            .block(self.store().kv_get(&self.app, &key, now_ms()))
            .map_err(|e| self.store_err(e))?;
        Ok(e.map(|e| e.value))
    }

    fn kv_set(&self, key: &str, value: Value, ttl_secs: Option<i64>) -> HostResult<()> {
        let key = KvKey::parse(key).map_err(invalid)?;
        let expires_at = match ttl_secs {
            None => None,
            Some(t) if (1..=10 * 365 * 86_400).contains(&t) => Some(now_ms() + t * 1000),
            Some(_) => return Err("ttl_secs must be 1 to 315360000".into()),
        };
        let v = compact(&value, "the value")?;
        self.block(self.store().kv_set(&self.app, &key, &v, expires_at))
            .map_err(|e| self.store_err(e))?;
        self.wrote();
        Ok(())
    }

    fn kv_delete(&self, key: &str) -> HostResult<bool> {
        let key = KvKey::parse(key).map_err(invalid)?;
        let d = self
            .block(self.store().kv_delete(&self.app, &key))
            .map_err(|e| self.store_err(e))?;
        self.wrote();
        Ok(d)
    }

    fn kv_list(&self, prefix: &str, limit: u32) -> HostResult<Vec<(String, Value)>> {
        let entries = self
            .block(
                self.store()
                    .kv_list(&self.app, prefix, limit.min(MAX_LIST), now_ms()),
            )
            .map_err(|e| self.store_err(e))?;
        Ok(entries.into_iter().map(|e| (e.key, e.value)).collect())
    }

    fn docs_insert(&self, collection: &str, doc: Value) -> HostResult<String> {
        let c = Collection::parse(collection).map_err(invalid)?;
        if !doc.is_object() {
            return Err("a document must be a map".into());
        }
        let id = picloud_core::ids::new_id();
        let d = compact(&doc, "the document")?;
        self.block(self.store().docs_insert(&self.app, &c, &id, &d))
            .map_err(|e| self.store_err(e))?;
        self.wrote();
        Ok(id)
    }

    fn docs_get(&self, collection: &str, id: &str) -> HostResult<Option<Value>> {
        let c = Collection::parse(collection).map_err(invalid)?;
        let d = self
            .block(self.store().docs_get(&self.app, &c, id))
            .map_err(|e| self.store_err(e))?;
        Ok(d.map(|d| with_id(d.doc, &d.id)))
    }

    fn docs_update(&self, collection: &str, id: &str, doc: Value) -> HostResult<bool> {
        let c = Collection::parse(collection).map_err(invalid)?;
        let mut doc = doc;
        match &mut doc {
            Value::Object(m) => {
                m.remove("_id");
            }
            _ => return Err("a document must be a map".into()),
        }
        let d = compact(&doc, "the document")?;
        let updated = self
            .block(self.store().docs_update(&self.app, &c, id, &d))
            .map_err(|e| self.store_err(e))?;
        self.wrote();
        Ok(updated)
    }

    fn docs_delete(&self, collection: &str, id: &str) -> HostResult<bool> {
        let c = Collection::parse(collection).map_err(invalid)?;
        let d = self
            .block(self.store().docs_delete(&self.app, &c, id))
            .map_err(|e| self.store_err(e))?;
        self.wrote();
        Ok(d)
    }

    fn docs_find(
        &self,
        collection: &str,
        filter: serde_json::Map<String, Value>,
        limit: u32,
    ) -> HostResult<Vec<Value>> {
        let c = Collection::parse(collection).map_err(invalid)?;
        let f = DocFilter::parse(filter).map_err(invalid)?;
        let docs = self
            .block(
                self.store()
                    .docs_find(&self.app, &c, &f, limit.min(MAX_LIST)),
            )
            .map_err(|e| self.store_err(e))?;
        Ok(docs.into_iter().map(|d| with_id(d.doc, &d.id)).collect())
    }

    fn files_put(&self, path: &str, bytes: Vec<u8>) -> HostResult<()> {
        let p = FilePath::parse(path).map_err(invalid)?;
        if bytes.len() > MAX_FILE_BYTES {
            return Err(format!("a file may be at most {MAX_FILE_BYTES} bytes"));
        }
        let blobs = &self.deps.blobs;
        let blob = blobs.put(&self.app, &bytes).map_err(|e| {
            tracing::error!(error = %e, "blob write failed");
            "file storage error".to_string()
        })?;
        match self.block(
            self.store()
                .file_put(&self.app, &p, &blob, bytes.len() as u64),
        ) {
            Ok(old) => {
                if let Some(old) = old {
                    let _ = blobs.delete(&self.app, &old);
                }
                self.wrote();
                Ok(())
            }
            Err(e) => {
                let _ = blobs.delete(&self.app, &blob);
                Err(self.store_err(e))
            }
        }
    }

    fn files_get(&self, path: &str) -> HostResult<Option<Vec<u8>>> {
        let p = FilePath::parse(path).map_err(invalid)?;
        let Some(meta) = self
            .block(self.store().file_get(&self.app, &p))
            .map_err(|e| self.store_err(e))?
        else {
            return Ok(None);
        };
        match self.deps.blobs.get(&self.app, &meta.blob) {
            Ok(b) => Ok(Some(b)),
            // Replaced between the metadata read and the file read: the path was written
            // again, so read the new version's metadata once more.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let meta = self
                    .block(self.store().file_get(&self.app, &p))
                    .map_err(|e| self.store_err(e))?;
                match meta {
                    None => Ok(None),
                    Some(m) => self
                        .deps
                        .blobs
                        .get(&self.app, &m.blob)
                        .map(Some)
                        .map_err(|e| {
                            tracing::error!(error = %e, "blob read failed");
                            "file storage error".to_string()
                        }),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "blob read failed");
                Err("file storage error".into())
            }
        }
    }

    fn files_delete(&self, path: &str) -> HostResult<bool> {
        let p = FilePath::parse(path).map_err(invalid)?;
        let old = self
            .block(self.store().file_delete(&self.app, &p))
            .map_err(|e| self.store_err(e))?;
        if let Some(blob) = &old {
            let _ = self.deps.blobs.delete(&self.app, blob);
            self.wrote();
        }
        Ok(old.is_some())
    }

    fn files_list(&self, prefix: &str) -> HostResult<Vec<FileInfo>> {
        FilePath::validate_prefix(prefix).map_err(invalid)?;
        let files = self
            .block(self.store().file_list(&self.app, prefix, MAX_LIST))
            .map_err(|e| self.store_err(e))?;
        Ok(files
            .into_iter()
            .map(|f| FileInfo {
                path: f.path,
                size: f.size,
                updated_at_ms: f.updated_at,
            })
            .collect())
    }

    fn publish(&self, topic: &str, message: Value) -> HostResult<i64> {
        let t = TopicName::parse(topic).map_err(invalid)?;
        let payload = self.payload(&message)?;
        let p = self
            .block(
                self.deps
                    .realtime
                    .publisher
                    .publish(self.app.clone(), t, payload),
            )
            .map_err(|e| self.store_err(e))?;
        Ok(p.seq)
    }

    fn publish_ephemeral(&self, topic: &str, message: Value) -> HostResult<()> {
        let t = TopicName::parse(topic).map_err(invalid)?;
        let payload = self.payload(&message)?;
        self.deps
            .realtime
            .publisher
            .publish_ephemeral(self.app.clone(), t, payload);
        Ok(())
    }

    fn subscriber_token(
        &self,
        topics: Vec<String>,
        ttl_secs: i64,
        subject: Option<String>,
    ) -> HostResult<String> {
        use picloud_realtime::token::MintError;
        self.block(
            self.deps
                .realtime
                .tokens
                .mint(&self.app, &topics, ttl_secs, subject, &[]),
        )
        .map(|(token, _)| token)
        .map_err(|e| match e {
            MintError::Validation(v) => v.to_string(),
            MintError::Store(s) => self.store_err(s),
            MintError::Internal(reason) => {
                tracing::error!(%reason, "token signing failed in a script");
                "token signing failed".into()
            }
        })
    }

    fn env_get(&self, name: &str) -> HostResult<Option<String>> {
        let n = EnvName::parse(name).map_err(invalid)?;
        self.block(self.store().get_env(&self.app, &n))
            .map_err(|e| self.store_err(e))
    }
}

impl AppHost {
    fn payload(&self, message: &Value) -> HostResult<Arc<str>> {
        let s = message.to_string();
        let max = self.deps.realtime.config.max_payload_bytes;
        if s.len() > max {
            return Err(format!("a message may be at most {max} bytes"));
        }
        Ok(Arc::from(s))
    }
}
