//! What the system tests share: the real `picloud` binary run as a child process, and
//! HTTP helpers against it. Each test file under `tests/` includes this module.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_picloud");

/// A `picloud serve` child process with its output captured line by line.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

pub fn capture(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

impl Server {
    /// Starts `picloud serve` on a free port with `env`, and waits until it listens.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_via(&[], data_dir, env)
    }

    /// Like [`Server::start`], with `picloud` run by `wrapper` (a program and its
    /// arguments that then execs the rest, such as `nsenter …`).
    pub fn start_via(wrapper: &[&str], data_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_bin(Path::new(BIN), wrapper, data_dir, env)
    }

    /// Like [`Server::start_via`], with the `picloud` binary at `bin` (another version's).
    pub fn start_bin(bin: &Path, wrapper: &[&str], data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = match wrapper {
            [] => Command::new(bin),
            [program, args @ ..] => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
        };
        cmd.arg("serve")
            .env_clear()
            .env("PICLOUD_LISTEN", "127.0.0.1:0")
            .env("PICLOUD_DATA_DIR", data_dir)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn picloud");
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            let found = stderr
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| listening_port(l));
            if let Some(p) = found {
                break p;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "picloud exited early ({status}): {:?}",
                    stderr.lock().unwrap()
                );
            }
            if Instant::now() > deadline {
                // Not left running behind a failed test.
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "picloud did not start (the \"listening\" line needs RUST_LOG at info or \
                     lower): {:?}",
                    stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            child,
            port,
            stdout,
            stderr,
        }
    }

    /// The bootstrap key from stdout. Its reader thread may lag behind stderr's (which
    /// told us the server is up), so it waits a little before answering `None`.
    pub fn bootstrap_key(&self) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with("pk_"))
                .cloned();
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends `signal` and waits for the process to exit.
    pub fn stop(mut self, signal: &str) -> (ExitStatus, String, String) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "picloud did not stop on SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(100)); // let the readers drain
        let out = self.stdout.lock().unwrap().join("\n");
        let err = self.stderr.lock().unwrap().join("\n");
        (status, out, err)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The port from the "listening" log line, in text (`addr=127.0.0.1:N`) or JSON format.
pub fn listening_port(line: &str) -> Option<u16> {
    if !line.contains("listening") {
        return None;
    }
    let at = line.find("127.0.0.1:")? + "127.0.0.1:".len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

pub async fn call(
    method: reqwest::Method,
    url: &str,
    host: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .header("host", host);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The process's resident memory (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// The process's open file descriptors.
pub fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64
}

/// `/readyz`'s body, which must come with `200` (ready, or storage full).
pub async fn readyz(server: &Server) -> Value {
    let (status, body) = call(
        reqwest::Method::GET,
        &server.url("/readyz"),
        "localhost",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// POSTs `body` to `path` on the admin host with `key`: (status, JSON body).
pub async fn admin_post(server: &Server, key: &str, path: &str, body: Value) -> (u16, Value) {
    call(
        reqwest::Method::POST,
        &server.url(path),
        "localhost",
        Some(key),
        Some(body),
    )
    .await
}

/// The server's `/metrics` text.
pub async fn scrape(server: &Server, key: &str) -> String {
    reqwest::Client::new()
        .get(server.url("/metrics"))
        .header("host", "localhost")
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the unlabelled sample `name` (say `x_count`) in `/metrics` text.
pub fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{metrics}"))
        .parse()
        .unwrap()
}

/// Reads the stream into `seen` until it holds `needle` (10 s at most).
pub async fn read_until(stream: &mut reqwest::Response, seen: &mut String, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(needle) {
        assert!(Instant::now() < deadline, "no {needle:?} in {seen:?}");
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

pub mod postgres;
pub mod sse;
