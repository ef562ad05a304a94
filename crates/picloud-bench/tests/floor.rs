//! `picloud-floor` over real sockets, on both of its runtimes: a subscriber gets each publish to its topic (and only
//! those), pipelined publishes are each answered, and a malformed request is refused.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Floor {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `runtime`: `mio` (the floor) or `tokio` (the same protocol on tokio).
fn start(runtime: &str) -> Floor {
    let mut child = Command::new(env!("CARGO_BIN_EXE_picloud-floor"))
        .args(["--listen", "127.0.0.1:0"])
        .env("PICLOUD_FLOOR_RUNTIME", runtime)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn picloud-floor");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("picloud-floor's first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    Floor { child, addr }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads one response head and its Content-Length body; answers the status line.
fn response(r: &mut BufReader<TcpStream>) -> String {
    let mut status = String::new();
    r.read_line(&mut status).expect("status line");
    let mut len = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("header");
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    status.trim_end().to_owned()
}

fn subscribe(addr: SocketAddr, topic: &str) -> BufReader<TcpStream> {
    let mut s = connect(addr);
    write!(s, "GET /sub/{topic} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        r.read_line(&mut head).expect("subscribe head");
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    r
}

fn publish_request(topic: &str, body: &str) -> String {
    format!(
        "POST /pub/{topic} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn delivers_publishes_to_their_topic_only() {
    delivers_to_topic(start("mio"));
}

#[test]
fn on_tokio_delivers_publishes_to_their_topic_only() {
    delivers_to_topic(start("tokio"));
}

fn delivers_to_topic(floor: Floor) {
    let mut a = subscribe(floor.addr, "a");
    let mut b = subscribe(floor.addr, "b");
    let mut publisher = connect(floor.addr);
    // Three publishes pipelined in one write, the last split across two writes.
    let all = publish_request("a", r#"{"n":1}"#)
        + &publish_request("b", r#"{"n":2}"#)
        + &publish_request("a", r#"{"n":3}"#);
    let (first, second) = all.split_at(all.len() - 5);
    publisher.write_all(first.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    publisher.write_all(second.as_bytes()).unwrap();
    let mut answers = BufReader::new(publisher);
    for _ in 0..3 {
        assert_eq!(response(&mut answers), "HTTP/1.1 202 Accepted");
    }
    let frame = |r: &mut BufReader<TcpStream>| {
        let mut data = String::new();
        r.read_line(&mut data).unwrap();
        let mut blank = String::new();
        r.read_line(&mut blank).unwrap();
        assert_eq!(blank, "\n");
        data
    };
    assert_eq!(frame(&mut a), "data: {\"n\":1}\n");
    assert_eq!(frame(&mut a), "data: {\"n\":3}\n");
    assert_eq!(frame(&mut b), "data: {\"n\":2}\n");
}

#[test]
fn refuses_a_malformed_request_and_keeps_serving() {
    refuses_malformed(start("mio"));
}

#[test]
fn on_tokio_refuses_a_malformed_request_and_keeps_serving() {
    refuses_malformed(start("tokio"));
}

fn refuses_malformed(floor: Floor) {
    let mut bad = connect(floor.addr);
    bad.write_all(b"\x01\x02 nonsense\r\n\r\n").unwrap();
    let mut r = BufReader::new(bad);
    assert_eq!(response(&mut r), "HTTP/1.1 400 Bad Request");
    let mut rest = Vec::new();
    assert_eq!(r.read_to_end(&mut rest).unwrap(), 0, "closed after a 400");
    let mut probe = connect(floor.addr);
    probe
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut BufReader::new(probe)), "HTTP/1.1 200 OK");
}
