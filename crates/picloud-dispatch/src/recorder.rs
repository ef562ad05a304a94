//! Invocation records are written in batches by one task: a script run costs a channel
//! send, not a database round trip of its own. A batch collects for up to [`LINGER`]
//! (records show up in the logs that much later); without the wait, a busy endpoint's
//! records trickle in one or two at a time and each becomes its own insert (measured:
//! one SQLite insert per request, a large share of a hello-world request's cost).

use std::sync::Arc;

use picloud_core::dispatch::Invocation;
use picloud_core::ids::AppId;
use picloud_core::store::InvocationStore;
use tokio::sync::{mpsc, oneshot};

const BATCH: usize = 500;
const LINGER: std::time::Duration = std::time::Duration::from_millis(100);

enum Msg {
    Record(Box<(AppId, Invocation)>),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
}

impl Recorder {
    pub fn start(store: Arc<dyn InvocationStore>) -> Self {
        let (tx, rx) = mpsc::channel(8192);
        tokio::spawn(write_loop(rx, store));
        Self { tx }
    }

    pub async fn record(&self, app: AppId, inv: Invocation) {
        let _ = self.tx.send(Msg::Record(Box::new((app, inv)))).await;
    }

    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn write_loop(mut rx: mpsc::Receiver<Msg>, store: Arc<dyn InvocationStore>) {
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Msg::Record(r) => batch.push(*r),
                // A flush writes what is there now.
                Msg::Flush(done) => {
                    flushes.push(done);
                    break;
                }
            }
            if batch.len() >= BATCH {
                break;
            }
            next = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .unwrap_or_default();
        }
        if !batch.is_empty() {
            if let Err(e) = store.record_invocations(&batch).await {
                crate::warn_unless_full!(e, records = batch.len(), "invocation records lost");
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}
