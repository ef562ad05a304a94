//! The same floor on tokio, shaped as PiCloud serves S4 (`PICLOUD_FLOOR_RUNTIME=tokio`): a
//! multi-thread runtime (one worker under `taskset`), a task per connection reading with
//! readiness, a topic map behind a std `Mutex`, and the frame written straight to the
//! subscriber's fd from the publishing task. Its distance from the mio floor is what the
//! runtime and the task per connection cost, before any of PiCloud's own work.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};

use super::{parse, Request, BAD, OK, PUBLISHED, READ_BUF, SSE_HEAD};

type Subscribers = Arc<Mutex<HashMap<Box<[u8]>, Vec<Arc<TcpStream>>>>>;

pub fn serve(addr: SocketAddr) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        println!("listening on {}", listener.local_addr()?);
        let subscribers = Subscribers::default();
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    eprintln!("warn: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            if stream.set_nodelay(true).is_ok() {
                tokio::spawn(connection(Arc::new(stream), subscribers.clone()));
            }
        }
    })
}

async fn connection(stream: Arc<TcpStream>, subscribers: Subscribers) {
    let mut input: Vec<u8> = Vec::with_capacity(READ_BUF);
    let mut frame = Vec::new();
    let mut topic: Option<Box<[u8]>> = None;
    'conn: loop {
        if stream.readable().await.is_err() {
            break;
        }
        match stream.try_read_buf(&mut input) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
        let mut used = 0;
        loop {
            let answer = match parse(&input[used..]) {
                Ok(None) => break,
                Ok(Some(Request::Subscribe { topic: t, len })) => {
                    used += len;
                    if topic.is_none() {
                        topic = Some(t.into());
                        let mut map = subscribers.lock().expect("topic map");
                        map.entry(t.into()).or_default().push(stream.clone());
                    }
                    SSE_HEAD
                }
                Ok(Some(Request::Publish { topic, body, len })) => {
                    used += len;
                    frame.clear();
                    frame.extend_from_slice(b"data: ");
                    frame.extend_from_slice(body);
                    frame.extend_from_slice(b"\n\n");
                    let map = subscribers.lock().expect("topic map");
                    for s in map.get(topic).into_iter().flatten() {
                        // Like PiCloud's direct write: the fd, not tokio's readiness. A
                        // full or failing socket loses the frame (S4's never fill).
                        send_now(s, &frame);
                    }
                    PUBLISHED
                }
                Ok(Some(Request::Other { len })) => {
                    used += len;
                    OK
                }
                Err(_) => {
                    let _ = write_all(&stream, BAD).await;
                    break 'conn;
                }
            };
            if write_all(&stream, answer).await.is_err() {
                break 'conn;
            }
        }
        // `parse` refuses oversized heads and bodies, so what stays here is bounded.
        input.drain(..used);
    }
    if let Some(t) = topic {
        let mut map = subscribers.lock().expect("topic map");
        if let Some(subs) = map.get_mut(&t) {
            subs.retain(|s| !Arc::ptr_eq(s, &stream));
            if subs.is_empty() {
                map.remove(&t);
            }
        }
    }
}

fn send_now(s: &TcpStream, bytes: &[u8]) {
    // SAFETY: the fd belongs to `s`, which outlives the call; `bytes` is a valid buffer.
    unsafe {
        libc::send(
            s.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        );
    }
}

async fn write_all(s: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match s.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
