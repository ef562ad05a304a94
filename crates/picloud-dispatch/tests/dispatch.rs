//! The dispatcher end to end over a real database (SQLite and PostgreSQL): every trigger
//! kind delivers to a handler script that writes a marker; retries back off and end in
//! dead letters that fan out and replay; a killed dispatcher's delivery runs again after
//! its lease with one success recorded; two dispatchers on one database fire each cron
//! time once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use picloud_core::app::{NewApp, Slug};
use picloud_core::ids::AppId;
use picloud_core::script::ScriptName;
use picloud_core::store::*;
use picloud_core::trigger::{NewTrigger, RetryPolicy, TriggerFilter, TriggerKind};
use picloud_dispatch::{BlobStore, Dispatcher, DispatcherConfig, HostDeps, Invoker, InvokerConfig};
use picloud_runtime::Input;
use picloud_store::testing::TestDatabase;
use picloud_store::{Backend, SqlStore};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(picloud_store::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(picloud_store::Backend::Postgres).await;
            }
        }
    )*};
}

both_backends!(
    kv_trigger_delivers,
    docs_trigger_delivers,
    files_trigger_delivers,
    cron_trigger_delivers,
    pubsub_trigger_delivers,
    dead_letter_trigger_delivers,
    failing_handler_backs_off_then_dead_letters_and_replays,
    killed_dispatcher_delivery_reruns_after_lease_with_one_success,
    a_run_longer_than_its_lease_is_renewed_not_rerun,
);

struct Harness {
    store: SqlStore,
    app: AppId,
    invoker: Invoker,
    wake: Arc<Notify>,
    realtime: picloud_realtime::Realtime,
    stop: CancellationToken,
    _db: TestDatabase,
}

impl Harness {
    async fn new(backend: Backend) -> Self {
        let db = TestDatabase::new(backend).await;
        let store = db.open().await;
        Self::on(db, store).await
    }

    async fn on(db: TestDatabase, store: SqlStore) -> Self {
        let app = store
            .create_app(NewApp {
                slug: Slug::parse("app-one").unwrap(),
                name: "one".into(),
            })
            .await
            .unwrap()
            .id;
        let stop = CancellationToken::new();
        let dyn_store: Arc<dyn Store> = Arc::new(store.clone());
        let realtime = picloud_realtime::Realtime::start(
            dyn_store.clone(),
            Default::default(),
            stop.clone(),
            None,
        )
        .await;
        let wake = Arc::new(Notify::new());
        let invoker = Invoker::new(
            HostDeps {
                store: dyn_store,
                realtime: realtime.clone(),
                blobs: BlobStore::new(db.data_dir().join("files")),
                outbox_written: wake.clone(),
            },
            InvokerConfig::default(),
        );
        Self {
            store,
            app,
            invoker,
            wake,
            realtime,
            stop,
            _db: db,
        }
    }

    fn config() -> DispatcherConfig {
        DispatcherConfig {
            poll: Duration::from_millis(50),
            cron_every: Duration::from_millis(200),
            grace: Duration::from_millis(200),
            ..Default::default()
        }
    }

    /// Starts a dispatcher; it runs until the returned token is cancelled.
    fn dispatcher(
        &self,
        config: DispatcherConfig,
    ) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let stop = CancellationToken::new();
        let d = Dispatcher::new(
            self.invoker.clone(),
            config,
            vec![self.wake.clone(), self.realtime.publisher.committed()],
        );
        (stop.clone(), tokio::spawn(d.run(stop)))
    }

    async fn deploy(&self, name: &str, source: &str) {
        picloud_runtime::compile(source).expect("test script compiles");
        self.store
            .deploy_script(&self.app, &ScriptName::parse(name).unwrap(), source)
            .await
            .unwrap();
    }

    async fn trigger(&self, kind: TriggerKind, filter: Value, retry: RetryPolicy) -> String {
        self.trigger_on("handler", kind, filter, retry).await
    }

    async fn trigger_on(
        &self,
        script: &str,
        kind: TriggerKind,
        filter: Value,
        retry: RetryPolicy,
    ) -> String {
        self.store
            .create_trigger(
                &self.app,
                NewTrigger {
                    script: ScriptName::parse(script).unwrap(),
                    filter: TriggerFilter::parse(kind, &filter).unwrap(),
                    enabled: true,
                    retry,
                },
            )
            .await
            .unwrap()
            .id
    }

    /// Runs `source` once as a script of the app (the way an endpoint would).
    async fn run(&self, source: &str) -> Value {
        self.deploy("writer", source).await;
        self.invoker
            .script_changed(&self.app, &ScriptName::parse("writer").unwrap())
            .await;
        let ran = self
            .invoker
            .invoke(
                &self.app,
                &ScriptName::parse("writer").unwrap(),
                "test".into(),
                Input::Request(json!({})),
                None,
                None,
            )
            .await
            .unwrap();
        ran.outcome.result.expect("writer script ran")
    }

    /// The markers the handler wrote (`marker:<delivery id>` → event), waiting up to 10 s
    /// for at least `n`.
    async fn markers(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self
                .store
                .kv_list(&self.app, "marker:", 1000, 0)
                .await
                .unwrap();
            if got.len() >= n || Instant::now() > deadline {
                return got.into_iter().map(|e| e.value).collect();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The handler every delivery test uses: the event, stored under its delivery id.
const MARKER: &str = r#"kv::set("marker:" + event.delivery_id, event); "ok""#;

async fn kv_trigger_delivers(backend: Backend) {
    let h = Harness::new(backend).await;
    h.deploy("handler", MARKER).await;
    h.trigger(
        TriggerKind::Kv,
        json!({"prefix": "in:"}),
        RetryPolicy::default(),
    )
    .await;
    let _d = h.dispatcher(Harness::config());
    h.run(r#"kv::set("in:1", #{n: 1}); kv::set("other", 2); kv::delete("in:1");"#)
        .await;
    let m = h.markers(2).await;
    assert_eq!(m.len(), 2, "{m:?}");
    let ops: Vec<_> = m
        .iter()
        .map(|e| {
            (
                e["kind"].clone(),
                e["key"].clone(),
                e["op"].clone(),
                e["attempt"].clone(),
            )
        })
        .collect();
    assert!(
        ops.contains(&(json!("kv"), json!("in:1"), json!("set"), json!(1))),
        "{m:?}"
    );
    assert!(
        ops.contains(&(json!("kv"), json!("in:1"), json!("delete"), json!(1))),
        "{m:?}"
    );
    assert!(m.iter().any(|e| e["value"] == json!({"n": 1})));
}

async fn docs_trigger_delivers(backend: Backend) {
    let h = Harness::new(backend).await;
    h.deploy("handler", MARKER).await;
    h.trigger(
        TriggerKind::Docs,
        json!({"collection": "orders"}),
        RetryPolicy::default(),
    )
    .await;
    let _d = h.dispatcher(Harness::config());
    let id = h
        .run(r#"let id = docs::insert("orders", #{total: 5}); docs::insert("other", #{}); id"#)
        .await;
    let m = h.markers(1).await;
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["collection"], "orders");
    assert_eq!(m[0]["id"], id);
    assert_eq!(m[0]["op"], "insert");
    assert_eq!(m[0]["doc"]["total"], 5);
}

async fn files_trigger_delivers(backend: Backend) {
    let h = Harness::new(backend).await;
    h.deploy("handler", MARKER).await;
    h.trigger(
        TriggerKind::Files,
        json!({"prefix": "img/"}),
        RetryPolicy::default(),
    )
    .await;
    let _d = h.dispatcher(Harness::config());
    let back = h.run(r#"files::put("img/a.txt", "hello"); files::put("doc/b", "x"); files::get_text("img/a.txt")"#).await;
    assert_eq!(back, "hello");
    let m = h.markers(1).await;
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(
        (
            m[0]["path"].clone(),
            m[0]["size"].clone(),
            m[0]["op"].clone()
        ),
        (json!("img/a.txt"), json!(5), json!("put"))
    );
}

async fn cron_trigger_delivers(backend: Backend) {
    let h = Harness::new(backend).await;
    h.deploy("handler", MARKER).await;
    h.trigger(
        TriggerKind::Cron,
        json!({"schedule": "* * * * * *"}),
        RetryPolicy::default(),
    )
    .await;
    let _d = h.dispatcher(Harness::config());
    let m = h.markers(2).await;
    assert!(m.len() >= 2, "{m:?}");
    assert_eq!(m[0]["kind"], "cron");
    assert_eq!(m[0]["schedule"], "* * * * * *");
    let mut times: Vec<&str> = m
        .iter()
        .map(|e| e["scheduled_for"].as_str().unwrap())
        .collect();
    let n = times.len();
    times.sort();
    times.dedup();
    assert_eq!(times.len(), n, "each scheduled time once");
}

async fn pubsub_trigger_delivers(backend: Backend) {
    let h = Harness::new(backend).await;
    h.deploy("handler", MARKER).await;
    h.trigger(
        TriggerKind::Pubsub,
        json!({"topic": "orders.*"}),
        RetryPolicy::default(),
    )
    .await;
    let _d = h.dispatcher(Harness::config());
    let seq = h.run(r#"pubsub::publish("orders.new", #{id: 7}); pubsub::publish("orders", 1); pubsub::publish_ephemeral("orders.x", 2); pubsub::publish("orders.new", #{id: 8})"#).await;
    assert_eq!(seq, 2);
    let m = h.markers(2).await;
    assert_eq!(m.len(), 2, "durable publishes to orders.* only: {m:?}");
    let mut got: Vec<(i64, i64)> = m
        .iter()
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["message"]["id"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![(1, 7), (2, 8)]);
    assert!(m.iter().all(|e| e["topic"] == "orders.new"));
}

async fn dead_letter_trigger_delivers(backend: Backend) {
    let h = Harness::new(backend).await;
    h.deploy("failing", r#"throw "always fails""#).await;
    h.deploy("handler", MARKER).await;
    let failing = h
        .trigger_on(
            "failing",
            TriggerKind::Kv,
            json!({"prefix": "job:"}),
            RetryPolicy {
                max_attempts: 1,
                base_delay_ms: 1,
                max_delay_ms: 1,
            },
        )
        .await;
    h.trigger(
        TriggerKind::DeadLetter,
        json!({"trigger": failing}),
        RetryPolicy::default(),
    )
    .await;
    let _d = h.dispatcher(Harness::config());
    h.run(r#"kv::set("job:1", "x")"#).await;
    let m = h.markers(1).await;
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["kind"], "dead_letter");
    assert_eq!(m[0]["trigger"], failing.as_str());
    assert_eq!(m[0]["attempts"], 1);
    assert!(
        m[0]["error"].as_str().unwrap().contains("always fails"),
        "{m:?}"
    );
    assert_eq!(m[0]["event"]["key"], "job:1");
}

async fn failing_handler_backs_off_then_dead_letters_and_replays(backend: Backend) {
    let h = Harness::new(backend).await;
    // Fails until the kv flag `heal` is set; records each attempt's time.
    h.deploy(
        "flaky",
        r#"kv::set("attempt:" + event.attempt, time::now_ms());
           if kv::get("heal") == () { throw "not yet: attempt " + event.attempt }
           kv::set("healed:" + event.delivery_id, event.attempt); "ok""#,
    )
    .await;
    h.deploy("handler", MARKER).await;
    let retry = RetryPolicy {
        max_attempts: 4,
        base_delay_ms: 200,
        max_delay_ms: 10_000,
    };
    let flaky = h
        .trigger_on(
            "flaky",
            TriggerKind::Pubsub,
            json!({"topic": "jobs"}),
            retry,
        )
        .await;
    h.trigger(TriggerKind::DeadLetter, json!({}), RetryPolicy::default())
        .await;
    let _d = h.dispatcher(Harness::config());
    h.run(r#"pubsub::publish("jobs", #{work: 1})"#).await;
    // The dead_letter handler's marker appears once all 4 attempts failed.
    let m = h.markers(1).await;
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["attempts"], 4);
    assert_eq!(m[0]["trigger"], flaky.as_str());
    assert!(
        m[0]["error"]
            .as_str()
            .unwrap()
            .contains("not yet: attempt 4"),
        "{m:?}"
    );
    // Attempts were spaced by at least half the exponential backoff (equal jitter never
    // comes earlier): 100, 200, 400 ms.
    let mut at = Vec::new();
    for i in 1..=4 {
        let e = h
            .store
            .kv_get(
                &h.app,
                &picloud_core::data::KvKey::parse(&format!("attempt:{i}")).unwrap(),
                0,
            )
            .await
            .unwrap();
        at.push(e.expect("attempt recorded").value.as_i64().unwrap());
    }
    for (i, w) in at.windows(2).enumerate() {
        let min = retry.backoff_ms(i as u32 + 1) / 2;
        assert!(
            w[1] - w[0] >= min,
            "gap {} after attempt {} must be ≥ {min} ms ({at:?})",
            w[1] - w[0],
            i + 1
        );
    }
    let letters = h.store.list_dead_letters(&h.app, 10).await.unwrap();
    let letter = letters
        .iter()
        .find(|l| l.trigger_id == flaky)
        .expect("dead letter listed");
    assert_eq!(letter.attempts, 4);
    // Replay after healing: runs again and succeeds on its first new attempt.
    h.run(r#"kv::set("heal", true)"#).await;
    let delivery = h
        .store
        .replay_dead_letter(&h.app, &letter.id)
        .await
        .unwrap()
        .unwrap();
    h.wake.notify_one();
    let deadline = Instant::now() + Duration::from_secs(10);
    let key = picloud_core::data::KvKey::parse(&format!("healed:{delivery}")).unwrap();
    loop {
        if let Some(e) = h.store.kv_get(&h.app, &key, 0).await.unwrap() {
            assert_eq!(e.value, 1, "the replay starts over at attempt 1");
            break;
        }
        assert!(Instant::now() < deadline, "replayed delivery never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn killed_dispatcher_delivery_reruns_after_lease_with_one_success(backend: Backend) {
    let h = Harness::new(backend).await;
    // Slow on its first attempt (long enough to be killed mid-run), quick afterwards.
    h.deploy(
        "handler",
        r#"kv::set("started:" + event.attempt, true);
           if event.attempt == 1 { let t = time::now_ms(); while time::now_ms() - t < 1500 {} }
           kv::set("marker:" + event.delivery_id, event); "ok""#,
    )
    .await;
    h.trigger(
        TriggerKind::Kv,
        json!({"prefix": "in:"}),
        RetryPolicy::default(),
    )
    .await;
    let lease = DispatcherConfig {
        lease: Duration::from_millis(1500),
        grace: Duration::ZERO,
        ..Harness::config()
    };
    let (stop_a, task_a) = h.dispatcher(lease.clone());
    h.run(r#"kv::set("in:1", 1)"#).await;
    // Wait for attempt 1 to be running, then kill dispatcher A: its task is aborted and
    // its running script cancelled, like a process that died.
    let started = picloud_core::data::KvKey::parse("started:1").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.store.kv_get(&h.app, &started, 0).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "attempt 1 never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task_a.abort();
    h.invoker.cancel_running();
    stop_a.cancel();
    // A fresh invoker for B (A's is cancelled for good), on the same database.
    let h2 = Harness {
        invoker: Invoker::new(h.invoker.deps().clone(), InvokerConfig::default()),
        store: h.store.clone(),
        app: h.app.clone(),
        wake: h.wake.clone(),
        realtime: h.realtime.clone(),
        stop: CancellationToken::new(),
        _db: TestDatabase::new(Backend::Sqlite).await,
    };
    let killed_at = Instant::now();
    let _b = h2.dispatcher(lease);
    let m = h.markers(1).await;
    if m.is_empty() {
        h.invoker.flush_records().await;
        h2.invoker.flush_records().await;
        let runs = h.store.list_invocations(&h.app, None, 100).await.unwrap();
        let rows = picloud_store::testing::outbox_rows(&h.store, &h.app).await;
        panic!(
            "no marker; runs {runs:?}; outbox {rows:?}; due {:?}",
            h.store.next_due().await
        );
    }
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(
        m[0]["attempt"], 2,
        "the re-run is the second attempt of the same delivery"
    );
    assert!(
        killed_at.elapsed() >= Duration::from_millis(500),
        "not before the lease ran out"
    );
    h.invoker.flush_records().await;
    h2.invoker.flush_records().await;
    let delivery = m[0]["delivery_id"].as_str().unwrap().to_owned();
    let runs = h.store.list_invocations(&h.app, None, 100).await.unwrap();
    let ok: Vec<_> = runs
        .iter()
        .filter(|r| r.delivery_id.as_deref() == Some(&delivery) && r.outcome == "ok")
        .collect();
    assert_eq!(ok.len(), 1, "exactly one success recorded: {runs:?}");
    // The completer marks the delivery done after the run that wrote the marker returns.
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.store.next_due().await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_run_longer_than_its_lease_is_renewed_not_rerun(backend: Backend) {
    let h = Harness::new(backend).await;
    // Each run takes 2 s, four times the lease: only renewal keeps a second dispatcher
    // from taking it over.
    h.deploy(
        "handler",
        r#"kv::set("run:" + event.attempt, true);
           let t = time::now_ms(); while time::now_ms() - t < 2000 {}
           kv::set("marker:" + event.delivery_id, event); "ok""#,
    )
    .await;
    h.trigger(
        TriggerKind::Kv,
        json!({"prefix": "in:"}),
        RetryPolicy::default(),
    )
    .await;
    // The busy wait takes millions of operations.
    h.store
        .set_runtime(
            &h.app,
            &picloud_core::dispatch::AppRuntime {
                limits: json!({"max_operations": 100_000_000}),
                max_concurrency: 16,
            },
        )
        .await
        .unwrap();
    let cfg = DispatcherConfig {
        lease: Duration::from_millis(500),
        ..Harness::config()
    };
    let _a = h.dispatcher(cfg.clone());
    let _b = h.dispatcher(cfg);
    h.run(r#"kv::set("in:1", 1)"#).await;
    let m = h.markers(1).await;
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["attempt"], 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = picloud_core::data::KvKey::parse("run:2").unwrap();
    assert!(
        h.store.kv_get(&h.app, &second, 0).await.unwrap().is_none(),
        "a renewed lease was taken over"
    );
}

/// Two dispatchers on one PostgreSQL database: each cron time fires once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_fire_each_cron_time_once_on_postgres() {
    let h = Harness::new(Backend::Postgres).await;
    h.deploy(
        "handler",
        r#"kv::set("marker:" + event.scheduled_for, event.delivery_id); "ok""#,
    )
    .await;
    h.trigger(
        TriggerKind::Cron,
        json!({"schedule": "* * * * * *"}),
        RetryPolicy::default(),
    )
    .await;
    let cfg = DispatcherConfig {
        cron_every: Duration::from_millis(50),
        ..Harness::config()
    };
    let (stop_a, a) = h.dispatcher(cfg.clone());
    let (stop_b, b) = h.dispatcher(cfg);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    stop_a.cancel();
    stop_b.cancel();
    let _ = tokio::join!(a, b);
    h.invoker.flush_records().await;
    let runs = h.store.list_invocations(&h.app, None, 1000).await.unwrap();
    let markers = h.store.kv_list(&h.app, "marker:", 1000, 0).await.unwrap();
    assert!(markers.len() >= 3, "{markers:?}");
    // One successful run per scheduled time: as many runs as distinct times.
    let ok = runs.iter().filter(|r| r.outcome == "ok").count();
    assert_eq!(
        ok,
        markers.len(),
        "runs {ok} vs distinct times {}",
        markers.len()
    );
}
