//! A WebSocket client for the tests: real sockets (tokio-tungstenite), JSON frames.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Ws {
    socket: Socket,
    next_id: u64,
}

/// How an upgrade went: the connection, or the HTTP status it was refused with (0: no
/// server answered).
pub async fn open(port: u16, host: &str, query: &str) -> Result<Ws, u16> {
    let mut req = format!("ws://127.0.0.1:{port}/realtime/ws{query}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("host", HeaderValue::from_str(host).unwrap());
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("picloud.v1"),
    );
    match tokio_tungstenite::connect_async(req).await {
        Ok((socket, res)) => {
            assert_eq!(
                res.headers().get("sec-websocket-protocol").unwrap(),
                "picloud.v1"
            );
            Ok(Ws { socket, next_id: 0 })
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(tokio_tungstenite::tungstenite::Error::Io(_)) => Err(0),
        Err(e) => panic!("connect: {e}"),
    }
}

pub async fn connect(port: u16, app: &str, token: Option<&str>) -> Ws {
    let query = token.map_or(String::new(), |t| format!("?token={t}"));
    open(port, &format!("{app}.localhost:{port}"), &query)
        .await
        .expect("upgraded")
}

impl Ws {
    pub async fn send_text(&mut self, text: String) {
        self.socket.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.socket.send(msg).await.unwrap();
    }

    /// Sends a request with a fresh id and returns its answer (frames before it are kept
    /// out of the way: `pending`).
    pub async fn request(&mut self, mut frame: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        frame["id"] = json!(id);
        self.send_text(frame.to_string()).await;
        loop {
            let f = self.next().await.expect("an answer");
            if f["id"] == json!(id) {
                return f;
            }
        }
    }

    /// The next text frame as JSON, `None` after 5 s or once closed.
    pub async fn next(&mut self) -> Option<Value> {
        self.next_within(Duration::from_secs(5)).await
    }

    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(wait, self.socket.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                Message::Text(t) => return Some(serde_json::from_str(t.as_str()).unwrap()),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// The next frame of `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let f = self
                .next()
                .await
                .unwrap_or_else(|| panic!("a {kind} frame"));
            if f["type"] == kind {
                return f;
            }
        }
    }

    /// Nothing but pongs and presence within `wait`.
    pub async fn quiet(&mut self, wait: Duration) -> Option<Value> {
        self.next_within(wait).await
    }

    /// Reads until the server closes; its close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.socket.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return frame.map(|f| u16::from(f.code));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return None,
                Err(_) => panic!("the server did not close"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
        while let Ok(Some(Ok(_))) =
            tokio::time::timeout(Duration::from_secs(2), self.socket.next()).await
        {}
    }
}
