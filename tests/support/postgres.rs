//! A PostgreSQL server of the test's own, to stop, crash and restart under load (never the
//! shared one on 5432, which other tests use at the same time).
//!
//! `initdb` and the server refuse to run as root, and the tests run as root here: both run
//! as the `postgres` user (`runuser`), in a temp dir handed to that user. Trust auth on
//! 127.0.0.1 and a Unix socket in the temp dir, so nothing outside it is touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
}

impl PrivatePostgres {
    /// A fresh cluster on a free port, running when this returns.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(
            Path::new(PG_BIN).join("initdb").exists(),
            "PostgreSQL 15's server binaries are required at {PG_BIN}"
        );
        chown_postgres(dir.path());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let pg = Self { port, dir };
        let data = pg.data();
        let out = as_postgres(&[
            &format!("{PG_BIN}/initdb"),
            "-D",
            &data.to_string_lossy(),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        ]);
        assert!(out.status.success(), "initdb: {out:?}");
        // fsync off: a stop, even `-m immediate`, is a crash of the server's processes, not
        // of the machine; what they wrote is in the page cache and survives. It saves the
        // shared two cores a disk flush per commit.
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 100\nshared_buffers = 32MB\n",
            pg.dir.path().display()
        );
        let conf_path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str(&conf);
        std::fs::write(&conf_path, text).unwrap();
        pg.start_again();
        pg
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `postgres://…` for `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the stopped server; returns when it accepts connections.
    pub fn start_again(&self) {
        let log = self.dir.path().join("server.log");
        let out = self.pg_ctl(&["start", "-w", "-t", "30", "-l", &log.to_string_lossy()]);
        assert!(
            out.status.success(),
            "pg_ctl start: {out:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server: `mode` is `pg_ctl`'s `smart`, `fast` (abort sessions, clean
    /// shutdown) or `immediate` (every process killed at once, recovery at the next start:
    /// what a crash looks like).
    pub fn stop(&self, mode: &str) {
        let out = self.pg_ctl(&["stop", "-w", "-t", "30", "-m", mode]);
        assert!(out.status.success(), "pg_ctl stop -m {mode}: {out:?}");
    }

    /// The server's own log, for a failing assertion's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let data = self.data().to_string_lossy().into_owned();
        let mut all = vec![format!("{PG_BIN}/pg_ctl"), "-D".into(), data];
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        as_postgres(&all)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-w", "-t", "10", "-m", "immediate"]);
    }
}

fn as_postgres(args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .current_dir("/")
        .output()
        .expect("runuser (util-linux) is required to run PostgreSQL as its user")
}

fn chown_postgres(path: &Path) {
    let out = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chown postgres {}: {out:?}",
        path.display()
    );
}
