//! A private `redis-server` for the cluster scenarios (C1, C2): on a free loopback port,
//! nothing saved to disk, stopped by its own PID when dropped. Never the machine's shared
//! Redis on 6379: other tests use that one, and a run must not see their messages (nor
//! they ours).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::server::free_loopback_addr;
use crate::sys;

pub struct Redis {
    pub addr: SocketAddr,
    child: Child,
    log_path: PathBuf,
}

impl Redis {
    /// `redis-server --port P --bind 127.0.0.1 --save "" --appendonly no`, unpinned (like
    /// PostgreSQL, it is infrastructure the servers share, not a server under test); waits
    /// until it answers `PING`.
    pub fn start() -> Result<Self> {
        let addr = free_loopback_addr()?;
        let log_path = std::env::temp_dir().join(format!(
            "picloud-bench-redis-{}-{}.log",
            std::process::id(),
            addr.port()
        ));
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &addr.port().to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(File::create(&log_path)?)
            .stderr(Stdio::null());
        sys::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .context("spawn redis-server (apt-get install redis-server)")?;
        let mut redis = Self {
            addr,
            child,
            log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !redis.pings() {
            if let Some(status) = redis.child.try_wait()? {
                let log = std::fs::read_to_string(&redis.log_path).unwrap_or_default();
                bail!("redis-server exited ({status}): {}", log.trim());
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer PING on {addr} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        crate::progress!("redis-server up: pid {} on {addr}", redis.child.id());
        Ok(redis)
    }

    /// `redis://127.0.0.1:P`, for `REDIS_URL` and Nchan's `nchan_redis_server`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    fn pings(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = sys::signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_file(&self.log_path);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}
