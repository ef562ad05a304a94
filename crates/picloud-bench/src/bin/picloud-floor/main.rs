//! `picloud-floor --listen ADDR` (prints `listening on ADDR` once bound): the least a server
//! can do for the benchmark's Nchan-shaped protocol, so that `picloud-bench --target all` can
//! show what the kernel alone costs per delivery on this machine (the floor under any real
//! server's figure, PiCloud's or Nchan's).
//!
//! - `GET /sub/{topic}`: a `200` `text/event-stream` head, then `data: <body>\n\n` for every
//!   publish to that topic (no `id:`, no keepalive, no history: nothing a real server owes).
//! - `POST /pub/{topic}` with a `Content-Length` body: the frame to each subscriber of the
//!   topic, then `202 Accepted` with an empty body.
//! - Any other request: `200 ok` (the bench's readiness probe).
//!
//! One thread, edge-triggered epoll (mio), one `recv` per readiness unless it filled the
//! buffer, one `send` per frame and per answer, and no allocation per publish once buffers
//! have grown. A subscriber whose unsent bytes pass `MAX_UNSENT` is closed. It is a
//! measuring instrument for the bench, not part of PiCloud. `PICLOUD_FLOOR_RUNTIME=tokio`
//! runs the same protocol on tokio instead (`on_tokio.rs`), to price the runtime.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

mod on_tokio;

const LISTENER: Token = Token(usize::MAX);
const READ_BUF: usize = 64 * 1024;
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;
const MAX_UNSENT: usize = 4 * 1024 * 1024;
const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\n\r\n";
const PUBLISHED: &[u8] = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
const BAD: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

fn main() {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = match (args.next().as_deref(), args.next()) {
        (Some("--listen"), Some(a)) => match a.parse() {
            Ok(a) => a,
            Err(e) => fail(&format!("--listen {a}: {e}")),
        },
        _ => fail("usage: picloud-floor --listen 127.0.0.1:PORT"),
    };
    let served = match std::env::var("PICLOUD_FLOOR_RUNTIME").as_deref() {
        Ok("tokio") => on_tokio::serve(addr),
        Ok("mio") | Err(_) => serve(addr),
        Ok(other) => fail(&format!("PICLOUD_FLOOR_RUNTIME={other}: mio or tokio")),
    };
    if let Err(e) = served {
        fail(&format!("picloud-floor on {addr}: {e}"));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

/// What one complete request asks for; `len` is how many buffered bytes it used.
#[derive(Debug, PartialEq, Eq)]
enum Request<'a> {
    Subscribe {
        topic: &'a [u8],
        len: usize,
    },
    Publish {
        topic: &'a [u8],
        body: &'a [u8],
        len: usize,
    },
    Other {
        len: usize,
    },
}

/// Parses the request at the start of `buf`: `Ok(None)` until it is complete.
fn parse(buf: &[u8]) -> Result<Option<Request<'_>>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err("head too large"),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed head"),
    };
    let mut body_len = 0usize;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            body_len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or("bad Content-Length")?;
        }
    }
    if body_len > MAX_BODY {
        return Err("body too large");
    }
    let len = head + body_len;
    if buf.len() < len {
        return Ok(None);
    }
    let path = req.path.unwrap_or("").as_bytes();
    let topic = |prefix: &[u8]| path.strip_prefix(prefix).filter(|t| !t.is_empty());
    Ok(Some(match (req.method, topic(b"/sub/"), topic(b"/pub/")) {
        (Some("GET"), Some(topic), _) => Request::Subscribe { topic, len },
        (Some("POST"), _, Some(topic)) => Request::Publish {
            topic,
            body: &buf[head..len],
            len,
        },
        _ => Request::Other { len },
    }))
}

struct Conn {
    stream: TcpStream,
    /// The start of a request not yet complete.
    input: Vec<u8>,
    /// Accepted for sending, not yet taken by the kernel.
    unsent: Vec<u8>,
    /// The topic this connection subscribed to.
    topic: Option<Box<[u8]>>,
}

struct Floor {
    poll: Poll,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    subscribers: HashMap<Box<[u8]>, Vec<usize>>,
    /// The frame being fanned out (reused).
    frame: Vec<u8>,
    /// Connections to close once the current event is handled.
    dead: Vec<usize>,
    /// Every read lands here first (zeroed once).
    scratch: Vec<u8>,
}

fn serve(addr: SocketAddr) -> io::Result<()> {
    let mut listener = TcpListener::bind(addr)?;
    // The address actually bound (port 0 picks one), for whoever started us.
    println!("listening on {}", listener.local_addr()?);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut floor = Floor {
        poll,
        conns: Vec::new(),
        free: Vec::new(),
        subscribers: HashMap::new(),
        frame: Vec::new(),
        dead: Vec::new(),
        scratch: vec![0; READ_BUF],
    };
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = floor.poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                floor.accept(&listener)?;
                continue;
            }
            let id = ev.token().0;
            if ev.is_writable() {
                floor.flush(id);
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                floor.readable(id);
            }
            floor.close_dead();
        }
    }
}

impl Floor {
    fn accept(&mut self, listener: &TcpListener) -> io::Result<()> {
        loop {
            let (mut stream, _) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Out of descriptors and the like: refuse this one, keep serving.
                Err(e) => {
                    eprintln!("warn: accept: {e}");
                    return Ok(());
                }
            };
            if stream.set_nodelay(true).is_err() {
                continue; // already failing: drop it, keep serving
            }
            let id = self.free.pop().unwrap_or(self.conns.len());
            self.poll.registry().register(
                &mut stream,
                Token(id),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            let conn = Some(Conn {
                stream,
                input: Vec::new(),
                unsent: Vec::new(),
                topic: None,
            });
            if id == self.conns.len() {
                self.conns.push(conn);
            } else {
                self.conns[id] = conn;
            }
        }
    }

    fn readable(&mut self, id: usize) {
        let mut buf = std::mem::take(&mut self.scratch);
        while !self.dead.contains(&id) {
            let Some(c) = self.conns.get_mut(id).and_then(Option::as_mut) else {
                break;
            };
            let n = match c.stream.read(&mut buf) {
                Ok(0) => {
                    self.dead.push(id);
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.dead.push(id);
                    break;
                }
            };
            // Requests are handled straight from the read buffer; only an incomplete tail
            // is kept on the connection.
            let mut pending = std::mem::take(&mut c.input);
            if pending.is_empty() {
                let used = self.handle_requests(id, &buf[..n]);
                pending.extend_from_slice(&buf[used..n]);
            } else {
                pending.extend_from_slice(&buf[..n]);
                let used = self.handle_requests(id, &pending);
                pending.drain(..used);
            }
            if let Some(c) = self.conns.get_mut(id).and_then(Option::as_mut) {
                c.input = pending;
            }
            // A read that did not fill the buffer took everything queued; with edge
            // triggering, anything later raises a new event.
            if n < buf.len() {
                break;
            }
        }
        self.scratch = buf;
    }

    /// Handles every complete request at the start of `input`, in order; answers how many
    /// bytes they used.
    fn handle_requests(&mut self, id: usize, input: &[u8]) -> usize {
        let mut used = 0;
        loop {
            match parse(&input[used..]) {
                Ok(None) => return used,
                Ok(Some(Request::Subscribe { topic, len })) => {
                    used += len;
                    if let Some(c) = self.conns[id].as_mut() {
                        if c.topic.is_none() {
                            let topic: Box<[u8]> = topic.into();
                            c.topic = Some(topic.clone());
                            self.subscribers.entry(topic).or_default().push(id);
                        }
                    }
                    self.send(id, SSE_HEAD);
                }
                Ok(Some(Request::Publish { topic, body, len })) => {
                    used += len;
                    self.frame.clear();
                    self.frame.extend_from_slice(b"data: ");
                    self.frame.extend_from_slice(body);
                    self.frame.extend_from_slice(b"\n\n");
                    for &s in self.subscribers.get(topic).into_iter().flatten() {
                        send(&mut self.conns, &mut self.dead, s, &self.frame);
                    }
                    self.send(id, PUBLISHED);
                }
                Ok(Some(Request::Other { len })) => {
                    used += len;
                    self.send(id, OK);
                }
                Err(_) => {
                    self.send(id, BAD);
                    self.dead.push(id);
                    return input.len();
                }
            }
        }
    }

    fn send(&mut self, id: usize, bytes: &[u8]) {
        send(&mut self.conns, &mut self.dead, id, bytes);
    }

    fn flush(&mut self, id: usize) {
        let Some(c) = self.conns.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        while !c.unsent.is_empty() {
            match c.stream.write(&c.unsent) {
                Ok(n) => {
                    c.unsent.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead.push(id);
                    return;
                }
            }
        }
    }

    fn close_dead(&mut self) {
        while let Some(id) = self.dead.pop() {
            let Some(mut c) = self.conns.get_mut(id).and_then(Option::take) else {
                continue;
            };
            if let Some(topic) = c.topic.take() {
                if let Some(subs) = self.subscribers.get_mut(&topic) {
                    subs.retain(|&s| s != id);
                    if subs.is_empty() {
                        self.subscribers.remove(&topic);
                    }
                }
            }
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.free.push(id);
        }
    }
}

/// Writes `bytes` to `id` now, or queues them behind what is already queued.
fn send(conns: &mut [Option<Conn>], dead: &mut Vec<usize>, id: usize, bytes: &[u8]) {
    let Some(c) = conns.get_mut(id).and_then(Option::as_mut) else {
        return;
    };
    let mut rest = bytes;
    if c.unsent.is_empty() {
        match c.stream.write(bytes) {
            Ok(n) => rest = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                dead.push(id);
                return;
            }
        }
    }
    if c.unsent.len() + rest.len() > MAX_UNSENT {
        dead.push(id);
        return;
    }
    c.unsent.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_bench_requests() {
        let sub = b"GET /sub/t7 HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n";
        assert_eq!(
            parse(sub),
            Ok(Some(Request::Subscribe {
                topic: b"t7",
                len: sub.len()
            }))
        );
        let publish =
            b"POST /pub/t7 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 7\r\n\r\n{\"t\":1}GET ";
        assert_eq!(
            parse(publish),
            Ok(Some(Request::Publish {
                topic: b"t7",
                body: b"{\"t\":1}",
                len: publish.len() - 4
            }))
        );
        assert_eq!(parse(&publish[..publish.len() - 6]), Ok(None));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Ok(Some(Request::Other { len: 18 }))
        ));
        assert!(parse(b"GET /sub/t HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse(b"\x01\x02 nonsense\r\n\r\n").is_err());
    }
}
