//! The publish path (DESIGN §3): group commit, then broadcast after commit.
//!
//! Callers hand a message to [`Publisher::publish`] and wait for its seq. Requests go to
//! one of the lanes (`PICLOUD_PUBLISH_LANES`, default the store's [`MessageStore::publish_lanes`],
//! one) by their first topic; each lane's writer drains whatever is queued (up to a batch
//! limit), commits it in one transaction, then broadcasts it in seq order and answers each
//! caller, one batch at a time. N concurrent publishers thus cost one commit rather than N.
//! When fewer requests are queued than the previous batch answered plus those that queued
//! during its commit, the writer waits up to [`GATHER_WAIT`] for the rest: publishers that
//! wait for their answers come back one by one, and committing the first alone would make
//! the others wait out that commit.
//!
//! Why lanes by topic, when there are several: a batch holds its topics' row locks until
//! its commit is flushed, so two batches that share a topic commit one after the other,
//! each paying a WAL flush. Batches of different lanes share no single-topic request, so
//! on PostgreSQL they commit side by side and share a flush. (Measured end to end, one
//! lane still wins on this 2-core host: its batches are larger; see `MessageStore::publish_lanes`.)
//! Ordering:
//! a topic's one-topic requests all go through one lane, in order. A request over several
//! topics goes through its first topic's lane; it is still atomic and seq order still
//! follows commit order (row locks, taken in one global order), but its broadcast may
//! overtake or trail another lane's: subscribers repair that from history, as they do
//! for reordering across nodes.
//!
//! A caller's request is one unit: [`Publisher::publish_many`] commits all of its messages in
//! one transaction or none. If a batch fails, its requests are retried one by one so that
//! one bad request (say, for an app deleted a moment ago) fails alone; unless it failed for
//! want of space or of a database, which fails them all at once. A request is answered
//! with seqs only after its transaction committed, and only committed messages are
//! broadcast: a failed commit's seqs are never seen by anyone (the store discards the
//! connection it failed on, so the next batch takes those seqs again, committed).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use picloud_core::ids::AppId;
use picloud_core::message::{Broadcaster, Message, PublishItem};
use picloud_core::store::MessageStore;
use picloud_core::topic::TopicName;
use picloud_core::StoreError;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::stats::Stats;

/// Most items committed in one transaction.
const MAX_BATCH_ITEMS: usize = 512;
/// Most payload bytes committed in one transaction.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Longest a batch waits for the requests it expects (see `writer`; tokio's timer has
/// millisecond resolution). Measured, S5 with 16 one-message publishers
/// (docs/benchmarks.md): PostgreSQL 11.5k/10.1k → 13.2k/16.7k publishes/s, server CPU per
/// publish at 5k/s down 7–20 % on both databases, SQLite's top rate unchanged. A yielding
/// spin instead of the timer made SQLite slower.
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_millis(1);
/// Queued requests, over all lanes, before publishers wait (backpressure instead of
/// unbounded memory).
const QUEUE: usize = 8192;

/// A committed publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub seq: i64,
    /// Unix epoch milliseconds.
    pub published_at: i64,
}

/// One caller's request: all of its items commit together or not at all.
struct Pending {
    items: Vec<PublishItem>,
    reply: Reply,
}

/// Where a request's seqs (or its error) go.
type Reply = oneshot::Sender<Result<Vec<i64>, StoreError>>;

impl Pending {
    fn bytes(&self) -> usize {
        self.items.iter().map(|i| i.payload.len()).sum()
    }
}

#[derive(Clone)]
pub struct Publisher {
    lanes: Arc<[mpsc::Sender<Pending>]>,
    broadcaster: Arc<dyn Broadcaster>,
    stats: Arc<Stats>,
    committed: Arc<Notify>,
}

impl Publisher {
    /// Starts one writer task per lane (at least one). They end when every `Publisher`
    /// clone is dropped.
    pub fn start(
        store: Arc<dyn MessageStore>,
        broadcaster: Arc<dyn Broadcaster>,
        stats: Arc<Stats>,
        lanes: usize,
    ) -> Self {
        let committed = Arc::new(Notify::new());
        let lanes = lanes.max(1);
        metrics::describe_histogram!(crate::BATCH_HISTOGRAM, "Messages per publish transaction");
        metrics::describe_histogram!(
            crate::COMMIT_HISTOGRAM,
            metrics::Unit::Seconds,
            "Time per publish transaction, until committed"
        );
        let sink = Arc::new(Sink {
            store,
            broadcaster: broadcaster.clone(),
            stats: stats.clone(),
            committed: committed.clone(),
            batch_messages: metrics::histogram!(crate::BATCH_HISTOGRAM),
            commit_seconds: metrics::histogram!(crate::COMMIT_HISTOGRAM),
        });
        let lanes = (0..lanes)
            .map(|_| {
                let (queue, rx) = mpsc::channel((QUEUE / lanes).max(1));
                tokio::spawn(writer(rx, sink.clone()));
                queue
            })
            .collect();
        Self {
            lanes,
            broadcaster,
            stats,
            committed,
        }
    }

    /// The lane of a request: its first topic's (the same topic, the same lane, so one-topic
    /// requests on a topic stay in order).
    fn lane(&self, first: &PublishItem) -> &mpsc::Sender<Pending> {
        if self.lanes.len() == 1 {
            return &self.lanes[0];
        }
        let mut h = std::hash::DefaultHasher::new();
        (first.app_id.as_str(), first.topic.as_str()).hash(&mut h);
        &self.lanes[(h.finish() % self.lanes.len() as u64) as usize]
    }

    /// Notified after each committed batch that wrote outbox deliveries, so the dispatcher
    /// wakes on it instead of waiting for its next poll (and sleeps through the rest).
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
        let published = self.publish_many(app, vec![(topic, payload)]).await?;
        Ok(published[0])
    }

    /// Durable publish of several messages of one app, atomically: one transaction, every
    /// message stored or none. Seqs follow the order given within each topic. Answers in
    /// the order given.
    pub async fn publish_many(
        &self,
        app: AppId,
        messages: Vec<(TopicName, Arc<str>)>,
    ) -> Result<Vec<Published>, StoreError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let published_at = chrono::Utc::now().timestamp_millis();
        let (reply, answer) = oneshot::channel();
        let items: Vec<PublishItem> = messages
            .into_iter()
            .map(|(topic, payload)| PublishItem {
                app_id: app.clone(),
                topic,
                payload,
                published_at,
            })
            .collect();
        self.lane(&items[0])
            .send(Pending { items, reply })
            .await
            .map_err(|_| StoreError::Unavailable("publisher stopped".into()))?;
        let seqs = answer
            .await
            .map_err(|_| StoreError::Unavailable("publisher stopped".into()))??;
        Ok(seqs
            .into_iter()
            .map(|seq| Published { seq, published_at })
            .collect())
    }

    /// Ephemeral publish: live subscribers only, no seq, no history, no triggers.
    pub fn publish_ephemeral(&self, app: AppId, topic: TopicName, payload: Arc<str>) -> i64 {
        let published_at = chrono::Utc::now().timestamp_millis();
        self.stats.published_ephemeral.add(1);
        self.stats.count_app_publishes(app.as_str(), 1);
        self.broadcast_ephemeral(app, topic, payload, published_at);
        published_at
    }

    /// Ephemeral publish of several messages, broadcast in the order given.
    pub fn publish_ephemeral_many(&self, app: AppId, messages: Vec<(TopicName, Arc<str>)>) -> i64 {
        let published_at = chrono::Utc::now().timestamp_millis();
        self.stats.published_ephemeral.add(messages.len() as u64);
        self.stats
            .count_app_publishes(app.as_str(), messages.len() as u64);
        for (topic, payload) in messages {
            self.broadcast_ephemeral(app.clone(), topic, payload, published_at);
        }
        published_at
    }

    fn broadcast_ephemeral(&self, app_id: AppId, topic: TopicName, payload: Arc<str>, at: i64) {
        self.broadcaster.broadcast(Arc::new(Message {
            app_id,
            topic,
            seq: None,
            payload,
            published_at: at,
            kind: Default::default(),
        }));
    }
}

/// One lane: gathers what is queued into a batch, commits it, broadcasts it and answers,
/// then the next batch (so a lane never reorders its messages). Whatever queues during a
/// commit joins the next batch.
async fn writer(mut rx: mpsc::Receiver<Pending>, sink: Arc<Sink>) {
    // Requests the next batch waits for (see below): in a closed loop (publishers that
    // wait for their answer) the answered ones come back one by one while it gathers.
    let mut expect = 1usize;
    while let Some(first) = rx.recv().await {
        let mut bytes = first.bytes();
        let mut batch = Batch::default();
        batch.add(first);
        let deadline = tokio::time::Instant::now() + GATHER_WAIT;
        // A request bigger than the limits still goes, alone: limits bound how much joins it.
        while batch.items.len() < MAX_BATCH_ITEMS && bytes < MAX_BATCH_BYTES {
            let next = match rx.try_recv() {
                Ok(p) => Some(p),
                // Fewer than expected: wait a little for the rest (sleeping, not spinning)
                // rather than commit a batch of one now and make the others wait out its
                // commit.
                Err(mpsc::error::TryRecvError::Empty) if batch.requests.len() < expect => {
                    tokio::time::timeout_at(deadline, rx.recv())
                        .await
                        .ok()
                        .flatten()
                }
                Err(_) => None,
            };
            let Some(p) = next else { break };
            bytes += p.bytes();
            batch.add(p);
        }
        let answered = batch.requests.len();
        let sink = sink.clone();
        let (committed_tx, committed_rx) = oneshot::channel::<()>();
        // Its own task, awaited: a panic fails this batch's callers (their answers are
        // dropped), not every later publish on the lane.
        let job = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let (results, deliveries) = commit(&*sink.store, &batch).await;
            let _ = committed_tx.send(());
            sink.batch_messages.record(batch.items.len() as f64);
            sink.commit_seconds.record(started.elapsed().as_secs_f64());
            if deliveries > 0 {
                sink.committed.notify_one();
            }
            finish(batch, results, &*sink.broadcaster, &sink.stats);
        });
        // Requests that queued during the commit come from publishers this batch does not
        // answer: in a closed loop they and the answered ones make up everyone, so the next
        // batch waits for all of them instead of settling into a large batch and a small
        // one (S5, PostgreSQL: batches of 10.4–11.0 → 16.0 messages, +13–22 % publishes/s).
        let _ = committed_rx.await;
        expect = answered + rx.len();
        if let Err(e) = job.await {
            tracing::error!(error = %e, "a publish batch panicked; its publishers got an error");
        }
    }
}

/// What every lane's batches go to, shared by the lanes.
struct Sink {
    store: Arc<dyn MessageStore>,
    broadcaster: Arc<dyn Broadcaster>,
    stats: Arc<Stats>,
    /// See [`Publisher::committed`].
    committed: Arc<Notify>,
    batch_messages: metrics::Histogram,
    commit_seconds: metrics::Histogram,
}

/// Requests gathered for one transaction: their items back to back (moved, not copied),
/// and per request its item count and where its answer goes.
#[derive(Default)]
struct Batch {
    items: Vec<PublishItem>,
    requests: Vec<(usize, Reply)>,
}

impl Batch {
    fn add(&mut self, p: Pending) {
        self.requests.push((p.items.len(), p.reply));
        self.items.extend(p.items);
    }
}

/// One transaction for the batch; if it fails, each request alone (in order) so that one
/// bad request fails alone. Also answers how many outbox deliveries were written.
async fn commit(
    store: &dyn MessageStore,
    batch: &Batch,
) -> (Vec<Result<Vec<i64>, StoreError>>, u64) {
    let counts = batch.requests.iter().map(|(n, _)| *n);
    match store.publish_batch(&batch.items).await {
        Ok(c) => {
            let mut seqs = c.seqs.into_iter();
            let results = counts
                .map(|n| Ok(seqs.by_ref().take(n).collect()))
                .collect();
            (results, c.deliveries)
        }
        // Alone, or failed for a reason no request caused (a full disk, a database that is
        // down): every request gets the batch's error, and nothing was committed.
        Err(e) if batch.requests.len() == 1 || e.is_storage_condition() => {
            (batch.requests.iter().map(|_| Err(e.clone())).collect(), 0)
        }
        Err(_) => {
            let (mut results, mut deliveries, mut at) = (Vec::new(), 0, 0);
            for n in counts {
                let alone = store.publish_batch(&batch.items[at..at + n]).await;
                at += n;
                results.push(alone.map(|c| {
                    deliveries += c.deliveries;
                    c.seqs
                }));
            }
            (results, deliveries)
        }
    }
}

/// Broadcasts what committed, in order, and answers every request.
fn finish(
    batch: Batch,
    results: Vec<Result<Vec<i64>, StoreError>>,
    broadcaster: &dyn Broadcaster,
    stats: &Stats,
) {
    let mut items = batch.items.into_iter();
    let mut committed = Vec::with_capacity(items.len());
    let mut replies = Vec::with_capacity(batch.requests.len());
    for ((n, reply), result) in batch.requests.into_iter().zip(results) {
        let mine = items.by_ref().take(n);
        match &result {
            Ok(seqs) => {
                stats.published_durable.add(seqs.len() as u64);
                let mut mine = mine.peekable();
                if let Some(first) = mine.peek() {
                    // A request publishes for one app.
                    stats.count_app_publishes(first.app_id.as_str(), seqs.len() as u64);
                }
                for (item, seq) in mine.zip(seqs) {
                    let PublishItem {
                        app_id,
                        topic,
                        payload,
                        published_at,
                    } = item;
                    committed.push(Arc::new(Message {
                        app_id,
                        topic,
                        seq: Some(*seq),
                        payload,
                        published_at,
                        kind: Default::default(),
                    }));
                }
            }
            Err(_) => mine.for_each(drop),
        }
        replies.push((reply, result));
    }
    broadcaster.broadcast_committed(committed);
    for (reply, result) in replies {
        let _ = reply.send(result);
    }
}
