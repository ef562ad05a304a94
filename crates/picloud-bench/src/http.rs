//! A minimal HTTP/1.1 keep-alive client over a raw `TcpStream`: write a complete request,
//! read one response (Content-Length or chunked). No pipelining, no redirects, no TLS:
//! just the cheapest way for one client core to drive many requests.

use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::AsRawFd;

use anyhow::{bail, Context, Result};
use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct HttpConn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    body: Range<usize>,
}

pub async fn connect_stream(addr: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    s.set_nodelay(true)?;
    crate::sys::set_linger_zero(s.as_raw_fd());
    Ok(s)
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = connect_stream(addr).await?;
        Ok(Self {
            addr,
            stream: Some(stream),
            buf: Vec::with_capacity(4096),
            body: 0..0,
        })
    }

    /// The body of the last response (chunked bodies are returned raw, with their framing).
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body.clone()]
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(self.body()).into_owned()
    }

    /// Sends `req` (a complete request) and reads the response; returns its status. The
    /// connection is reopened first if the previous response closed it or failed.
    pub async fn roundtrip(&mut self, req: &[u8]) -> Result<u16> {
        if self.stream.is_none() {
            self.stream = Some(connect_stream(self.addr).await?);
        }
        let result = self.exchange(req).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, req: &[u8]) -> Result<u16> {
        let stream = self.stream.as_mut().expect("connected");
        stream.write_all(req).await?;
        self.buf.clear();
        self.body = 0..0;
        let head_end = loop {
            if let Some(i) = memmem::find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.buf.len() > 64 * 1024 {
                bail!("response head over 64 KiB");
            }
            read_more(stream, &mut self.buf).await?;
        };
        let head = &self.buf[..head_end];
        let status = parse_status(head)?;
        let mut content_length: Option<usize> = None;
        let mut chunked = false;
        let mut close = false;
        for line in head.split(|&b| b == b'\n').skip(1) {
            let line = trim(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
            if name.eq_ignore_ascii_case(b"content-length") {
                content_length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = value.eq_ignore_ascii_case(b"chunked");
            } else if name.eq_ignore_ascii_case(b"connection") {
                close = value.eq_ignore_ascii_case(b"close");
            }
        }
        let start = head_end + 4;
        if let Some(len) = content_length {
            while self.buf.len() < start + len {
                read_more(stream, &mut self.buf).await?;
            }
            self.body = start..start + len;
        } else if chunked {
            // Small bodies only: wait for the last-chunk marker.
            while !self.buf[start..].ends_with(b"0\r\n\r\n") {
                read_more(stream, &mut self.buf).await?;
            }
            self.body = start..self.buf.len();
        } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
            // Body until close.
            loop {
                let n = stream.read_buf(&mut self.buf).await?;
                if n == 0 {
                    break;
                }
            }
            self.body = start..self.buf.len();
            close = true;
        }
        if close {
            self.stream = None;
        }
        Ok(status)
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<()> {
    buf.reserve(4096);
    let n = stream.read_buf(buf).await?;
    if n == 0 {
        bail!("connection closed by the server");
    }
    Ok(())
}

/// `HTTP/1.1 201 Created` → 201.
pub fn parse_status(head: &[u8]) -> Result<u16> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let code = line
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.parse().ok());
    match code {
        Some(c) if line.starts_with(b"HTTP/1.") => Ok(c),
        _ => bail!(
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&line[..line.len().min(80)])
        ),
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 201 Created\r").unwrap(), 201);
        assert!(parse_status(b"garbage").is_err());
        assert_eq!(trim(b"  x y \r"), b"x y");
    }
}
