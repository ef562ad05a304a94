//! Repairs a topic's order on this node from history (see `hub`): when a gap is due, reads
//! what is missing once, for every local subscriber of the topic, and delivers it through
//! the topic's order, which then releases what it held. What history no longer has is
//! given up on (each stream resyncs past it). One repair per topic at a time; a gap that
//! opens while one runs is taken by the same repair.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use picloud_core::ids::AppId;
use picloud_core::store::MessageStore;
use picloud_core::topic::TopicName;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::hub::{Due, Hub, HOLD};
use crate::stats::Stats;

/// Messages read per query.
const PAGE: u32 = 500;
/// Wait after a failed read before trying again.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

type Key = (AppId, TopicName);

pub(crate) fn spawn(
    hub: Arc<Hub>,
    store: Arc<dyn MessageStore>,
    stats: Arc<Stats>,
    mut due: mpsc::UnboundedReceiver<Due>,
    shutdown: CancellationToken,
) {
    let running: Arc<Mutex<HashSet<Key>>> = Arc::default();
    tokio::spawn(async move {
        loop {
            let d = tokio::select! {
                d = due.recv() => match d { Some(d) => d, None => return },
                () = shutdown.cancelled() => return,
            };
            let key = (d.app, d.topic);
            if !running.lock().expect("repairs lock").insert(key.clone()) {
                continue;
            }
            let (hub, store, stats, running) =
                (hub.clone(), store.clone(), stats.clone(), running.clone());
            tokio::spawn(async move {
                tokio::time::sleep_until(d.at).await;
                loop {
                    let read = repair(&hub, &*store, &stats, &key.0, &key.1).await;
                    // Done unless a gap opened meanwhile (its `Due` was dropped above).
                    running.lock().expect("repairs lock").remove(&key);
                    if hub.gap(&key.0, &key.1).is_none()
                        || !running.lock().expect("repairs lock").insert(key.clone())
                    {
                        return;
                    }
                    tokio::time::sleep(if read { HOLD } else { RETRY }).await;
                }
            });
        }
    });
}

/// Reads the topic's gap from history and delivers it, unless it has closed meanwhile.
/// Answers false if the database could not be read (the gap stays).
async fn repair(
    hub: &Hub,
    store: &dyn MessageStore,
    stats: &Stats,
    app: &AppId,
    topic: &TopicName,
) -> bool {
    let Some((mut after, up_to)) = hub.gap(app, topic) else {
        return true;
    };
    stats.relay_repairs.add(1);
    while after < up_to {
        let page = match store.read_after(app, topic, after, PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "repair read failed; retrying");
                return false;
            }
        };
        let full = page.len() == PAGE as usize;
        let wanted: Vec<_> = page
            .into_iter()
            .take_while(|m| m.seq.is_some_and(|s| s <= up_to))
            .collect();
        let Some(reached) = wanted.last().and_then(|m| m.seq) else {
            break;
        };
        hub.repaired(app, topic, wanted);
        after = reached;
        if !full {
            break;
        }
    }
    if hub.gap(app, topic).is_some_and(|(last, _)| last < up_to) {
        hub.give_up_gap(app, topic);
    }
    true
}
