//! A real server on a random port over a throwaway database, and request helpers.

use std::sync::Arc;

use picloud_api::{ApiConfig, AppState};
use picloud_core::admin_key;
use picloud_core::capability::Capability;
use picloud_core::ids::AppId;
use picloud_core::store::AdminKeyStore;
use picloud_store::testing::TestDatabase;
use picloud_store::{Backend, SqlStore};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Declares `mod name { sqlite, postgres }`, each running `name(backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(picloud_store::Backend::Sqlite).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(picloud_store::Backend::Postgres).await;
            }
        }
    )*};
}

pub struct TestServer {
    pub port: u16,
    pub admin_key: String,
    pub store: SqlStore,
    pub client: reqwest::Client,
    /// Kept so the database outlives the server.
    pub _db: Option<TestDatabase>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, ApiConfig::default()).await
    }

    pub async fn start_with(backend: Backend, config: ApiConfig) -> Self {
        let db = TestDatabase::new(backend).await;
        let store = db.open().await;
        Self::serve(db, store, config).await
    }

    /// Serves `store` (which may reach `db` some other way, e.g. through a proxy).
    pub async fn serve(db: TestDatabase, store: SqlStore, config: ApiConfig) -> Self {
        let admin_key = create_key(&store, &[Capability::InstanceAdmin], None).await;
        Self::serve_with(db, store, config, realtime_config(), admin_key).await
    }

    pub async fn serve_with(
        db: TestDatabase,
        store: SqlStore,
        config: ApiConfig,
        realtime: picloud_realtime::RealtimeConfig,
        admin_key: String,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = CancellationToken::new();
        let store_dyn: Arc<dyn picloud_core::store::Store> = Arc::new(store.clone());
        // As `picloud serve` does: the recorder before anything takes a metric handle.
        picloud_api::metrics::handle();
        let realtime =
            picloud_realtime::Realtime::start(store_dyn.clone(), realtime, stop.clone(), None)
                .await;
        let outbox_written = Arc::new(tokio::sync::Notify::new());
        let invoker = picloud_dispatch::Invoker::new(
            picloud_dispatch::HostDeps {
                store: store_dyn.clone(),
                realtime: realtime.clone(),
                blobs: picloud_dispatch::BlobStore::new(db.data_dir().join("files")),
                outbox_written: outbox_written.clone(),
            },
            picloud_dispatch::InvokerConfig::default(),
        );
        let dispatcher = picloud_dispatch::Dispatcher::new(
            invoker.clone(),
            picloud_dispatch::DispatcherConfig {
                poll: std::time::Duration::from_millis(100),
                grace: std::time::Duration::from_secs(1),
                ..Default::default()
            },
            vec![outbox_written, realtime.publisher.committed()],
        );
        tokio::spawn(dispatcher.run(stop.clone()));
        let router = picloud_api::build(AppState::new(store_dyn, config, realtime, invoker));
        let wait = stop.clone();
        let task = tokio::spawn(picloud_api::serve(listener, router, async move {
            wait.cancelled().await
        }));
        Self {
            port,
            admin_key,
            store,
            client: reqwest::Client::new(),
            _db: Some(db),
            stop,
            task: Some(task),
        }
    }

    /// Stops this server (gracefully: streams are told to reconnect) and starts a new one on
    /// the same database, on a new port, with fresh in-memory state.
    pub async fn restart(mut self) -> Self {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
        }
        self.store.close().await;
        let db = self._db.take().expect("database");
        let store = db.open().await;
        let key = self.admin_key.clone();
        Self::serve_with(db, store, ApiConfig::default(), realtime_config(), key).await
    }

    /// Stops the server as a signal stops `picloud serve`, and waits up to 10 s for it to
    /// finish; `true` if it did.
    pub async fn shut_down(&mut self) -> bool {
        self.stop.cancel();
        match self.task.take() {
            Some(task) => tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .is_ok(),
            None => true,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A request to the control plane (Host `localhost`) with no key.
    pub fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("host", format!("localhost:{}", self.port))
    }

    /// A request to the control plane with the instance admin key.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.with_key(&self.admin_key, method, path)
    }

    /// An admin `POST` of `body` as written, labelled JSON (for bodies `json()` cannot
    /// express: whitespace, key order, malformed text).
    pub fn admin_post_text(&self, path: &str, body: impl Into<reqwest::Body>) -> RequestBuilder {
        self.admin(Method::POST, path)
            .header("content-type", "application/json")
            .body(body)
    }

    pub fn with_key(&self, key: &str, method: Method, path: &str) -> RequestBuilder {
        self.anon(method, path).bearer_auth(key)
    }

    /// A GET on an arbitrary Host (the data plane).
    pub fn on_host(&self, host: &str, path: &str) -> RequestBuilder {
        self.client.get(self.url(path)).header("host", host)
    }

    pub async fn create_app(&self, slug: &str) -> Value {
        let (status, body) = send(
            self.admin(Method::POST, "/api/v1/apps")
                .json(&json!({ "slug": slug })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn key(&self, caps: &[Capability], app: Option<&str>) -> String {
        create_key(&self.store, caps, app.map(|a| AppId(a.to_owned()))).await
    }
}

/// Realtime settings for tests: short heartbeats and warnings so tests can observe them.
impl TestServer {
    /// SQLite, app `demo`, public topic `firehose`, and a hub channel of 16 frames: a
    /// reader that stalls falls out of it almost at once (slow-consumer tests).
    pub async fn firehose() -> Self {
        let db = TestDatabase::new(Backend::Sqlite).await;
        let store = db.open().await;
        let key = create_key(&store, &[Capability::InstanceAdmin], None).await;
        let rt = picloud_realtime::RealtimeConfig {
            channel_capacity: 16,
            // Its stalled subscribers read again later, however long a slow machine takes
            // to publish past them: not dropped meanwhile.
            send_timeout: std::time::Duration::from_secs(600),
            ..realtime_config()
        };
        let s = Self::serve_with(db, store, ApiConfig::default(), rt, key).await;
        s.create_app("demo").await;
        s.create_topic("demo", "firehose", true, "public").await;
        s
    }
}

/// API settings with a 300 ms request deadline, for tests of clients too slow to send.
pub fn short_deadline() -> ApiConfig {
    ApiConfig {
        request_timeout: std::time::Duration::from_millis(300),
        ..ApiConfig::default()
    }
}

pub fn realtime_config() -> picloud_realtime::RealtimeConfig {
    picloud_realtime::RealtimeConfig {
        heartbeat: std::time::Duration::from_secs(1),
        token_warning: std::time::Duration::from_secs(2),
        prune_every: std::time::Duration::from_millis(200),
        ..Default::default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn create_key(store: &SqlStore, caps: &[Capability], app: Option<AppId>) -> String {
    let issued = admin_key::issue(caps.to_vec(), app, "test".into()).unwrap();
    store.create_admin_key((&issued).into()).await.unwrap();
    issued.plaintext
}

/// Sends and returns the status and the JSON body (`Null` when empty).
pub async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let res = req.send().await.expect("request");
    let status = res.status();
    let bytes = res.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, body)
}

/// Asserts an error response: status and stable code.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    assert!(got.1["error"]["message"].is_string(), "{}", got.1);
}

/// Sends raw bytes over TCP and returns the response's status line and body.
pub async fn raw_http(port: u16, request: &[u8]) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

impl TestServer {
    /// Creates a topic; `auth` is `public` or `token`.
    pub async fn create_topic(&self, app: &str, name: &str, external: bool, auth: &str) -> Value {
        let (status, body) = send(
            self.admin(Method::POST, &format!("/api/v1/apps/{app}/topics"))
                .json(&json!({
                    "name": name, "external_subscribable": external, "auth_mode": auth
                })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Publishes durably and returns the seq.
    pub async fn publish(&self, app: &str, topic: &str, message: Value) -> i64 {
        let (status, body) = send(
            self.admin(
                Method::POST,
                &format!("/api/v1/apps/{app}/topics/{topic}/publish"),
            )
            .json(&message),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["seq"].as_i64().unwrap()
    }

    pub async fn mint(&self, app: &str, topics: &[&str], ttl_secs: i64) -> String {
        let (status, body) = send(
            self.admin(Method::POST, &format!("/api/v1/apps/{app}/tokens"))
                .json(&json!({
                    "topics": topics, "ttl_secs": ttl_secs
                })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// A GET on the app's data plane (`<slug>.localhost`).
    pub fn app_get(&self, slug: &str, path: &str) -> RequestBuilder {
        self.on_host(&format!("{slug}.localhost:{}", self.port), path)
    }

    /// The body of a `GET` on the admin host, as text (`/metrics`, the OpenAPI document).
    pub async fn text(&self, path: &str) -> String {
        self.anon(Method::GET, path)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn realtime_health(&self) -> Value {
        send(self.anon(Method::GET, "/health/realtime")).await.1
    }
}

impl TestServer {
    /// The oldest retained seq of a topic, straight from the store.
    pub async fn store_oldest(&self, app: &str, topic: &str) -> Option<i64> {
        self.store_history(app, topic, 1)
            .await
            .first()
            .and_then(|m| m.seq)
    }

    /// The topic's stored history, oldest first, at most `limit` messages.
    pub async fn store_history(
        &self,
        app: &str,
        topic: &str,
        limit: u32,
    ) -> Vec<picloud_core::message::Message> {
        use picloud_core::store::{AppStore, MessageStore};
        let app = self
            .store
            .get_app_by_slug(&picloud_core::app::Slug::parse(app).unwrap())
            .await
            .unwrap()
            .unwrap();
        let topic = picloud_core::topic::TopicName::parse(topic).unwrap();
        self.store
            .read_after(&app.id, &topic, 0, limit)
            .await
            .unwrap()
    }
}
