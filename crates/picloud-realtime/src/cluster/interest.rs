//! The relay's subscriptions follow the topics this node has subscribers for, in the order
//! the hub saw them come and go. A stream waits for its topic's subscription before it
//! reads where it starts (see `Subscription::relayed`): anything committed after that read
//! reaches this node through the relay, or is caught by the position check.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::wire;
use crate::hub::Interest;
use crate::relay::Relay;

/// How often subscriptions the relay refused are tried again.
const RETRY: Duration = Duration::from_secs(1);

pub(super) async fn run(relay: Arc<dyn Relay>, mut events: mpsc::UnboundedReceiver<Interest>) {
    let mut failed: HashSet<String> = HashSet::new();
    let mut retry = tokio::time::interval(RETRY);
    loop {
        let event = tokio::select! {
            e = events.recv() => match e {
                Some(e) => e,
                None => return,
            },
            _ = retry.tick(), if !failed.is_empty() => {
                let mut still = HashSet::new();
                for channel in failed.drain() {
                    if relay.subscribe(&channel).await.is_err() {
                        still.insert(channel);
                    }
                }
                failed = still;
                continue;
            }
        };
        match event {
            Interest::Watch(app, topic, relayed) => {
                let channel = wire::channel(&app, &topic);
                if let Err(e) = relay.subscribe(&channel).await {
                    tracing::debug!(error = %e, "relay subscription failed; retrying");
                    failed.insert(channel);
                }
                // Live, or left to the position check until the retry succeeds.
                relayed.settle();
            }
            Interest::Unwatch(app, topic) => {
                let channel = wire::channel(&app, &topic);
                if !failed.remove(&channel) {
                    let _ = relay.unsubscribe(&channel).await;
                }
            }
        }
    }
}
