//! The publish path (DESIGN §3): group commit, then broadcast after commit.
//!
//! Callers hand a message to [`Publisher::publish`] and wait for its seq. One writer task
//! drains whatever is queued (up to a batch limit) and commits it in one transaction, so N
//! concurrent publishers cost one commit rather than N. After the commit the batch is
//! broadcast in seq order and each caller answered. On PostgreSQL two batches may commit
//! at once (their topic row locks keep seq order = commit order); broadcasts still leave in
//! batch order. The rare inversion (a later batch that took a topic's lock first) and any
//! reordering across nodes are repaired by subscribers from history.
//!
//! If a batch fails, its items are retried one by one so that one bad item (say, an app
//! deleted a moment ago) fails alone.

use std::sync::Arc;

use picloud_core::ids::AppId;
use picloud_core::message::{Broadcaster, Message, PublishItem};
use picloud_core::store::Store;
use picloud_core::topic::TopicName;
use picloud_core::StoreError;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

use crate::stats::Stats;

/// Most items committed in one transaction.
const MAX_BATCH_ITEMS: usize = 512;
/// Most payload bytes committed in one transaction.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Queue depth before publishers wait (backpressure instead of unbounded memory).
const QUEUE: usize = 8192;

/// A committed publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub seq: i64,
    /// Unix epoch milliseconds.
    pub published_at: i64,
}

struct Pending {
    item: PublishItem,
    reply: oneshot::Sender<Result<i64, StoreError>>,
}

#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<Pending>,
    broadcaster: Arc<dyn Broadcaster>,
    stats: Arc<Stats>,
    committed: Arc<Notify>,
}

impl Publisher {
    /// Starts the writer task. It ends when every `Publisher` clone is dropped.
    pub fn start(
        store: Arc<dyn Store>,
        broadcaster: Arc<dyn Broadcaster>,
        stats: Arc<Stats>,
    ) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let committed = Arc::new(Notify::new());
        tokio::spawn(writer(
            rx,
            store,
            broadcaster.clone(),
            stats.clone(),
            committed.clone(),
        ));
        Self {
            queue,
            broadcaster,
            stats,
            committed,
        }
    }

    /// Notified after each committed batch: a batch may have written outbox deliveries,
    /// so the dispatcher wakes on it instead of waiting for its next poll.
    pub fn committed(&self) -> Arc<Notify> {
        self.committed.clone()
    }

    /// Durable publish: stored, seq assigned, outbox written, then broadcast. `payload` must
    /// be compact JSON (the API normalises it).
    pub async fn publish(
        &self,
        app: AppId,
        topic: TopicName,
        payload: Arc<str>,
    ) -> Result<Published, StoreError> {
        let published_at = chrono::Utc::now().timestamp_millis();
        let (reply, answer) = oneshot::channel();
        let item = PublishItem {
            app_id: app,
            topic,
            payload,
            published_at,
        };
        self.queue
            .send(Pending { item, reply })
            .await
            .map_err(|_| StoreError::Unavailable("publisher stopped".into()))?;
        let seq = answer
            .await
            .map_err(|_| StoreError::Unavailable("publisher stopped".into()))??;
        Ok(Published { seq, published_at })
    }

    /// Ephemeral publish: live subscribers only, no seq, no history, no triggers.
    pub fn publish_ephemeral(&self, app: AppId, topic: TopicName, payload: Arc<str>) -> i64 {
        let published_at = chrono::Utc::now().timestamp_millis();
        self.stats.published_ephemeral.add(1);
        self.broadcaster.broadcast(Arc::new(Message {
            app_id: app,
            topic,
            seq: None,
            payload,
            published_at,
        }));
        published_at
    }
}

/// Gathers what is queued into batches and commits them, up to the store's
/// [`Store::publish_concurrency`] at once. Broadcasts leave in batch order (each batch waits
/// for the previous one's broadcast), so this node never reorders a topic's messages itself.
async fn writer(
    mut rx: mpsc::Receiver<Pending>,
    store: Arc<dyn Store>,
    broadcaster: Arc<dyn Broadcaster>,
    stats: Arc<Stats>,
    committed: Arc<Notify>,
) {
    let slots = Arc::new(Semaphore::new(store.publish_concurrency().max(1)));
    let mut previous: Option<oneshot::Receiver<()>> = None;
    loop {
        // A slot first, then the batch: whatever queues while every slot is busy joins the
        // next batch instead of waiting behind a small one.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut bytes = first.item.payload.len();
        let mut batch: Vec<Pending> = vec![first];
        while batch.len() < MAX_BATCH_ITEMS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.item.payload.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let (done, next) = oneshot::channel();
        let before = previous.replace(next);
        let (store, broadcaster, stats) = (store.clone(), broadcaster.clone(), stats.clone());
        let committed = committed.clone();
        tokio::spawn(async move {
            let results = commit(&*store, &batch).await;
            if results.iter().any(Result::is_ok) {
                committed.notify_one();
            }
            if let Some(before) = before {
                let _ = before.await; // sent or dropped: either way it is our turn
            }
            finish(batch.into_iter().zip(results), &*broadcaster, &stats);
            drop(done);
            drop(slot);
        });
    }
}

/// One transaction for the batch; if it fails, each item alone (in order) so that one bad
/// item (say, an app deleted a moment ago) fails alone.
async fn commit(store: &dyn Store, batch: &[Pending]) -> Vec<Result<i64, StoreError>> {
    let items: Vec<PublishItem> = batch.iter().map(|p| p.item.clone()).collect();
    match store.publish(&items).await {
        Ok(seqs) => seqs.into_iter().map(Ok).collect(),
        Err(e) if items.len() == 1 => vec![Err(e)],
        Err(_) => {
            let mut results = Vec::with_capacity(items.len());
            for item in &items {
                results.push(
                    store
                        .publish(std::slice::from_ref(item))
                        .await
                        .map(|s| s[0]),
                );
            }
            results
        }
    }
}

fn finish(
    done: impl Iterator<Item = (Pending, Result<i64, StoreError>)>,
    broadcaster: &dyn Broadcaster,
    stats: &Stats,
) {
    for (p, result) in done {
        if let Ok(seq) = &result {
            stats.published_durable.add(1);
            let PublishItem {
                app_id,
                topic,
                payload,
                published_at,
            } = p.item;
            broadcaster.broadcast(Arc::new(Message {
                app_id,
                topic,
                seq: Some(*seq),
                payload,
                published_at,
            }));
        }
        let _ = p.reply.send(result);
    }
}
