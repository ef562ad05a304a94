//! Scripts over HTTP: deploy with compile errors, versions and rollback, endpoints on the
//! app's Host, limits that fail a run without hurting the server, logs, triggers and dead
//! letters through the API, a delivery's publish reaching SSE subscribers, and tenant
//! isolation of kv/docs/files/topics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use picloud_core::capability::Capability;
use picloud_store::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::sse::Sse;
use crate::support::{assert_error, send, TestServer};

both_backends!(
    deploy_compile_errors_versions_and_rollback,
    endpoints_answer_on_the_app_host,
    failing_and_runaway_scripts_fail_alone,
    triggers_dead_letters_and_replay_through_the_api,
    a_delivery_can_publish_to_sse_subscribers,
    apps_cannot_reach_each_others_data,
    bad_input_is_rejected_clearly,
    per_app_concurrency_is_capped,
    try_sends_a_request_through_the_apps_routes,
);

impl TestServer {
    pub async fn deploy(&self, app: &str, name: &str, source: &str) -> Value {
        let (status, body) = send(
            self.admin(Method::POST, &format!("/api/v1/apps/{app}/scripts"))
                .json(&json!({"name": name, "source": source})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn route(&self, app: &str, method: &str, path: &str, script: &str) -> Value {
        let (status, body) = send(
            self.admin(Method::POST, &format!("/api/v1/apps/{app}/routes"))
                .json(&json!({"method": method, "path": path, "script": script})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn trigger(&self, app: &str, body: Value) -> Value {
        let (status, body) = send(
            self.admin(Method::POST, &format!("/api/v1/apps/{app}/triggers"))
                .json(&body),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// A request of any method on the app's Host.
    pub fn app_req(&self, slug: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("host", format!("{slug}.localhost:{}", self.port))
    }

    /// Polls until `f` returns `Some`, for up to 10 s.
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(t) = f().await {
                return t;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn deploy_compile_errors_versions_and_rollback(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("demo").await;
    let bad = send(
        s.admin(Method::POST, "/api/v1/apps/demo/scripts")
            .json(&json!({
                "name": "hello", "source": "let x = 1;\nlet y = 2;\nlet z = (;\n"
            })),
    )
    .await;
    assert_eq!(bad.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.1);
    assert_eq!(bad.1["error"]["code"], "compile_error");
    assert_eq!(bad.1["error"]["line"], 3, "{}", bad.1);
    assert!(bad.1["error"]["column"].as_u64().unwrap() > 0);
    let evil = send(
        s.admin(Method::POST, "/api/v1/apps/demo/scripts")
            .json(&json!({
                "name": "hello", "source": r#"eval("1")"#
            })),
    )
    .await;
    assert_eq!(
        evil.0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "eval is refused: {}",
        evil.1
    );
    assert_eq!(s.deploy("demo", "hello", r#""v1""#).await["version"], 1);
    assert_eq!(s.deploy("demo", "hello", r#""v2""#).await["version"], 2);
    s.route("demo", "GET", "/hello", "hello").await;
    let get = || async {
        s.app_req("demo", Method::GET, "/hello")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(get().await, "v2");
    let (status, body) = send(
        s.admin(Method::POST, "/api/v1/apps/demo/scripts/hello/rollback")
            .json(&json!({"version": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["active_version"].clone(),
            body["latest_version"].clone()
        ),
        (json!(1), json!(2))
    );
    assert_eq!(
        get().await,
        "v1",
        "rollback takes effect at once on this node"
    );
    let (_, detail) = send(s.admin(Method::GET, "/api/v1/apps/demo/scripts/hello")).await;
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2);
    assert_eq!(detail["versions"][1]["source"], r#""v2""#);
    let (_, v1) = send(s.admin(Method::GET, "/api/v1/apps/demo/scripts/hello/versions/1")).await;
    assert_eq!(v1["source"], r#""v1""#);
    assert_error(
        &send(
            s.admin(Method::POST, "/api/v1/apps/demo/scripts/hello/rollback")
                .json(&json!({"version": 9})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, list) = send(s.admin(Method::GET, "/api/v1/apps/demo/scripts")).await;
    assert_eq!(list["scripts"][0]["name"], "hello");
    // A read-only key lists but cannot deploy.
    let reader = s.key(&[Capability::AppRead], None).await;
    assert_eq!(
        send(s.with_key(&reader, Method::GET, "/api/v1/apps/demo/scripts"))
            .await
            .0,
        StatusCode::OK
    );
    assert_error(
        &send(
            s.with_key(&reader, Method::POST, "/api/v1/apps/demo/scripts")
                .json(&json!({"name": "x", "source": "1"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

async fn endpoints_answer_on_the_app_host(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("shop").await;
    s.deploy("shop", "item", r#"
        let n = kv::get("views:" + request.params.id);
        let n = if n == () { 1 } else { n + 1 };
        kv::set("views:" + request.params.id, n);
        #{ status: 201, headers: #{ "x-views": n.to_string() },
           body: #{ id: request.params.id, q: request.query.q, views: n, sent: request.json, method: request.method } }
    "#).await;
    s.deploy(
        "shop",
        "text",
        r#"#{ body: "hi " + request.headers["x-name"] }"#,
    )
    .await;
    s.deploy("shop", "plain", r#"[1, 2.5, "x", (), true]"#)
        .await;
    s.route("shop", "POST", "/items/:id", "item").await;
    s.route("shop", "GET", "/text", "text").await;
    s.route("shop", "ANY", "/plain", "plain").await;
    let res = s
        .app_req("shop", Method::POST, "/items/42?q=hat")
        .json(&json!({"a": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["x-views"], "1");
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"id": "42", "q": "hat", "views": 1, "sent": {"a": 1}, "method": "POST"})
    );
    let again = s
        .app_req("shop", Method::POST, "/items/42")
        .send()
        .await
        .unwrap();
    assert_eq!(again.headers()["x-views"], "2");
    let text = s
        .app_req("shop", Method::GET, "/text")
        .header("x-name", "ann")
        .send()
        .await
        .unwrap();
    assert_eq!(text.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(text.text().await.unwrap(), "hi ann");
    let plain = s
        .app_req("shop", Method::DELETE, "/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(
        plain.json::<Value>().await.unwrap(),
        json!([1, 2.5, "x", null, true])
    );
    // No route: 404; wrong method: 404; `/` still describes the app.
    assert_error(
        &send(s.app_req("shop", Method::GET, "/nope")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &send(s.app_req("shop", Method::GET, "/items/42")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(send(s.app_get("shop", "/")).await.1["app"], "shop");
    // Each run is in the logs with its route, version and operations.
    let logs = s
        .eventually("logs", || async {
            let (_, l) = send(s.admin(Method::GET, "/api/v1/apps/shop/logs")).await;
            (l["invocations"].as_array().unwrap().len() >= 4).then_some(l)
        })
        .await;
    let first = logs["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["script"] == "item")
        .unwrap()
        .clone();
    assert_eq!(first["source"], "route:POST /items/:id");
    assert_eq!(first["outcome"], "ok");
    assert!(first["operations"].as_i64().unwrap() > 0);
    // Deleting the route stops it answering.
    let (_, routes) = send(s.admin(Method::GET, "/api/v1/apps/shop/routes")).await;
    let id = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/text")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        send(s.admin(Method::DELETE, &format!("/api/v1/apps/shop/routes/{id}")))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(s.app_req("shop", Method::GET, "/text")).await.0,
        StatusCode::NOT_FOUND
    );
}

async fn failing_and_runaway_scripts_fail_alone(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("bad").await;
    s.create_app("good").await;
    let (status, body) = send(
        s.admin(Method::PUT, "/api/v1/apps/bad/runtime")
            .json(&json!({
                "limits": {"timeout_ms": 300, "max_operations": 50_000_000}, "max_concurrency": 4
            })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["effective_limits"]["timeout_ms"], 300);
    for (name, src) in [
        ("loop", "loop { }"),
        ("recurse", "fn f(n) { f(n + 1) } f(0)"),
        ("alloc", r#"let s = "xx"; loop { s += s; }"#),
        ("throw", r#"log::warn("about to fail"); throw "boom""#),
    ] {
        s.deploy("bad", name, src).await;
        s.route("bad", "GET", &format!("/{name}"), name).await;
    }
    s.deploy("good", "ok", r#""fine""#).await;
    s.route("good", "GET", "/", "ok").await;
    for name in ["loop", "recurse", "alloc", "throw"] {
        let started = Instant::now();
        let got = send(s.app_req("bad", Method::GET, &format!("/{name}"))).await;
        assert_error(&got, StatusCode::INTERNAL_SERVER_ERROR, "script_error");
        assert!(
            !got.1["error"]["message"].as_str().unwrap().contains("boom"),
            "no script internals to clients"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name} stopped by its limits"
        );
        // The server and the other app are fine.
        assert_eq!(send(s.app_get("good", "/")).await.1, "fine");
    }
    let logs = s
        .eventually("4 failed runs", || async {
            let (_, l) = send(s.admin(Method::GET, "/api/v1/apps/bad/logs")).await;
            (l["invocations"].as_array().unwrap().len() >= 4).then_some(l)
        })
        .await;
    let by = |script: &str| {
        logs["invocations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["script"] == script)
            .unwrap()
            .clone()
    };
    assert!(
        by("loop")["error"]
            .as_str()
            .unwrap()
            .starts_with("TimeLimit"),
        "{}",
        by("loop")
    );
    assert!(
        by("recurse")["error"]
            .as_str()
            .unwrap()
            .starts_with("CallDepth"),
        "{}",
        by("recurse")
    );
    assert!(
        by("alloc")["error"]
            .as_str()
            .unwrap()
            .starts_with("SizeLimit"),
        "{}",
        by("alloc")
    );
    let thrown = by("throw");
    assert!(thrown["error"].as_str().unwrap().contains("boom"));
    assert_eq!(thrown["logs"][0]["level"], "warn");
    assert_eq!(thrown["logs"][0]["message"], "about to fail");
    assert!(
        send(
            s.admin(Method::PUT, "/api/v1/apps/bad/runtime")
                .json(&json!({"limits": {"timeout_ms": 0}, "max_concurrency": 4}))
        )
        .await
        .0 == StatusCode::UNPROCESSABLE_ENTITY
    );
    assert!(
        send(
            s.admin(Method::PUT, "/api/v1/apps/bad/runtime")
                .json(&json!({"limits": {"bogus": 1}, "max_concurrency": 4}))
        )
        .await
        .0 == StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn triggers_dead_letters_and_replay_through_the_api(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("jobs").await;
    s.deploy("jobs", "work", r#"if kv::get("heal") == () { throw "broken" } kv::set("done:" + event.delivery_id, event.message); "ok""#).await;
    s.deploy(
        "jobs",
        "on_dead",
        r#"kv::set("dead:" + event.delivery_id, event.trigger); "ok""#,
    )
    .await;
    s.deploy("jobs", "heal", r#"kv::set("heal", true); kv::get("heal")"#)
        .await;
    s.deploy("jobs", "peek", r#"kv::list(request.query.prefix)"#)
        .await;
    s.route("jobs", "POST", "/heal", "heal").await;
    s.route("jobs", "GET", "/peek", "peek").await;
    let work = s
        .trigger(
            "jobs",
            json!({"kind": "pubsub", "script": "work", "filter": {"topic": "q"},
        "retry": {"max_attempts": 2, "base_delay_ms": 10, "max_delay_ms": 20}}),
        )
        .await;
    s.trigger(
        "jobs",
        json!({"kind": "dead_letter", "script": "on_dead", "filter": {"trigger": work["id"]}}),
    )
    .await;
    let (_, listed) = send(s.admin(Method::GET, "/api/v1/apps/jobs/triggers")).await;
    assert_eq!(listed["triggers"].as_array().unwrap().len(), 2);
    assert_eq!(listed["triggers"][0]["retry"]["max_attempts"], 2);
    s.publish("jobs", "q", json!({"n": 1})).await;
    let peek = |prefix: &'static str| {
        let s = &s;
        async move {
            let v = s
                .app_req("jobs", Method::GET, &format!("/peek?prefix={prefix}"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap();
            let arr = v.as_array().cloned().unwrap_or_default();
            (!arr.is_empty()).then_some(arr)
        }
    };
    let dead = s
        .eventually("dead_letter handler ran", || peek("dead:"))
        .await;
    assert_eq!(dead[0]["value"], work["id"]);
    let (_, letters) = send(s.admin(Method::GET, "/api/v1/apps/jobs/dead-letters")).await;
    let letter = &letters["dead_letters"][0];
    let waiting = || async {
        let (status, body) =
            send(s.admin(Method::GET, "/api/v1/apps/jobs/dead-letters/count")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["waiting"].as_u64().unwrap()
    };
    let listed = letters["dead_letters"].as_array().unwrap().len() as u64;
    assert!(listed >= 1);
    assert_eq!(waiting().await, listed);
    assert_eq!(letter["attempts"], 2);
    assert!(letter["last_error"].as_str().unwrap().contains("broken"));
    assert_eq!(letter["event"]["message"], json!({"n": 1}));
    assert_eq!(
        s.app_req("jobs", Method::POST, "/heal")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let (status, replayed) = send(s.admin(
        Method::POST,
        &format!(
            "/api/v1/apps/jobs/dead-letters/{}/replay",
            letter["id"].as_str().unwrap()
        ),
    ))
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{replayed}");
    assert_eq!(waiting().await, listed - 1);
    let done = s
        .eventually("replayed delivery ran", || peek("done:"))
        .await;
    assert_eq!(
        done[0]["key"],
        format!("done:{}", replayed["delivery_id"].as_str().unwrap())
    );
    assert_eq!(done[0]["value"], json!({"n": 1}));
    assert_error(
        &send(s.admin(Method::POST, "/api/v1/apps/jobs/dead-letters/nope/replay")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Disable, patch, delete.
    let id = work["id"].as_str().unwrap();
    let (status, patched) = send(
        s.admin(Method::PATCH, &format!("/api/v1/apps/jobs/triggers/{id}"))
            .json(&json!({"enabled": false})),
    )
    .await;
    assert_eq!(
        (status, patched["enabled"].clone()),
        (StatusCode::OK, json!(false))
    );
    assert_eq!(
        send(s.admin(Method::DELETE, &format!("/api/v1/apps/jobs/triggers/{id}")))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(s.admin(Method::GET, &format!("/api/v1/apps/jobs/triggers/{id}")))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

async fn a_delivery_can_publish_to_sse_subscribers(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("chat").await;
    s.create_topic("chat", "out", true, "public").await;
    s.deploy("chat", "relay", r#"pubsub::publish("out", #{ echo: event.message.text, from: event.topic, seq: event.seq }); "ok""#).await;
    s.trigger(
        "chat",
        json!({"kind": "pubsub", "script": "relay", "filter": {"topic": "in"}}),
    )
    .await;
    let mut sse = Sse::open(s.app_get("chat", "/realtime/topics/out"))
        .await
        .unwrap();
    sse.start_position(Duration::from_secs(5)).await;
    s.publish("chat", "in", json!({"text": "hello"})).await;
    let got = sse.messages(1).await;
    let data = got[0].json();
    assert_eq!(data["topic"], "out");
    assert_eq!(
        data["message"],
        json!({"echo": "hello", "from": "in", "seq": 1})
    );
}

async fn apps_cannot_reach_each_others_data(backend: Backend) {
    let s = TestServer::start(backend).await;
    for app in ["alice", "mallory"] {
        s.create_app(app).await;
        s.create_topic(app, "news", true, "public").await;
    }
    s.deploy("alice", "write", r#"kv::set("secret", 42); docs::insert("notes", #{ text: "private" }); files::put("f.txt", "alice's"); "ok""#).await;
    s.route("alice", "POST", "/write", "write").await;
    s.deploy("mallory", "snoop", r#"
        pubsub::publish("news", #{ from: "mallory" });
        #{ kv: kv::get("secret"), keys: kv::list(""), docs: docs::find("notes", #{}), file: files::get("f.txt"), files: files::list("") }
    "#).await;
    s.route("mallory", "GET", "/snoop", "snoop").await;
    assert_eq!(
        s.app_req("alice", Method::POST, "/write")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let mut alice_news = Sse::open(s.app_get("alice", "/realtime/topics/news"))
        .await
        .unwrap();
    alice_news.start_position(Duration::from_secs(5)).await;
    let snooped: Value = s
        .app_req("mallory", Method::GET, "/snoop")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        snooped,
        json!({"kv": null, "keys": [], "docs": [], "file": null, "files": []})
    );
    // mallory's publish went to mallory's topic, not alice's.
    assert!(alice_news
        .next_event(Duration::from_millis(500))
        .await
        .is_none());
    assert_eq!(s.store_oldest("mallory", "news").await, Some(1));
    assert_eq!(s.store_oldest("alice", "news").await, None);
    // An app-bound admin key cannot deploy into another app.
    let bound = s
        .key(
            &[Capability::ScriptDeploy],
            Some(s.create_app("third").await["id"].as_str().unwrap()),
        )
        .await;
    assert_error(
        &send(
            s.with_key(&bound, Method::POST, "/api/v1/apps/alice/scripts")
                .json(&json!({"name": "x", "source": "1"})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

async fn bad_input_is_rejected_clearly(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("demo").await;
    let post = |path: &str, body: Value| s.admin(Method::POST, path).json(&body);
    for (body, field) in [
        (json!({"name": "bad name", "source": "1"}), "name"),
        (json!({"name": "", "source": "1"}), "name"),
    ] {
        let got = send(post("/api/v1/apps/demo/scripts", body)).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
        assert!(got.1["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(field));
    }
    let huge = "1;".repeat(200_000);
    assert_error(
        &send(post(
            "/api/v1/apps/demo/scripts",
            json!({"name": "big", "source": huge}),
        ))
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let malformed = send(
        s.admin(Method::POST, "/api/v1/apps/demo/scripts")
            .header("content-type", "application/json")
            .body("{\"name\":"),
    )
    .await;
    assert_eq!(malformed.0, StatusCode::BAD_REQUEST, "{}", malformed.1);
    for body in [
        json!({"method": "BREW", "path": "/x", "script": "s"}),
        json!({"method": "GET", "path": "x", "script": "s"}),
        json!({"method": "GET", "path": "/realtime/x", "script": "s"}),
        json!({"method": "GET", "path": "/a/:id/:id", "script": "s"}),
    ] {
        assert_error(
            &send(post("/api/v1/apps/demo/routes", body)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        );
    }
    s.route("demo", "GET", "/x", "s").await;
    assert_error(
        &send(post(
            "/api/v1/apps/demo/routes",
            json!({"method": "GET", "path": "/x", "script": "t"}),
        ))
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    for body in [
        json!({"kind": "nope", "script": "s", "filter": {}}),
        json!({"kind": "cron", "script": "s", "filter": {"schedule": "every day"}}),
        json!({"kind": "pubsub", "script": "s", "filter": {}}),
        json!({"kind": "pubsub", "script": "s", "filter": {"topic": "a b"}}),
        json!({"kind": "kv", "script": "s", "filter": {"prefix": "x", "extra": 1}}),
        json!({"kind": "kv", "script": "s", "retry": {"max_attempts": 0, "base_delay_ms": 1, "max_delay_ms": 1}}),
        json!({"kind": "dead_letter", "script": "s", "filter": {"trigger": "no-such-trigger"}}),
    ] {
        assert_error(
            &send(post("/api/v1/apps/demo/triggers", body.clone())).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        );
    }
    // A route whose script was never deployed fails as a script error, not a crash.
    assert_error(
        &send(s.app_req("demo", Method::GET, "/x")).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "script_error",
    );
    // An endpoint request body over the limit.
    s.deploy("demo", "echo", "request.body.len()").await;
    s.route("demo", "POST", "/echo", "echo").await;
    let big = s
        .app_req("demo", Method::POST, "/echo")
        .body(vec![b'x'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let ok = s
        .app_req("demo", Method::POST, "/echo")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.json::<Value>().await.unwrap(), 5);
}

async fn per_app_concurrency_is_capped(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.create_app("slow").await;
    s.create_app("other").await;
    let (status, body) = send(
        s.admin(Method::PUT, "/api/v1/apps/slow/runtime")
            .json(&json!({
                "limits": {"max_operations": 100_000_000}, "max_concurrency": 1
            })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Holds the app's only run slot for 2.5 s; a waiting request gives up after 2 s.
    s.deploy(
        "slow",
        "wait",
        "let t = time::now_ms(); while time::now_ms() - t < 2500 {} \"done\"",
    )
    .await;
    s.route("slow", "GET", "/wait", "wait").await;
    s.deploy("other", "ok", r#""fine""#).await;
    s.route("other", "GET", "/", "ok").await;
    let first = tokio::spawn(send(s.app_req("slow", Method::GET, "/wait")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = tokio::spawn(send(s.app_req("slow", Method::GET, "/wait")));
    // Another app is not held up by this one's cap.
    let started = Instant::now();
    assert_eq!(send(s.app_get("other", "/")).await.1, "fine");
    assert!(started.elapsed() < Duration::from_secs(2));
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(first, (StatusCode::OK, json!("done")));
    assert_error(&second, StatusCode::SERVICE_UNAVAILABLE, "busy");
}

/// One tenant cannot take the node's script threads from the others: its own keys cannot
/// raise its concurrency past the instance cap (only an InstanceAdmin key can), and while
/// it saturates its runs, another app's route is answered at once. The other app's
/// latencies are printed (the test asserts answers, not timings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_app_cannot_starve_another() {
    let s = TestServer::start(Backend::Sqlite).await;
    let a = s.create_app("greedy").await;
    s.create_app("polite").await;
    let own_key = s
        .key(&[Capability::ScriptDeploy], Some(a["id"].as_str().unwrap()))
        .await;
    let raise = |key: &str| {
        s.with_key(key, Method::PUT, "/api/v1/apps/greedy/runtime")
            .json(&json!({"limits": {"timeout_ms": 60_000}, "max_concurrency": 1024}))
    };
    let refused = send(raise(&own_key)).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let within = send(
        s.with_key(&own_key, Method::PUT, "/api/v1/apps/greedy/runtime")
            .json(&json!({"limits": {}, "max_concurrency": 16})),
    )
    .await;
    assert_eq!(within.0, StatusCode::OK, "{}", within.1);
    s.deploy(
        "greedy",
        "burn",
        "let t = time::now_ms(); while time::now_ms() - t < 300 {} \"burnt\"",
    )
    .await;
    s.route("greedy", "GET", "/burn", "burn").await;
    s.deploy("polite", "ok", r#""fine""#).await;
    s.route("polite", "GET", "/", "ok").await;

    let stop = Arc::new(AtomicBool::new(false));
    let burners: Vec<_> = (0..48)
        .map(|_| {
            let (req, stop) = (s.app_req("greedy", Method::GET, "/burn"), stop.clone());
            tokio::spawn(async move {
                let mut ok = 0;
                while !stop.load(Ordering::Relaxed) {
                    let r = req.try_clone().unwrap().send().await.unwrap();
                    ok += usize::from(r.status() == StatusCode::OK);
                }
                ok
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        assert_eq!(
            send(s.app_get("polite", "/")).await,
            (StatusCode::OK, json!("fine"))
        );
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut burnt = 0;
    for b in burners {
        burnt += b.await.unwrap();
    }
    assert!(burnt > 16, "the greedy app was saturated ({burnt} runs)");
    latencies.sort();
    println!(
        "polite app while greedy saturates: p50 {:?}, p99 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
        latencies.last().unwrap()
    );
}

/// `POST …/scripts/check` answers what a deploy would refuse, stores nothing, and is open
/// to keys that may read the app; the name `check` cannot be deployed, so the path stays
/// the checker's.
#[tokio::test]
async fn the_check_answers_what_a_deploy_would_refuse() {
    let s = TestServer::start(Backend::Sqlite).await;
    let demo = s.create_app("demo").await;
    let check = |key: &str, source: &str| {
        s.with_key(key, Method::POST, "/api/v1/apps/demo/scripts/check")
            .json(&json!({ "source": source }))
    };
    let (status, body) = send(check(&s.admin_key, "let x = 1;\nx + 1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"diagnostics": []}));

    let source = "let x = 1;\nlet y = 2;\nlet z = (;\n";
    let (_, body) = send(check(&s.admin_key, source)).await;
    let d = &body["diagnostics"][0];
    assert_eq!(body["diagnostics"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(d["severity"], "error");
    let refused = send(
        s.admin(Method::POST, "/api/v1/apps/demo/scripts")
            .json(&json!({"name": "hello", "source": source})),
    )
    .await;
    assert_eq!(refused.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (d["line"].clone(), d["column"].clone()),
        (
            refused.1["error"]["line"].clone(),
            refused.1["error"]["column"].clone()
        )
    );
    assert!(refused.1["error"]["message"]
        .as_str()
        .unwrap()
        .ends_with(d["message"].as_str().unwrap()));

    let (_, body) = send(check(&s.admin_key, "eval(\"1\")")).await;
    assert!(
        body["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("eval"),
        "{body}"
    );
    let (_, listed) = send(s.admin(Method::GET, "/api/v1/apps/demo/scripts")).await;
    assert_eq!(listed["scripts"], json!([]), "nothing stored");

    let reader = s
        .key(&[Capability::AppRead], Some(demo["id"].as_str().unwrap()))
        .await;
    assert_eq!(send(check(&reader, "1")).await.0, StatusCode::OK);
    let publisher = s.key(&[Capability::AppPublish], None).await;
    assert_error(
        &send(check(&publisher, "1")).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &send(check("pk_nope_nope", "1")).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let bad = send(s.admin_post_text("/api/v1/apps/demo/scripts/check", "{\"source\": 1}")).await;
    assert_eq!(bad.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.1);

    let reserved = send(
        s.admin(Method::POST, "/api/v1/apps/demo/scripts")
            .json(&json!({"name": "check", "source": "1"})),
    )
    .await;
    assert_error(&reserved, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
}

/// `POST …/try` answers what a client on the app's Host would get (status, headers, body),
/// with the record of the run: the same record the app's logs then hold. A failing script
/// answers 500 with its error in the record; no route, no record; invalid HTTP is a 422;
/// only a key that may deploy scripts may run them this way.
async fn try_sends_a_request_through_the_apps_routes(backend: Backend) {
    let s = TestServer::start(backend).await;
    let shop = s.create_app("shop").await;
    s.deploy("shop", "item", r#"
        log::info("item " + request.params.id);
        #{ status: 201, headers: #{ "x-q": request.query.q },
           body: #{ id: request.params.id, sent: request.json, method: request.method, who: request.headers["x-who"] } }
    "#).await;
    s.deploy(
        "shop",
        "boom",
        r#"log::warn("about to fail"); throw "no stock""#,
    )
    .await;
    s.route("shop", "POST", "/items/:id", "item").await;
    s.route("shop", "GET", "/boom", "boom").await;
    let try_it = |key: &str, body: Value| {
        s.with_key(key, Method::POST, "/api/v1/apps/shop/try")
            .json(&body)
    };

    let (status, got) = send(try_it(
        &s.admin_key,
        json!({"method": "post", "path": "/items/42", "query": "q=hat",
               "headers": {"x-who": "ann", "content-type": "application/json"}, "body": "{\"a\": 1}"}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["status"], 201, "{got}");
    assert!(got["headers"]
        .as_array()
        .unwrap()
        .contains(&json!(["x-q", "hat"])));
    let body: Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"id": "42", "sent": {"a": 1}, "method": "POST", "who": "ann"})
    );
    let run = &got["invocation"];
    assert_eq!(run["script"], "item");
    assert_eq!(run["source"], "route:POST /items/:id");
    assert_eq!(run["outcome"], "ok");
    assert_eq!(run["logs"][0]["message"], "item 42", "{run}");

    // The app's logs hold the same run.
    let stored = s
        .eventually("the try's record", || async {
            let (_, logs) = send(s.admin(Method::GET, "/api/v1/apps/shop/logs")).await;
            logs["invocations"]
                .as_array()
                .and_then(|l| l.first().cloned())
        })
        .await;
    for field in [
        "script",
        "version",
        "source",
        "outcome",
        "logs",
        "duration_us",
    ] {
        assert_eq!(stored[field], run[field], "{field}");
    }

    let (_, failed) = send(try_it(
        &s.admin_key,
        json!({"method": "GET", "path": "/boom"}),
    ))
    .await;
    assert_eq!(failed["status"], 500, "{failed}");
    assert_eq!(failed["invocation"]["outcome"], "error");
    assert!(failed["invocation"]["error"]
        .as_str()
        .unwrap()
        .contains("no stock"));
    assert_eq!(failed["invocation"]["logs"][0]["message"], "about to fail");

    let (_, none) = send(try_it(
        &s.admin_key,
        json!({"method": "GET", "path": "/nope"}),
    ))
    .await;
    assert_eq!(none["status"], 404, "{none}");
    assert_eq!(none["invocation"], Value::Null);

    for bad in [
        json!({"method": "G ET", "path": "/"}),
        json!({"method": "GET", "path": "items"}),
        json!({"method": "GET", "path": "/a?b=1"}),
        json!({"method": "GET", "path": "/", "headers": {"bad name": "x"}}),
        json!({"method": "GET", "path": "/", "headers": {"x-a": "line\nbreak"}}),
        json!({"method": "GET", "path": "/", "extra": 1}),
    ] {
        let got = send(try_it(&s.admin_key, bad.clone())).await;
        assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {}", got.1);
    }

    let reader = s
        .key(&[Capability::AppRead], Some(shop["id"].as_str().unwrap()))
        .await;
    assert_error(
        &send(try_it(&reader, json!({"method": "GET", "path": "/boom"}))).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let other = s.create_app("other").await;
    let other = s
        .key(
            &[Capability::ScriptDeploy],
            Some(other["id"].as_str().unwrap()),
        )
        .await;
    assert_error(
        &send(try_it(&other, json!({"method": "GET", "path": "/boom"}))).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// The check and the deploy judge a script under the app's own limits: a nesting the
/// defaults refuse deploys once the app allows it, and runs.
#[tokio::test]
async fn the_check_uses_the_apps_limits() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.create_app("deep").await;
    let nested = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    let check = || {
        s.admin(Method::POST, "/api/v1/apps/deep/scripts/check")
            .json(&json!({ "source": nested }))
    };
    let (_, before) = send(check()).await;
    assert_eq!(
        before["diagnostics"].as_array().unwrap().len(),
        1,
        "{before}"
    );
    let (status, _) = send(
        s.admin(Method::PUT, "/api/v1/apps/deep/runtime")
            .json(&json!({"limits": {"max_expr_depth": 256}, "max_concurrency": 4})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, after) = send(check()).await;
    assert_eq!(after, json!({"diagnostics": []}));
    s.deploy("deep", "nested", &nested).await;
    s.route("deep", "GET", "/n", "nested").await;
    let res = s.app_req("deep", Method::GET, "/n").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), json!(1));
}
