//! The relay over Redis PUB/SUB (RESP3, one connection per node). The connection manager
//! reconnects by itself and subscribes again to every channel after a reconnect; messages
//! published while a node was away are lost to it, as the relay's contract allows (the node
//! repairs from the database). A node starts while Redis is down: the first connection is
//! retried in the background, and until then every call answers `Unavailable`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{PushInfo, PushKind, Value};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};

use super::{Received, Relay, RelayError, RECEIVED_CAPACITY};

/// Each Redis call's deadline: a relay that does not answer is unavailable, and a publish
/// must not wait on it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisRelay {
    conn: Arc<OnceLock<ConnectionManager>>,
    tx: broadcast::Sender<Received>,
}

fn unavailable(e: ::redis::RedisError) -> RelayError {
    RelayError::Unavailable(e.to_string())
}

/// `url` with RESP3 asked for: pushes (subscribed messages) share the connection.
fn resp3(url: &str) -> String {
    if url.contains("protocol=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}protocol=resp3")
}

impl RedisRelay {
    /// Starts connecting (in the background, until it succeeds). Fails only for a URL
    /// that is not one.
    pub fn start(url: &str) -> Result<Self, RelayError> {
        let client = ::redis::Client::open(resp3(url)).map_err(unavailable)?;
        let (push_tx, push_rx) = mpsc::unbounded_channel::<PushInfo>();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(push_tx)
            .set_automatic_resubscription()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_max_delay(Duration::from_secs(1));
        let conn = Arc::new(OnceLock::new());
        tokio::spawn(first_connection(client, config, conn.clone()));
        let (tx, _) = broadcast::channel(RECEIVED_CAPACITY);
        tokio::spawn(forward(push_rx, tx.clone()));
        Ok(Self { conn, tx })
    }

    /// [`Self::start`], then waits up to `limit` for the connection.
    pub async fn connect(url: &str, limit: Duration) -> Result<Self, RelayError> {
        let relay = Self::start(url)?;
        let deadline = tokio::time::Instant::now() + limit;
        while relay.conn.get().is_none() {
            if tokio::time::Instant::now() >= deadline {
                return Err(RelayError::Unavailable("not connected yet".into()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(relay)
    }

    fn conn(&self) -> Result<ConnectionManager, RelayError> {
        self.conn
            .get()
            .cloned()
            .ok_or_else(|| RelayError::Unavailable("not connected yet".into()))
    }
}

/// Connects once Redis answers; from then on the connection manager reconnects by itself.
async fn first_connection(
    client: ::redis::Client,
    config: ConnectionManagerConfig,
    conn: Arc<OnceLock<ConnectionManager>>,
) {
    let mut logged = false;
    loop {
        match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
            Ok(c) => {
                let _ = conn.set(c);
                if logged {
                    tracing::info!("relay connected to Redis");
                }
                return;
            }
            Err(e) => {
                if !logged {
                    tracing::warn!(error = %e, "Redis unreachable; retrying every second (this node polls PostgreSQL meanwhile)");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Turns Redis's pushes into received messages; ends with the connection manager.
async fn forward(mut pushes: mpsc::UnboundedReceiver<PushInfo>, tx: broadcast::Sender<Received>) {
    while let Some(push) = pushes.recv().await {
        if push.kind != PushKind::Message {
            continue;
        }
        let Ok([channel, payload]) = <[Value; 2]>::try_from(push.data) else {
            continue;
        };
        let (Value::BulkString(channel), Value::BulkString(payload)) = (channel, payload) else {
            continue;
        };
        let Ok(channel) = String::from_utf8(channel) else {
            continue;
        };
        let _ = tx.send(Received {
            channel: Arc::from(channel),
            payload: Bytes::from(payload),
        });
    }
}

#[async_trait]
impl Relay for RedisRelay {
    async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), RelayError> {
        let mut conn = self.conn()?;
        ::redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload.as_ref())
            .query_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn publish_all(&self, messages: Vec<(String, Bytes)>) -> Result<(), RelayError> {
        let mut pipe = ::redis::pipe();
        for (channel, payload) in &messages {
            pipe.cmd("PUBLISH")
                .arg(channel)
                .arg(payload.as_ref())
                .ignore();
        }
        let mut conn = self.conn()?;
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    async fn subscribe(&self, channel: &str) -> Result<(), RelayError> {
        let mut conn = self.conn()?;
        conn.subscribe(channel).await.map_err(unavailable)
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), RelayError> {
        let mut conn = self.conn()?;
        conn.unsubscribe(channel).await.map_err(unavailable)
    }

    fn received(&self) -> broadcast::Receiver<Received> {
        self.tx.subscribe()
    }
}
