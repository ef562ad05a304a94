//! The source of the admin stats stream (`GET /api/v1/stats/stream`): a sample of this
//! node's realtime counters every second, the last five minutes of them kept, and the
//! per-app table, which reads the database only while someone watches.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hashbrown::HashMap;
use picloud_core::store::Store;
use picloud_realtime::Realtime;
use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;

pub const INTERVAL: Duration = Duration::from_secs(1);
/// Samples kept: five minutes.
const KEPT: usize = 300;
/// Ticks in the per-app "last minute".
const MINUTE: usize = 60;

/// This node's activity over one interval.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StatsSample {
    /// When it was taken, epoch milliseconds.
    pub at_ms: i64,
    /// Open streams.
    pub connections: i64,
    /// Topic subscriptions across streams.
    pub subscribers: i64,
    /// Messages published (durable and ephemeral) per second over the interval.
    pub publishes_per_sec: f64,
    /// Frames sent to subscribers per second over the interval.
    pub deliveries_per_sec: f64,
    /// Streams ended for reading too slowly during the interval.
    pub slow_consumer_disconnects: u64,
}

/// One app's row in the activity table.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AppActivity {
    pub id: String,
    pub slug: String,
    pub topics: i64,
    /// Topic subscriptions of the app's streams on this node.
    pub subscribers: usize,
    /// Messages the app published through this node in the last minute.
    pub publishes_last_minute: u64,
}

/// What each tick hands to the streams.
pub struct Tick {
    pub sample: StatsSample,
    /// Every app, ordered by slug; empty while nobody watches.
    pub apps: Arc<Vec<AppActivity>>,
}

pub struct Activity {
    pub started_at: DateTime<Utc>,
    started: Instant,
    history: Mutex<VecDeque<StatsSample>>,
    ticks: watch::Sender<Arc<Tick>>,
}

impl Activity {
    /// Starts sampling `realtime` until its shutdown.
    pub fn start(store: Arc<dyn Store>, realtime: Realtime) -> Arc<Self> {
        let now = Totals::read(&realtime);
        let first = Tick {
            sample: now.sample_since(&now),
            apps: Arc::default(),
        };
        let activity = Arc::new(Self {
            started_at: Utc::now(),
            started: Instant::now(),
            history: Mutex::new(VecDeque::with_capacity(KEPT)),
            ticks: watch::channel(Arc::new(first)).0,
        });
        tokio::spawn(sample(activity.clone(), store, realtime));
        activity
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The samples kept, oldest first.
    pub fn history(&self) -> Vec<StatsSample> {
        self.history
            .lock()
            .expect("history lock")
            .iter()
            .cloned()
            .collect()
    }

    /// Each tick from now on.
    pub fn watch(&self) -> watch::Receiver<Arc<Tick>> {
        let mut rx = self.ticks.subscribe();
        rx.mark_unchanged();
        rx
    }
}

/// The running totals a sample is the difference of.
struct Totals {
    at: Instant,
    connections: i64,
    subscribers: i64,
    publishes: u64,
    deliveries: u64,
    slow: u64,
}

impl Totals {
    fn read(rt: &Realtime) -> Self {
        let s = &rt.stats;
        Self {
            at: Instant::now(),
            connections: s.connections.get(),
            subscribers: s.subscribers.get(),
            publishes: s.published_durable.get() + s.published_ephemeral.get(),
            deliveries: s.frames_sent.get(),
            slow: s.slow_consumer_disconnects.get(),
        }
    }

    /// The sample of the interval since `before` (zero rates when it is `self`).
    fn sample_since(&self, before: &Totals) -> StatsSample {
        let secs = self.at.duration_since(before.at).as_secs_f64().max(0.001);
        let rate =
            |now: u64, then: u64| (now.saturating_sub(then) as f64 / secs * 10.0).round() / 10.0;
        StatsSample {
            at_ms: Utc::now().timestamp_millis(),
            connections: self.connections,
            subscribers: self.subscribers,
            publishes_per_sec: rate(self.publishes, before.publishes),
            deliveries_per_sec: rate(self.deliveries, before.deliveries),
            slow_consumer_disconnects: self.slow.saturating_sub(before.slow),
        }
    }
}

async fn sample(activity: Arc<Activity>, store: Arc<dyn Store>, rt: Realtime) {
    let mut interval = tokio::time::interval(INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.reset(); // the first tick would fire at once
    let mut before = Totals::read(&rt);
    let mut minute = PublishWindow::default();
    let mut apps: Arc<Vec<AppActivity>> = Arc::default();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = rt.shutdown.cancelled() => return,
        }
        let now = Totals::read(&rt);
        let sample = now.sample_since(&before);
        before = now;
        minute.advance(rt.stats.app_publishes());
        {
            let mut history = activity.history.lock().expect("history lock");
            if history.len() == KEPT {
                history.pop_front();
            }
            history.push_back(sample.clone());
        }
        if activity.ticks.receiver_count() == 0 {
            apps = Arc::default();
        } else {
            match store.apps_with_topic_counts().await {
                Ok(rows) => apps = Arc::new(table(rows, &rt, &minute)),
                // The previous table stands until the database answers again.
                Err(e) => tracing::warn!(error = %e, "activity table not refreshed"),
            }
        }
        activity.ticks.send_replace(Arc::new(Tick {
            sample,
            apps: apps.clone(),
        }));
    }
}

fn table(
    rows: Vec<(picloud_core::app::AppRef, i64)>,
    rt: &Realtime,
    minute: &PublishWindow,
) -> Vec<AppActivity> {
    let subscribers = rt.streams.per_app();
    rows.into_iter()
        .map(|(app, topics)| AppActivity {
            subscribers: subscribers.get(app.id.as_str()).copied().unwrap_or(0),
            publishes_last_minute: minute.last_minute(app.id.as_str()),
            id: app.id.0,
            slug: app.slug.to_string(),
            topics,
        })
        .collect()
}

/// Each app's publishes over the last [`MINUTE`] ticks, from the node's running totals:
/// one slot per tick, kept only for apps that published within the window.
#[derive(Default)]
struct PublishWindow {
    tick: usize,
    totals: HashMap<String, u64>,
    recent: HashMap<String, [u64; MINUTE]>,
}

impl PublishWindow {
    fn advance(&mut self, totals: HashMap<String, u64>) {
        let slot = self.tick % MINUTE;
        self.tick += 1;
        for window in self.recent.values_mut() {
            window[slot] = 0;
        }
        for (app, &total) in &totals {
            let new = total.saturating_sub(self.totals.get(app).copied().unwrap_or(0));
            if new > 0 {
                self.recent.entry_ref(app.as_str()).or_insert([0; MINUTE])[slot] = new;
            }
        }
        self.recent.retain(|_, w| w.iter().any(|&n| n > 0));
        self.totals = totals;
    }

    fn last_minute(&self, app: &str) -> u64 {
        self.recent.get(app).map_or(0, |w| w.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
        pairs.iter().map(|(a, n)| (a.to_string(), *n)).collect()
    }

    #[test]
    fn the_window_counts_the_last_sixty_ticks_only() {
        let mut w = PublishWindow::default();
        w.advance(totals(&[("a", 5)]));
        w.advance(totals(&[("a", 7), ("b", 1)]));
        assert_eq!((w.last_minute("a"), w.last_minute("b")), (7, 1));
        for _ in 0..58 {
            w.advance(totals(&[("a", 7), ("b", 1)]));
        }
        assert_eq!(w.last_minute("a"), 7, "60 ticks: the first still counts");
        w.advance(totals(&[("a", 7), ("b", 1)]));
        assert_eq!(w.last_minute("a"), 2, "61 ticks: the first tick's 5 left");
        w.advance(totals(&[("a", 7), ("b", 1)]));
        assert_eq!((w.last_minute("a"), w.last_minute("b")), (0, 0));
        assert!(w.recent.is_empty(), "quiet apps are forgotten");
        assert_eq!(w.last_minute("nobody"), 0);
    }
}
