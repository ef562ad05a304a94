//! Starting and stopping the servers under test, and the request bytes each one expects.
//!
//! PiCloud: `taskset -c <cpu> <picloud> serve` with a fresh data dir (and, for PostgreSQL, a
//! fresh database), the bootstrap admin key read from stdout, `/healthz` polled, stderr
//! kept in a log file. Nchan: the shared nginx config copied to `/tmp/nchan-bench` and
//! `taskset -c <cpu> nginx -p … -c …` (master in the foreground; the worker is measured).
//! Both stop with SIGTERM (SIGKILL after 15 s) and get SIGTERM if the tool dies.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::http::HttpConn;
use crate::{proc_stats, sys};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Picloud,
    Nchan,
    /// `picloud-floor`: Nchan's protocol with nothing but the system calls a delivery needs
    /// (the kernel's floor under both servers' figures).
    Floor,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Picloud => "picloud",
            Kind::Nchan => "nchan",
            Kind::Floor => "floor",
        }
    }

    /// Speaks Nchan's URLs (`/sub/{t}`, `/pub/{t}`), with no topics to create.
    pub fn nchan_protocol(self) -> bool {
        matches!(self, Kind::Nchan | Kind::Floor)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// What a client needs to talk to a running server.
#[derive(Clone)]
pub struct Endpoint {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// PiCloud's admin key (empty for Nchan).
    key: Arc<str>,
}

/// Topic `i` is `t<i>` on both servers (Nchan's channel ids must match `\w+`).
pub fn topic_name(i: usize) -> String {
    format!("t{i}")
}

/// PiCloud's SSE subscribe request for topic `t` of app `bench`.
pub fn picloud_subscribe_request(t: &str) -> Vec<u8> {
    format!(
        "GET /realtime/topics/{t} HTTP/1.1\r\nHost: bench.localhost\r\nAccept: text/event-stream\r\n\r\n"
    )
    .into_bytes()
}

/// A client's text frame (clients mask theirs; any key will do).
pub fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
    let mut f = vec![0x81];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&KEY);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    f
}

/// The topic a publish goes to: `t<i>`, or a named one (D1's `jobs`).
#[derive(Clone, Copy, Debug)]
pub enum TopicRef {
    Index(usize),
    Named(&'static str),
}

impl std::fmt::Display for TopicRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicRef::Index(i) => write!(f, "t{i}"),
            TopicRef::Named(n) => f.write_str(n),
        }
    }
}

impl Endpoint {
    pub fn subscribe_request(&self, topic: usize) -> Vec<u8> {
        self.subscribe_topic_request(&topic_name(topic))
    }

    /// A WebSocket subscriber of topic `topic`: the upgrade, then (PiCloud) its subscribe
    /// frame, sent once the upgrade is answered (see `sse_client`).
    pub fn ws_subscribe_request(&self, topic: usize) -> Vec<u8> {
        let t = topic_name(topic);
        let (path, host, protocol) = match self.kind {
            Kind::Picloud => (
                "/realtime/ws".to_owned(),
                "bench.localhost",
                "Sec-WebSocket-Protocol: picloud.v1\r\n",
            ),
            Kind::Nchan | Kind::Floor => (format!("/sub/{t}"), "localhost", ""),
        };
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{protocol}\r\n"
        )
        .into_bytes();
        if self.kind == Kind::Picloud {
            let frame = format!(r#"{{"type":"subscribe","id":1,"topic":"{t}"}}"#);
            req.extend(masked_text_frame(frame.as_bytes()));
        }
        req
    }

    pub fn subscribe_topic_request(&self, t: &str) -> Vec<u8> {
        match self.kind {
            Kind::Picloud => picloud_subscribe_request(t),
            Kind::Nchan | Kind::Floor => format!(
                "GET /sub/{t} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
            )
            .into_bytes(),
        }
    }

    /// Appends a complete publish request to `out`. `durable` is PiCloud's stored publish
    /// (201); otherwise `?ephemeral=true` (202). Nchan has one kind of publish.
    pub fn publish_request(&self, out: &mut Vec<u8>, topic: TopicRef, body: &[u8], durable: bool) {
        use std::io::Write;
        let _ = match self.kind {
            Kind::Picloud => write!(
                out,
                "POST /api/v1/apps/bench/topics/{topic}/publish{} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                if durable { "" } else { "?ephemeral=true" },
                self.key,
                body.len()
            ),
            Kind::Nchan | Kind::Floor => write!(
                out,
                "POST /pub/{topic} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
        };
        out.extend_from_slice(body);
    }

    /// PiCloud's batch publish (`body` is `{"messages":[…]}`).
    pub fn publish_batch_request(&self, out: &mut Vec<u8>, body: &[u8], durable: bool) {
        use std::io::Write;
        let _ = write!(
            out,
            "POST /api/v1/apps/bench/publish{} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            if durable { "" } else { "?ephemeral=true" },
            self.key,
            body.len()
        );
        out.extend_from_slice(body);
    }

    fn admin_request(&self, method: &str, path: &str, body: &str) -> Vec<u8> {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.key,
            body.len()
        )
        .into_bytes()
    }

    /// PiCloud admin API: one request on a new connection; returns status and body.
    pub async fn admin(&self, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
        let mut conn = HttpConn::connect(self.addr).await?;
        let status = conn
            .roundtrip(&self.admin_request(method, path, body))
            .await
            .with_context(|| format!("{method} {path}"))?;
        Ok((status, conn.body_text()))
    }

    /// PiCloud admin API: `POST path body`, which must answer `want`; returns the body.
    pub async fn admin_post(&self, path: &str, body: &str, want: u16) -> Result<String> {
        let (status, text) = self.admin("POST", path, body).await?;
        if status != want {
            bail!("POST {path} {body}: {status} {text}");
        }
        Ok(text)
    }

    /// A request to app `bench`'s own host (script endpoints): `Host: bench.localhost`.
    pub fn app_request(&self, method: &str, path: &str) -> Vec<u8> {
        format!("{method} {path} HTTP/1.1\r\nHost: bench.localhost\r\n\r\n").into_bytes()
    }

    /// PiCloud: creates app `bench` (an existing one is fine).
    pub async fn create_app(&self) -> Result<()> {
        let (status, text) = self
            .admin("POST", "/api/v1/apps", r#"{"slug":"bench"}"#)
            .await?;
        if status != 201 && status != 409 {
            bail!("create app: {status} {text}");
        }
        Ok(())
    }

    /// PiCloud: creates app `bench` and topics `t0..t<n>` (public, externally
    /// subscribable), 8 requests in flight. Nchan: nothing to do (channels are implicit).
    pub async fn create_topics(&self, n: usize) -> Result<()> {
        if self.kind.nchan_protocol() {
            return Ok(());
        }
        self.create_app().await?;
        let started = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8.min(n) {
            let (ep, next, done) = (self.clone(), next.clone(), done.clone());
            tasks.spawn(async move {
                let mut conn = HttpConn::connect(ep.addr).await?;
                loop {
                    let i = next.fetch_add(1, Relaxed);
                    if i >= n {
                        return anyhow::Ok(());
                    }
                    let body = format!(
                        r#"{{"name":"{}","external_subscribable":true,"auth_mode":"public"}}"#,
                        topic_name(i)
                    );
                    let req = ep.admin_request("POST", "/api/v1/apps/bench/topics", &body);
                    let status = conn.roundtrip(&req).await?;
                    if status != 201 && status != 409 {
                        bail!("create topic {i}: {status} {}", conn.body_text());
                    }
                    let d = done.fetch_add(1, Relaxed) + 1;
                    if d % 2000 == 0 {
                        crate::progress!("topics: {d}/{n}");
                    }
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        crate::progress!(
            "topics: {n} created in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// A fresh PostgreSQL database for one server run, dropped afterwards.
struct PgDb {
    admin_url: String,
    name: String,
    /// The database's own URL, for `DATABASE_URL`.
    url: String,
}

impl PgDb {
    fn create(base: &str) -> Result<Self> {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = base.trim_end_matches('/');
        let name = format!(
            "picloud_bench_{}_{}",
            std::process::id(),
            N.fetch_add(1, Relaxed)
        );
        let db = Self {
            admin_url: format!("{base}/postgres"),
            url: format!("{base}/{name}"),
            name,
        };
        db.psql(&format!("CREATE DATABASE {}", db.name))?;
        Ok(db)
    }

    fn psql(&self, sql: &str) -> Result<()> {
        let out = Command::new("psql")
            .args([&self.admin_url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .context("run psql (is the PostgreSQL client installed?)")?;
        if !out.status.success() {
            bail!(
                "psql {sql:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    fn drop_db(&self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = self.psql(&sql) {
            crate::progress!("warning: cannot drop database {}: {e:#}", self.name);
        }
    }
}

enum Cleanup {
    Picloud {
        data_dir: PathBuf,
        pg: Option<PgDb>,
    },
    /// Nothing to remove (Nchan, the floor; or a PiCloud whose data was handed on as [`Kept`]).
    None,
}

/// What a PiCloud server starts on.
pub enum Data {
    /// A fresh data dir (and, for PostgreSQL, a fresh database); removed when it stops.
    Fresh(Backend),
    /// The data (and admin key) of an earlier run, from [`Server::stop_keeping_data`].
    Kept(Kept),
    /// Another node of a running server's cluster, from [`Server::join_data`]: the same
    /// PostgreSQL database and admin key, its own data dir. The database belongs to the
    /// first node (dropped when it stops), so stop the joined nodes first.
    Join(Join),
}

/// A running PostgreSQL-backed PiCloud's database URL and admin key.
pub struct Join {
    url: String,
    key: Arc<str>,
}

/// A stopped PiCloud's data dir, PostgreSQL database and admin key, kept for the next
/// start. Removed (database dropped) when dropped unused or when that next server stops.
pub struct Kept {
    backend: Backend,
    key: Arc<str>,
    data_dir: PathBuf,
    cleanup: Cleanup,
}

impl Drop for Kept {
    fn drop(&mut self) {
        run_cleanup(&self.cleanup);
    }
}

pub struct Server {
    pub endpoint: Endpoint,
    /// The process we started (PiCloud, or the nginx master).
    pub pid: u32,
    /// The process whose RSS and CPU are reported (PiCloud, or the nginx worker).
    pub measured_pid: u32,
    /// Just before the process was spawned.
    pub spawned_at: Instant,
    backend: Backend,
    child: Child,
    cleanup: Cleanup,
    log_path: PathBuf,
    stopped: bool,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `127.0.0.1:<a free port>`, for a server started later.
pub fn free_loopback_addr() -> Result<SocketAddr> {
    Ok(([127, 0, 0, 1], free_port()?).into())
}

fn temp_dir() -> Result<PathBuf> {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "picloud-bench-{}-{}",
        std::process::id(),
        N.fetch_add(1, Relaxed)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

impl Server {
    /// Starts `picloud serve` on `data` with extra environment `env` (e.g.
    /// `PICLOUD_DISPATCH_WORKERS`), listening on `addr` (default: a free loopback port).
    pub async fn start_picloud(
        bin: &Path,
        cpu: usize,
        data: Data,
        postgres_url: &str,
        env: &[(&str, &str)],
        addr: Option<SocketAddr>,
    ) -> Result<Self> {
        if !bin.exists() {
            bail!(
                "no PiCloud binary at {} (build it: cargo build --profile dist -p picloud, or pass --picloud-bin)",
                bin.display()
            );
        }
        let addr = match addr {
            Some(a) => a,
            None => free_loopback_addr()?,
        };
        let mut join_url = None;
        let (backend, data_dir, cleanup, known_key, log_name) = match data {
            Data::Fresh(backend) => {
                let data_dir = temp_dir()?;
                let pg = match backend {
                    Backend::Sqlite => None,
                    Backend::Postgres => match PgDb::create(postgres_url) {
                        Ok(db) => Some(db),
                        Err(e) => {
                            let _ = std::fs::remove_dir_all(&data_dir);
                            return Err(e);
                        }
                    },
                };
                let cleanup = Cleanup::Picloud {
                    data_dir: data_dir.clone(),
                    pg,
                };
                (backend, data_dir, cleanup, None, "server.log")
            }
            Data::Kept(mut k) => {
                let cleanup = std::mem::replace(&mut k.cleanup, Cleanup::None);
                let key = k.key.clone();
                (
                    k.backend,
                    k.data_dir.clone(),
                    cleanup,
                    Some(key),
                    "server-restarted.log",
                )
            }
            Data::Join(j) => {
                let data_dir = temp_dir()?;
                let cleanup = Cleanup::Picloud {
                    data_dir: data_dir.clone(),
                    pg: None,
                };
                join_url = Some(j.url);
                (
                    Backend::Postgres,
                    data_dir,
                    cleanup,
                    Some(j.key),
                    "server.log",
                )
            }
        };
        let url = match &cleanup {
            Cleanup::Picloud { pg: Some(db), .. } => Some(db.url.clone()),
            _ => join_url,
        };
        let log_path = data_dir.join(log_name);
        let log_file = match File::create(&log_path) {
            Ok(f) => f,
            Err(e) => {
                run_cleanup(&cleanup);
                return Err(anyhow!(e).context(format!("create {}", log_path.display())));
            }
        };
        let mut cmd = Command::new("taskset");
        cmd.arg("-c")
            .arg(cpu.to_string())
            .arg(bin)
            .arg("serve")
            .env("PICLOUD_LISTEN", addr.to_string())
            .env("PICLOUD_DATA_DIR", &data_dir)
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            .env_remove("PICLOUD_DISPATCH_WORKERS")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        if let Some(url) = &url {
            cmd.env("DATABASE_URL", url);
        }
        sys::die_with_parent(&mut cmd);
        let spawned_at = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                run_cleanup(&cleanup);
                return Err(anyhow!(e).context("spawn taskset (util-linux) + picloud"));
            }
        };
        let stdout = child.stdout.take().expect("piped");
        let pid = child.id();
        let mut server = Server {
            endpoint: Endpoint {
                kind: Kind::Picloud,
                addr,
                key: Arc::from(""),
            },
            pid,
            measured_pid: pid,
            spawned_at,
            backend,
            child,
            cleanup,
            log_path,
            stopped: false,
        };
        let (tx, mut rx) = tokio::sync::oneshot::channel::<String>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            // Read to the end so the child never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("pk_") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line.trim().to_owned());
                    }
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        // A restarted server prints no key (it bootstraps only on an empty database).
        server.endpoint.key = match known_key {
            Some(key) => key,
            None => loop {
                if let Ok(key) = rx.try_recv() {
                    break Arc::from(key);
                }
                server.check_alive()?;
                if Instant::now() > deadline {
                    bail!("PiCloud printed no admin key within 60 s");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            },
        };
        loop {
            if let Ok(mut c) = HttpConn::connect(addr).await {
                let req = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
                if matches!(c.roundtrip(req).await, Ok(200)) {
                    break;
                }
            }
            server.check_alive()?;
            if Instant::now() > deadline {
                bail!("PiCloud /healthz did not answer 200 within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        crate::progress!(
            "picloud ({}) up: pid {pid} on {addr}, cpu {cpu}",
            backend.name()
        );
        Ok(server)
    }

    /// The data for another node of this (PostgreSQL) server's cluster: see [`Data::Join`].
    pub fn join_data(&self) -> Result<Data> {
        match &self.cleanup {
            Cleanup::Picloud { pg: Some(db), .. } => Ok(Data::Join(Join {
                url: db.url.clone(),
                key: self.endpoint.key.clone(),
            })),
            _ => bail!("only a PiCloud started on a fresh PostgreSQL database can be joined"),
        }
    }

    pub async fn start_nchan(conf: &Path, cpu: usize) -> Result<Self> {
        let mut text = read_nchan_conf(conf)?;
        let mut addr: SocketAddr = ([127, 0, 0, 1], 8080).into();
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            // Someone else (a PiCloud left running on its default port?) has 8080.
            let port = free_port()?;
            crate::progress!("nchan: 127.0.0.1:8080 is taken; using port {port} instead");
            text = text.replace(NCHAN_LISTEN, &format!("listen 127.0.0.1:{port}"));
            addr.set_port(port);
        }
        Self::start_nginx(text, NCHAN_PREFIX, addr, cpu).await
    }

    /// Nchan instance `instance` of a group sharing the Redis at `redis_url` (C1): the
    /// config at `conf` with its prefix `/tmp/nchan-bench` made `/tmp/nchan-bench-redis-<i>`
    /// (each nginx needs its own pid file, logs and temp dirs), a free port, and every
    /// channel stored in Redis ([`nchan_redis_variant`]).
    pub async fn start_nchan_redis(
        conf: &Path,
        cpu: usize,
        instance: usize,
        redis_url: &str,
    ) -> Result<Self> {
        let prefix = format!("{NCHAN_PREFIX}-redis-{instance}");
        let addr = free_loopback_addr()?;
        let text = read_nchan_conf(conf)?
            .replace(NCHAN_PREFIX, &prefix)
            .replace(NCHAN_LISTEN, &format!("listen {addr}"));
        let text = nchan_redis_variant(&text, redis_url)?;
        Self::start_nginx(text, &prefix, addr, cpu).await
    }

    /// nginx (master in the foreground, one worker, measured) on config `text`, whose
    /// paths are under `prefix` and which listens on `addr`.
    async fn start_nginx(text: String, prefix: &str, addr: SocketAddr, cpu: usize) -> Result<Self> {
        for d in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(format!("{prefix}/tmp/{d}"))?;
        }
        // The readiness probe's `GET /` (otherwise a 404 in the error log).
        std::fs::create_dir_all(format!("{prefix}/html"))?;
        std::fs::write(format!("{prefix}/html/index.html"), "ok\n")?;
        let conf_path = format!("{prefix}/nginx.conf");
        std::fs::write(&conf_path, text)?;
        std::fs::write(format!("{prefix}/error.log"), "")?;
        let log_path = PathBuf::from(format!("{prefix}/error.log"));
        let mut cmd = Command::new("taskset");
        cmd.arg("-c")
            .arg(cpu.to_string())
            .arg("nginx")
            .args(["-p", &format!("{prefix}/"), "-c", &conf_path])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(format!("{prefix}/stderr.log"))?);
        sys::die_with_parent(&mut cmd);
        let spawned_at = Instant::now();
        let child = cmd.spawn().context("spawn taskset + nginx")?;
        let pid = child.id();
        let mut server = Server::without_data(Kind::Nchan, addr, child, spawned_at, log_path);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            server.check_alive().map_err(|e| {
                let stderr =
                    std::fs::read_to_string(format!("{prefix}/stderr.log")).unwrap_or_default();
                e.context(stderr.trim().to_owned())
            })?;
            let workers = proc_stats::children(pid);
            if let [worker] = workers[..] {
                if let Ok(mut c) = HttpConn::connect(addr).await {
                    if c.roundtrip(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                        .await
                        .is_ok()
                    {
                        server.measured_pid = worker;
                        break;
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("nginx did not answer on {addr} within 20 s (workers: {workers:?})");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        crate::progress!(
            "nchan up: master {pid}, worker {} on {addr}, cpu {cpu}",
            server.measured_pid
        );
        Ok(server)
    }

    /// A server with no data or key of ours (Nchan, the floor), measured as `child` until
    /// the caller finds a worker.
    fn without_data(
        kind: Kind,
        addr: SocketAddr,
        child: Child,
        spawned_at: Instant,
        log_path: PathBuf,
    ) -> Self {
        let pid = child.id();
        Server {
            endpoint: Endpoint {
                kind,
                addr,
                key: Arc::from(""),
            },
            pid,
            measured_pid: pid,
            spawned_at,
            backend: Backend::Sqlite,
            child,
            cleanup: Cleanup::None,
            log_path,
            stopped: false,
        }
    }

    /// `picloud-floor` (next to this executable) on a free loopback port, pinned to `cpu`.
    pub async fn start_floor(bin: &Path, cpu: usize) -> Result<Self> {
        let addr = free_loopback_addr()?;
        let log_path = temp_dir()?.join("floor.log");
        let mut cmd = Command::new("taskset");
        cmd.arg("-c")
            .arg(cpu.to_string())
            .arg(bin)
            .args(["--listen", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log_path)?);
        sys::die_with_parent(&mut cmd);
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn taskset + {}", bin.display()))?;
        let pid = child.id();
        let mut server = Server::without_data(Kind::Floor, addr, child, spawned_at, log_path);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            server.check_alive()?;
            if let Ok(mut c) = HttpConn::connect(addr).await {
                if let Ok(200) = c
                    .roundtrip(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    .await
                {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("{} did not answer on {addr} within 20 s", bin.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        crate::progress!("floor up: pid {pid} on {addr}, cpu {cpu}");
        Ok(server)
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            self.stopped = true;
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            bail!(
                "{} exited early ({status}); log tail:\n{}",
                self.endpoint.kind.name(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }

    pub fn rss_bytes(&self) -> Result<u64> {
        Ok(proc_stats::rss_bytes(self.measured_pid)?)
    }

    pub fn cpu_secs(&self, clk_tck: f64) -> Result<f64> {
        Ok(proc_stats::cpu_secs(self.measured_pid, clk_tck)?)
    }

    /// SIGTERM, wait (SIGKILL after 15 s); returns what the server logged.
    async fn stop_process(&mut self) -> Value {
        let mut exit = Value::Null;
        if !self.stopped {
            let _ = sys::signal(self.pid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                match self.child.try_wait() {
                    Ok(Some(status)) => {
                        exit = json!(status.to_string());
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    _ => {
                        let _ = self.child.kill();
                        let status = self.child.wait().ok();
                        exit = json!(format!("killed after 15 s: {status:?}"));
                        break;
                    }
                }
            }
            self.stopped = true;
        }
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        let count = |w: &str| lines.iter().filter(|l| l.contains(w)).count();
        let report = json!({
            "exit": exit,
            "log_lines": lines.len(),
            "log_warn_lines": count("WARN") + count("[warn]"),
            "log_error_lines": count("ERROR") + count("[error]") + count("[alert]") + count("[crit]"),
            "log_first_lines": lines.iter().take(5).map(|l| truncate(l, 300)).collect::<Vec<_>>(),
        });
        crate::progress!("{} stopped ({exit})", self.endpoint.kind.name());
        report
    }

    /// SIGTERM, wait (SIGKILL after 15 s), clean up; returns what the server logged.
    pub async fn stop(mut self) -> Value {
        let report = self.stop_process().await;
        run_cleanup(&self.cleanup);
        self.cleanup = Cleanup::None;
        report
    }

    /// Like [`Server::stop`], but keeps the data dir, the PostgreSQL database and the
    /// admin key for a later [`Data::Kept`] start (PiCloud only).
    pub async fn stop_keeping_data(mut self) -> (Value, Kept) {
        let report = self.stop_process().await;
        let data_dir = match &self.cleanup {
            Cleanup::Picloud { data_dir, .. } => data_dir.clone(),
            Cleanup::None => PathBuf::new(),
        };
        let kept = Kept {
            backend: self.backend,
            key: self.endpoint.key.clone(),
            data_dir,
            cleanup: std::mem::replace(&mut self.cleanup, Cleanup::None),
        };
        (report, kept)
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn run_cleanup(c: &Cleanup) {
    if let Cleanup::Picloud { data_dir, pg } = c {
        let _ = std::fs::remove_dir_all(data_dir);
        if let Some(pg) = pg {
            pg.drop_db();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = sys::signal(self.pid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        run_cleanup(&self.cleanup);
    }
}

/// Runs `cmd` with its stdout sent to our stderr (stdout carries only the JSON summary);
/// true if it exited 0.
pub fn run_quietly(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .is_ok_and(|s| s.success())
}

/// Where the shared Nchan config keeps everything, and its listen line.
const NCHAN_PREFIX: &str = "/tmp/nchan-bench";
const NCHAN_LISTEN: &str = "listen 127.0.0.1:8080";
const NCHAN_MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";

/// The Nchan config at `conf` (installing nginx + Nchan first if the module is missing).
fn read_nchan_conf(conf: &Path) -> Result<String> {
    if !Path::new(NCHAN_MODULE).exists() {
        install_nchan()?;
    }
    let text = std::fs::read_to_string(conf)
        .with_context(|| format!("read the Nchan config {}", conf.display()))?;
    // W1's subscribers are WebSockets; allowing them changes nothing for EventSource ones.
    Ok(text.replace(
        "nchan_subscriber eventsource;",
        "nchan_subscriber eventsource websocket;",
    ))
}

/// The shared Nchan config with every channel kept in the Redis at `redis_url` instead of
/// nginx's shared memory: an `upstream` naming the server in the `http` block and
/// `nchan_redis_pass` in every `location` (Nchan's default Redis mode, `distributed`:
/// messages stored in Redis, published through its PUB/SUB to every nginx subscribed to
/// the channel). `nchan_redis_pass` at the `http` level passes `nginx -t` but leaves the
/// locations on memory (nothing reached Redis: checked with nchan 1.3.6). The rest
/// (buffer length, message timeout, locations) stays the in-memory run's, so that the two
/// differ by the store only. Generated at run time from `--nchan-conf` rather than kept as
/// a second file that could drift from it.
pub fn nchan_redis_variant(text: &str, redis_url: &str) -> Result<String> {
    const HTTP: &str = "http {\n";
    const UPSTREAM: &str = "picloud_bench_redis";
    if text.matches(HTTP).count() != 1 {
        bail!("the Nchan config has no single `http {{` line to add Redis to");
    }
    let mut out = String::with_capacity(text.len() + 512);
    let mut locations = 0;
    for line in text.split_inclusive('\n') {
        out.push_str(line);
        let t = line.trim();
        if line == HTTP {
            out.push_str(&format!(
                "    # Added by picloud-bench (C1): channels in a Redis shared by the instances.\n    upstream {UPSTREAM} {{\n        nchan_redis_server {redis_url};\n    }}\n"
            ));
        } else if t.starts_with("location ") && t.ends_with('{') {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(&format!("{indent}    nchan_redis_pass {UPSTREAM};\n"));
            locations += 1;
        }
    }
    if locations == 0 {
        bail!("the Nchan config has no `location … {{` line to pass to Redis");
    }
    Ok(out)
}

fn install_nchan() -> Result<()> {
    crate::progress!(
        "nchan: /usr/lib/nginx/modules/ngx_nchan_module.so is missing; installing nginx and \
         libnginx-mod-nchan with apt-get (needs root)"
    );
    let updated = run_quietly(Command::new("apt-get").args(["update", "-qq"]));
    let installed = run_quietly(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "nginx", "libnginx-mod-nchan"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    if !(updated && installed) {
        bail!("cannot install nginx + libnginx-mod-nchan; run: apt-get install -y nginx libnginx-mod-nchan");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nchan_redis_variant_adds_the_upstream_inside_http() {
        let conf = "load_module x.so;\nhttp {\n    access_log off;\n    server {\n        location ~ /sub/(\\w+)$ {\n            nchan_subscriber eventsource;\n        }\n    }\n}\n";
        let v = nchan_redis_variant(conf, "redis://127.0.0.1:7001").unwrap();
        let http = v.find("http {\n").unwrap();
        let upstream = v.find("upstream picloud_bench_redis {").unwrap();
        assert!(http < upstream && upstream < v.find("access_log").unwrap());
        assert!(v.contains("nchan_redis_server redis://127.0.0.1:7001;"));
        let pass = v
            .find("            nchan_redis_pass picloud_bench_redis;\n")
            .unwrap();
        assert!(v.find("location ~ /sub/").unwrap() < pass);
        assert!(pass < v.find("nchan_subscriber eventsource").unwrap());
        assert!(nchan_redis_variant("events {}\n", "redis://x").is_err());
    }
}
