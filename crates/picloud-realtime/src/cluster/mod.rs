//! Cluster mode: nodes on one PostgreSQL database (the only log) with a lossy relay between
//! them (Redis PUB/SUB). See docs/cluster.md.
//!
//! - Out: after a batch commits, the publisher hands its messages here; one frame per topic
//!   goes to a sender task ([`Node::relay`]), which pipelines what queued onto the relay.
//!   A full queue or a relay error drops frames: receivers repair.
//! - In (`receive`): frames of other nodes go through the hub like local publishes; the
//!   hub's per-topic order holds a frame past a gap and repairs from history.
//! - `interest`: the relay subscribes to the topics this node has subscribers for, before
//!   their streams read where they start.
//! - `checks`: the liveness probe and the position check, which catches a lost tail.

mod checks;
mod interest;
pub mod wire;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashMap;
use picloud_core::message::Message;
use picloud_core::store::MessageStore;
use serde::Serialize;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::hub::{Hub, Interest};
use crate::relay::Relay;
use crate::stats::Stats;

/// Frames waiting for the relay before new ones are dropped.
const OUT_QUEUE: usize = 64 * 1024;
/// Frames sent in one round trip.
const OUT_BATCH: usize = 256;
/// The channel of the changes nodes cache (`picloud-api`'s control plane).
pub const CONTROL_CHANNEL: &str = "picloud:control";
/// Control messages waiting for the control plane before it lags (and drops every cache).
const CONTROL_QUEUE: usize = 1024;
/// Test-only fault switch: while the file it names exists, durable frames are dropped
/// instead of sent (as a relay that loses them would).
pub const FAULT_DROP_FILE: &str = "PICLOUD_FAULT_RELAY_DROP_FILE";

/// A node's cluster settings.
pub struct ClusterConfig {
    /// `PICLOUD_NODE_ID`.
    pub node: Arc<str>,
    pub relay: Arc<dyn Relay>,
    /// Where members live in the cluster (`None`: in this process, as on one node).
    pub presence: Option<Arc<dyn crate::presence::PresenceStore>>,
}

/// What the relay looks like from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayState {
    /// One node: no relay.
    Off,
    /// Probes come back.
    Live,
    /// No probe came back lately: position checks poll the database every second.
    Stale,
}

struct Outgoing {
    channel: String,
    payload: Bytes,
    durable: bool,
}

/// This node in the cluster.
pub struct Node {
    pub id: Arc<str>,
    /// How this node's frames begin ([`wire::prefix`]).
    own: Vec<u8>,
    relay: Arc<dyn Relay>,
    out: mpsc::Sender<Outgoing>,
    stats: Arc<Stats>,
    /// When this node last received its own probe back (`None`: never yet).
    probed: Mutex<Option<Instant>>,
    /// Runs a position check now (the relay came back, or this node missed frames).
    check_now: Notify,
    /// Other nodes' control messages; `None`: some may have been missed.
    control: tokio::sync::broadcast::Sender<Option<Bytes>>,
}

impl Node {
    /// Joins: subscribes to the probe channel (or keeps trying, while the relay is down),
    /// then starts the tasks (until `shutdown`).
    pub(crate) async fn start(
        config: ClusterConfig,
        hub: Arc<Hub>,
        store: Arc<dyn MessageStore>,
        stats: Arc<Stats>,
        interest: mpsc::UnboundedReceiver<Interest>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        crate::relay::keep_subscribed(config.relay.clone(), checks::probe_channel(&config.node))
            .await;
        crate::relay::keep_subscribed(config.relay.clone(), CONTROL_CHANNEL.to_owned()).await;
        let (out, out_rx) = mpsc::channel(OUT_QUEUE);
        let node = Arc::new(Self {
            own: wire::prefix(&config.node),
            id: config.node,
            relay: config.relay,
            out,
            stats,
            probed: Mutex::new(None),
            check_now: Notify::new(),
            control: tokio::sync::broadcast::channel(CONTROL_QUEUE).0,
        });
        let fault = std::env::var_os(FAULT_DROP_FILE).map(PathBuf::from);
        if let Some(file) = &fault {
            tracing::warn!(file = %file.display(), "fault injection: relay frames dropped while the file exists");
        }
        tokio::spawn(send(node.clone(), out_rx, fault));
        tokio::spawn(receive(node.clone(), hub.clone(), shutdown.clone()));
        tokio::spawn(interest::run(node.relay.clone(), interest));
        tokio::spawn(checks::probe(node.clone(), shutdown.clone()));
        tokio::spawn(checks::positions(node.clone(), hub, store, shutdown));
        node
    }

    /// Sends committed messages (or one ephemeral one) to the other nodes: one frame per
    /// topic, in the order given. Never waits: a full queue drops the frame.
    pub(crate) fn relay(&self, messages: &[Arc<Message>]) {
        match messages {
            [] => {}
            [one] => self.queue(std::slice::from_ref(one)),
            _ => {
                let mut topics: HashMap<(&str, &str), Vec<Arc<Message>>> = HashMap::new();
                let mut order = Vec::new();
                for m in messages {
                    let key = (m.app_id.as_str(), m.topic.as_str());
                    let list = topics.entry(key).or_insert_with(|| {
                        order.push(key);
                        Vec::new()
                    });
                    list.push(m.clone());
                }
                for key in order {
                    self.queue(&topics[&key]);
                }
            }
        }
    }

    fn queue(&self, messages: &[Arc<Message>]) {
        let first = &messages[0];
        let frame = Outgoing {
            channel: wire::channel(&first.app_id, &first.topic),
            payload: Bytes::from(wire::encode(&self.own, messages)),
            durable: first.seq.is_some(),
        };
        if self.out.try_send(frame).is_err() {
            self.stats.relay_dropped.add(1);
        }
    }

    /// Sends a control message to every node (this one receives its own back).
    pub async fn send_control(&self, payload: Bytes) -> Result<(), crate::relay::RelayError> {
        self.relay.publish(CONTROL_CHANNEL, payload).await
    }

    /// The control messages this node receives from now on (`None`: some were missed).
    pub fn control_received(&self) -> tokio::sync::broadcast::Receiver<Option<Bytes>> {
        self.control.subscribe()
    }

    pub fn state(&self) -> RelayState {
        let probed = *self.probed.lock().expect("probe lock");
        if probed.is_some_and(|at| at.elapsed() < checks::STALE_AFTER) {
            RelayState::Live
        } else {
            RelayState::Stale
        }
    }
}

/// Pipelines queued frames onto the relay, in queue order.
async fn send(node: Arc<Node>, mut rx: mpsc::Receiver<Outgoing>, fault: Option<PathBuf>) {
    let mut batch = Vec::with_capacity(OUT_BATCH);
    while rx.recv_many(&mut batch, OUT_BATCH).await > 0 {
        if fault.as_ref().is_some_and(|f| f.exists()) {
            let before = batch.len();
            batch.retain(|o| !o.durable);
            node.stats.relay_dropped.add((before - batch.len()) as u64);
        }
        let frames: Vec<(String, Bytes)> =
            batch.drain(..).map(|o| (o.channel, o.payload)).collect();
        let n = frames.len() as u64;
        match node.relay.publish_all(frames).await {
            Ok(()) => {
                node.stats.relay_sent.add(n);
            }
            Err(e) => {
                node.stats.relay_dropped.add(n);
                tracing::debug!(error = %e, frames = n, "relay frames dropped");
            }
        };
    }
}

/// Other nodes' frames into the hub; probes to the liveness clock.
async fn receive(node: Arc<Node>, hub: Arc<Hub>, shutdown: CancellationToken) {
    use picloud_core::message::Broadcaster as _;
    use tokio::sync::broadcast::error::RecvError;
    let mut rx = node.relay.received();
    let probe = checks::probe_channel(&node.id);
    loop {
        let received = tokio::select! {
            r = rx.recv() => r,
            () = shutdown.cancelled() => return,
        };
        match received {
            Ok(r) if wire::is_topic_channel(&r.channel) => {
                let Some(frame) = wire::decode(&r.payload, &node.own) else {
                    continue;
                };
                node.stats.relay_received.add(1);
                if let Some(end) = frame.end {
                    hub.notice(&frame.app, &frame.topic, end, Duration::ZERO);
                }
                for m in frame.messages {
                    hub.broadcast(Arc::new(m));
                }
            }
            Ok(r) if *r.channel == *probe => {
                *node.probed.lock().expect("probe lock") = Some(Instant::now());
            }
            Ok(r) if *r.channel == *CONTROL_CHANNEL => {
                let _ = node.control.send(Some(r.payload));
            }
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(
                    frames = n,
                    "relay frames missed by this node: checking positions"
                );
                node.stats.relay_dropped.add(n);
                node.check_now.notify_one();
                let _ = node.control.send(None);
            }
            Err(RecvError::Closed) => return,
        }
    }
}
