//! An in-memory `Host` for the runtime's tests, plus helpers to run scripts.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use picloud_runtime::{
    compile, run, run_with_cancel, ErrorKind, FileInfo, Host, HostResult, Input, Limits, Outcome,
};
use serde_json::{Map, Value};

/// Topics, ttl and subject of one `subscriber_token` call.
pub type TokenRequest = (Vec<String>, i64, Option<String>);

/// Keys, collections, paths or topics named "fail" make the host return an
/// error; "panic" makes it panic.
#[derive(Default)]
pub struct MemHost {
    pub kv: Mutex<BTreeMap<String, (Value, Option<i64>)>>,
    pub docs: Mutex<BTreeMap<String, BTreeMap<String, Value>>>,
    pub files: Mutex<BTreeMap<String, Vec<u8>>>,
    pub published: Mutex<Vec<(String, Value, bool)>>,
    pub tokens: Mutex<Vec<TokenRequest>>,
    pub env: BTreeMap<String, String>,
    next_id: AtomicI64,
    next_seq: AtomicI64,
}

fn check(name: &str) -> HostResult<()> {
    match name {
        "fail" => Err(format!("host refused '{name}'")),
        "panic" => panic!("host panicked on purpose"),
        _ => Ok(()),
    }
}

impl MemHost {
    pub fn new() -> Arc<MemHost> {
        let mut host = MemHost::default();
        host.env.insert("GREETING".into(), "hello".into());
        Arc::new(host)
    }
}

impl Host for MemHost {
    fn kv_get(&self, key: &str) -> HostResult<Option<Value>> {
        check(key)?;
        Ok(self.kv.lock().unwrap().get(key).map(|(v, _)| v.clone()))
    }
    fn kv_set(&self, key: &str, value: Value, ttl_secs: Option<i64>) -> HostResult<()> {
        check(key)?;
        self.kv
            .lock()
            .unwrap()
            .insert(key.into(), (value, ttl_secs));
        Ok(())
    }
    fn kv_delete(&self, key: &str) -> HostResult<bool> {
        check(key)?;
        Ok(self.kv.lock().unwrap().remove(key).is_some())
    }
    fn kv_list(&self, prefix: &str, limit: u32) -> HostResult<Vec<(String, Value)>> {
        check(prefix)?;
        Ok(self
            .kv
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .take(limit as usize)
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect())
    }
    fn docs_insert(&self, collection: &str, doc: Value) -> HostResult<String> {
        check(collection)?;
        let id = format!("d{}", self.next_id.fetch_add(1, Ordering::SeqCst) + 1);
        let mut doc = doc;
        doc["_id"] = Value::String(id.clone());
        self.docs
            .lock()
            .unwrap()
            .entry(collection.into())
            .or_default()
            .insert(id.clone(), doc);
        Ok(id)
    }
    fn docs_get(&self, collection: &str, id: &str) -> HostResult<Option<Value>> {
        check(collection)?;
        Ok(self
            .docs
            .lock()
            .unwrap()
            .get(collection)
            .and_then(|c| c.get(id).cloned()))
    }
    fn docs_update(&self, collection: &str, id: &str, doc: Value) -> HostResult<bool> {
        check(collection)?;
        let mut docs = self.docs.lock().unwrap();
        match docs.get_mut(collection).and_then(|c| c.get_mut(id)) {
            Some(existing) => {
                let mut doc = doc;
                doc["_id"] = Value::String(id.into());
                *existing = doc;
                Ok(true)
            }
            None => Ok(false),
        }
    }
    fn docs_delete(&self, collection: &str, id: &str) -> HostResult<bool> {
        check(collection)?;
        Ok(self
            .docs
            .lock()
            .unwrap()
            .get_mut(collection)
            .is_some_and(|c| c.remove(id).is_some()))
    }
    fn docs_find(
        &self,
        collection: &str,
        filter: Map<String, Value>,
        limit: u32,
    ) -> HostResult<Vec<Value>> {
        check(collection)?;
        let docs = self.docs.lock().unwrap();
        Ok(docs
            .get(collection)
            .map(|c| {
                c.values()
                    .filter(|d| filter.iter().all(|(k, v)| d.get(k) == Some(v)))
                    .take(limit as usize)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
    fn files_put(&self, path: &str, bytes: Vec<u8>) -> HostResult<()> {
        check(path)?;
        self.files.lock().unwrap().insert(path.into(), bytes);
        Ok(())
    }
    fn files_get(&self, path: &str) -> HostResult<Option<Vec<u8>>> {
        check(path)?;
        Ok(self.files.lock().unwrap().get(path).cloned())
    }
    fn files_delete(&self, path: &str) -> HostResult<bool> {
        check(path)?;
        Ok(self.files.lock().unwrap().remove(path).is_some())
    }
    fn files_list(&self, prefix: &str) -> HostResult<Vec<FileInfo>> {
        check(prefix)?;
        Ok(self
            .files
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(p, b)| FileInfo {
                path: p.clone(),
                size: b.len() as u64,
                updated_at_ms: 1_700_000_000_000,
            })
            .collect())
    }
    fn publish(&self, topic: &str, message: Value) -> HostResult<i64> {
        check(topic)?;
        self.published
            .lock()
            .unwrap()
            .push((topic.into(), message, true));
        Ok(self.next_seq.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn publish_ephemeral(&self, topic: &str, message: Value) -> HostResult<()> {
        check(topic)?;
        self.published
            .lock()
            .unwrap()
            .push((topic.into(), message, false));
        Ok(())
    }
    fn subscriber_token(
        &self,
        topics: Vec<String>,
        ttl_secs: i64,
        subject: Option<String>,
    ) -> HostResult<String> {
        for topic in &topics {
            check(topic)?;
        }
        let token = format!(
            "tok:{}:{ttl_secs}:{}",
            topics.join(","),
            subject.as_deref().unwrap_or("-")
        );
        self.tokens
            .lock()
            .unwrap()
            .push((topics, ttl_secs, subject));
        Ok(token)
    }
    fn env_get(&self, name: &str) -> HostResult<Option<String>> {
        check(name)?;
        Ok(self.env.get(name).cloned())
    }
}

pub fn run_with(source: &str, input: Input, host: Arc<MemHost>, limits: &Limits) -> Outcome {
    let script = compile(source).unwrap_or_else(|e| panic!("compile failed: {e}"));
    run(&script, input, host, limits)
}

pub fn run_src(source: &str) -> Outcome {
    run_with(
        source,
        Input::Request(Value::Null),
        MemHost::new(),
        &Limits::default(),
    )
}

pub fn run_limited(source: &str, limits: Limits) -> Outcome {
    run_with(source, Input::Request(Value::Null), MemHost::new(), &limits)
}

pub fn ok(source: &str) -> Value {
    let outcome = run_src(source);
    outcome
        .result
        .unwrap_or_else(|e| panic!("script failed ({:?}): {}", e.kind, e.message))
}

/// Runs and expects an error of `kind`; returns its message.
pub fn err(outcome: Outcome, kind: ErrorKind) -> String {
    match outcome.result {
        Ok(v) => panic!("expected {kind:?}, script returned {v}"),
        Err(e) => {
            assert_eq!(e.kind, kind, "unexpected error: {}", e.message);
            e.message
        }
    }
}

pub fn cancel_flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

pub fn run_cancellable(source: &str, limits: &Limits, cancel: &Arc<AtomicBool>) -> Outcome {
    let script = compile(source).unwrap();
    run_with_cancel(
        &script,
        Input::Event(Value::Null),
        MemHost::new(),
        limits,
        cancel,
    )
}
