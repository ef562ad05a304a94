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
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Picloud => "picloud",
            Kind::Nchan => "nchan",
        }
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

impl Endpoint {
    pub fn subscribe_request(&self, topic: usize) -> Vec<u8> {
        let t = topic_name(topic);
        match self.kind {
            Kind::Picloud => format!(
                "GET /realtime/topics/{t} HTTP/1.1\r\nHost: bench.localhost\r\nAccept: text/event-stream\r\n\r\n"
            ),
            Kind::Nchan => format!(
                "GET /sub/{t} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
            ),
        }
        .into_bytes()
    }

    /// Appends a complete publish request to `out`. `durable` is PiCloud's stored publish
    /// (201); otherwise `?ephemeral=true` (202). Nchan has one kind of publish.
    pub fn publish_request(&self, out: &mut Vec<u8>, topic: usize, body: &[u8], durable: bool) {
        use std::io::Write;
        let _ = match self.kind {
            Kind::Picloud => write!(
                out,
                "POST /api/v1/apps/bench/topics/t{topic}/publish{} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                if durable { "" } else { "?ephemeral=true" },
                self.key,
                body.len()
            ),
            Kind::Nchan => write!(
                out,
                "POST /pub/t{topic} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
        };
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

    /// PiCloud: creates app `bench` and topics `t0..t<n>` (public, externally
    /// subscribable), 8 requests in flight. Nchan: nothing to do (channels are implicit).
    pub async fn create_topics(&self, n: usize) -> Result<()> {
        if self.kind == Kind::Nchan {
            return Ok(());
        }
        let mut conn = HttpConn::connect(self.addr).await?;
        let status = conn
            .roundtrip(&self.admin_request("POST", "/api/v1/apps", r#"{"slug":"bench"}"#))
            .await?;
        if status != 201 && status != 409 {
            bail!("create app: {status} {}", conn.body_text());
        }
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
}

impl PgDb {
    fn create(base: &str) -> Result<(Self, String)> {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = base.trim_end_matches('/');
        let name = format!(
            "picloud_bench_{}_{}",
            std::process::id(),
            N.fetch_add(1, Relaxed)
        );
        let db = Self {
            admin_url: format!("{base}/postgres"),
            name,
        };
        db.psql(&format!("CREATE DATABASE {}", db.name))?;
        let url = format!("{base}/{}", db.name);
        Ok((db, url))
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
    Picloud { data_dir: PathBuf, pg: Option<PgDb> },
    Nchan,
}

pub struct Server {
    pub endpoint: Endpoint,
    /// The process we started (PiCloud, or the nginx master).
    pub pid: u32,
    /// The process whose RSS and CPU are reported (PiCloud, or the nginx worker).
    pub measured_pid: u32,
    child: Child,
    cleanup: Cleanup,
    log_path: PathBuf,
    stopped: bool,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
    pub async fn start_picloud(
        bin: &Path,
        cpu: usize,
        backend: Backend,
        postgres_url: &str,
    ) -> Result<Self> {
        if !bin.exists() {
            bail!(
                "no PiCloud binary at {} (build it: cargo build --release -p picloud, or pass --picloud-bin)",
                bin.display()
            );
        }
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let data_dir = temp_dir()?;
        let log_path = data_dir.join("server.log");
        let (pg, url) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let (db, url) = PgDb::create(postgres_url)?;
                (Some(db), Some(url))
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
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log_path)?);
        if let Some(url) = &url {
            cmd.env("DATABASE_URL", url);
        }
        sys::die_with_parent(&mut cmd);
        let cleanup = Cleanup::Picloud { data_dir, pg };
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
        let key = loop {
            if let Ok(key) = rx.try_recv() {
                break key;
            }
            server.check_alive()?;
            if Instant::now() > deadline {
                bail!("PiCloud printed no admin key within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        server.endpoint.key = Arc::from(key);
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

    pub async fn start_nchan(conf: &Path, cpu: usize) -> Result<Self> {
        const MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";
        const PREFIX: &str = "/tmp/nchan-bench";
        if !Path::new(MODULE).exists() {
            install_nchan()?;
        }
        let mut text = std::fs::read_to_string(conf)
            .with_context(|| format!("read the Nchan config {}", conf.display()))?;
        let mut addr: SocketAddr = ([127, 0, 0, 1], 8080).into();
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            // Someone else (a PiCloud left running on its default port?) has 8080.
            let port = free_port()?;
            crate::progress!("nchan: 127.0.0.1:8080 is taken; using port {port} instead");
            text = text.replace("listen 127.0.0.1:8080", &format!("listen 127.0.0.1:{port}"));
            addr.set_port(port);
        }
        for d in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(format!("{PREFIX}/tmp/{d}"))?;
        }
        // The readiness probe's `GET /` (otherwise a 404 in the error log).
        std::fs::create_dir_all(format!("{PREFIX}/html"))?;
        std::fs::write(format!("{PREFIX}/html/index.html"), "ok\n")?;
        let conf_path = format!("{PREFIX}/nginx.conf");
        std::fs::write(&conf_path, text)?;
        std::fs::write(format!("{PREFIX}/error.log"), "")?;
        let log_path = PathBuf::from(format!("{PREFIX}/error.log"));
        let mut cmd = Command::new("taskset");
        cmd.arg("-c")
            .arg(cpu.to_string())
            .arg("nginx")
            .args(["-p", &format!("{PREFIX}/"), "-c", &conf_path])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(format!("{PREFIX}/stderr.log"))?);
        sys::die_with_parent(&mut cmd);
        let child = cmd.spawn().context("spawn taskset + nginx")?;
        let pid = child.id();
        let mut server = Server {
            endpoint: Endpoint {
                kind: Kind::Nchan,
                addr,
                key: Arc::from(""),
            },
            pid,
            measured_pid: pid,
            child,
            cleanup: Cleanup::Nchan,
            log_path,
            stopped: false,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            server.check_alive().map_err(|e| {
                let stderr =
                    std::fs::read_to_string(format!("{PREFIX}/stderr.log")).unwrap_or_default();
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

    /// SIGTERM, wait (SIGKILL after 15 s), clean up; returns what the server logged.
    pub async fn stop(mut self) -> Value {
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
        run_cleanup(&self.cleanup);
        self.cleanup = Cleanup::Nchan;
        crate::progress!("{} stopped ({exit})", self.endpoint.kind.name());
        report
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

fn install_nchan() -> Result<()> {
    crate::progress!(
        "nchan: /usr/lib/nginx/modules/ngx_nchan_module.so is missing; installing nginx and \
         libnginx-mod-nchan with apt-get (needs root)"
    );
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    let updated = ok(Command::new("apt-get").args(["update", "-qq"]));
    let installed = ok(Command::new("apt-get")
        .args(["install", "-y", "-qq", "nginx", "libnginx-mod-nchan"])
        .env("DEBIAN_FRONTEND", "noninteractive"));
    if !(updated && installed) {
        bail!("cannot install nginx + libnginx-mod-nchan; run: apt-get install -y nginx libnginx-mod-nchan");
    }
    Ok(())
}
