//! What keeps a node honest when the relay is not: a liveness probe and a position check.
//!
//! - The probe: every [`PROBE_EVERY`] the node sends a frame to itself through the relay,
//!   on a channel nothing else uses. No probe back for [`STALE_AFTER`] makes the relay
//!   stale (shown in `/health/realtime`): after a Redis failover, publishes can keep
//!   succeeding while nothing is delivered, and only a round trip tells.
//! - The position check: one batched read of the committed end of every topic this node
//!   has subscribers for, every [`CHECK_EVERY`] ([`CHECK_EVERY_STALE`] while the relay is
//!   stale, which makes it the delivery path), and at once when the relay comes back or
//!   this node missed frames. A topic behind its end is repaired after [`TAIL_GRACE`]
//!   (frames still on their way are not repairs).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use picloud_core::store::MessageStore;
use tokio_util::sync::CancellationToken;

use super::{Node, RelayState};
use crate::hub::Hub;

pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(1);
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(3);
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(5);
pub(crate) const CHECK_EVERY_STALE: Duration = Duration::from_secs(1);
const TAIL_GRACE: Duration = Duration::from_millis(200);

pub(super) fn probe_channel(node: &str) -> String {
    format!("picloud:probe:{node}")
}

pub(super) async fn probe(node: Arc<Node>, shutdown: CancellationToken) {
    let channel = probe_channel(&node.id);
    let mut tick = tokio::time::interval(PROBE_EVERY);
    // Stale until the first probe comes back.
    let mut was = RelayState::Stale;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let now = chrono::Utc::now().timestamp_millis();
        let _ = node
            .relay
            .publish(&channel, Bytes::from(now.to_string()))
            .await;
        let state = node.state();
        if state != was {
            match state {
                RelayState::Stale => {
                    tracing::warn!("relay stale: no probe back; polling the database every second")
                }
                _ => {
                    tracing::info!("relay live: checking positions");
                    node.check_now.notify_one();
                }
            }
            was = state;
        }
    }
}

pub(super) async fn positions(
    node: Arc<Node>,
    hub: Arc<Hub>,
    store: Arc<dyn MessageStore>,
    shutdown: CancellationToken,
) {
    loop {
        let stale = node.state() == RelayState::Stale;
        let every = if stale {
            CHECK_EVERY_STALE
        } else {
            CHECK_EVERY
        };
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = node.check_now.notified() => {}
            () = shutdown.cancelled() => return,
        }
        let topics = hub.topics();
        if topics.is_empty() {
            continue;
        }
        match store.last_seqs(&topics).await {
            Ok(ends) => {
                node.stats.position_checks.add(1);
                let grace = if node.state() == RelayState::Stale {
                    Duration::ZERO
                } else {
                    TAIL_GRACE
                };
                for ((app, topic), end) in topics.iter().zip(ends) {
                    hub.notice(app, topic, end, grace);
                }
            }
            Err(e) => tracing::warn!(error = %e, "position check failed"),
        }
    }
}
