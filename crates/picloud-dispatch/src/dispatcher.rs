//! The outbox dispatcher (DESIGN §7). One loop claims due deliveries in batches under a
//! lease, fairly across apps, and runs each on the invoker; a renewer extends the leases
//! of runs still going; a completer removes finished deliveries in batches. A failed run
//! is retried with exponential backoff and jitter, and after its last attempt moves to the
//! dead letters. The loop wakes on commits that may have written deliveries and also polls
//! (wake-ups are hints; the poll is what guarantees progress).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::future::Cache;
use picloud_core::dispatch::Delivery;
use picloud_core::ids::AppId;
use picloud_core::store::Store;
use picloud_core::trigger::Trigger;
use picloud_runtime::Input;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::invoker::{InvokeError, Invoker};

#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// Deliveries running at once on this node.
    pub workers: usize,
    /// Most deliveries taken by one claim, and most from one app per claim.
    pub batch: u32,
    pub per_app: u32,
    /// How long a claim is ours without renewal. A crashed node's deliveries run again
    /// this long after it took them.
    pub lease: Duration,
    /// Longest sleep between claims when nothing wakes the loop.
    pub poll: Duration,
    pub cron_every: Duration,
    /// Most missed times of one cron trigger fired after downtime.
    pub cron_catch_up: usize,
    /// At shutdown, how long running deliveries may finish before they are cancelled.
    pub grace: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            workers: 64,
            batch: 128,
            per_app: 32,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            cron_every: Duration::from_secs(1),
            cron_catch_up: 10,
            grace: Duration::from_secs(10),
        }
    }
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    invoker: Invoker,
    config: DispatcherConfig,
    owner: String,
    wakes: Vec<Arc<Notify>>,
    triggers: Cache<String, Option<Arc<Trigger>>>,
}

/// What every delivery task needs.
struct Ctx {
    store: Arc<dyn Store>,
    invoker: Invoker,
    owner: String,
    done: mpsc::UnboundedSender<i64>,
    inflight: Mutex<HashSet<i64>>,
    triggers: Cache<String, Option<Arc<Trigger>>>,
    wake: Arc<Notify>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Dispatcher {
    /// `wakes`: notifications that deliveries may have been written (the host's writes,
    /// the publisher's commits).
    pub fn new(invoker: Invoker, config: DispatcherConfig, wakes: Vec<Arc<Notify>>) -> Self {
        Self {
            store: invoker.deps().store.clone(),
            owner: format!("node-{}", uuid::Uuid::now_v7().simple()),
            invoker,
            config,
            wakes,
            triggers: Cache::builder()
                .time_to_live(Duration::from_secs(2))
                .max_capacity(10_000)
                .build(),
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs until `shutdown`, then lets running deliveries finish within the grace period
    /// and cancels the rest (their leases expire and another run picks them up).
    pub async fn run(self, shutdown: CancellationToken) {
        let cfg = self.config.clone();
        let slots = Arc::new(Semaphore::new(cfg.workers.max(1)));
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let wake = self.wakes.first().cloned().unwrap_or_default();
        let ctx = Arc::new(Ctx {
            store: self.store.clone(),
            invoker: self.invoker.clone(),
            owner: self.owner.clone(),
            done: done_tx,
            inflight: Mutex::new(HashSet::new()),
            triggers: self.triggers.clone(),
            wake: wake.clone(),
        });
        let background = CancellationToken::new();
        // Renewals and cron stop with this loop however it ends, including being dropped
        // mid-run: a dead dispatcher must not keep renewing leases on work it abandoned.
        let _stop_background = background.clone().drop_guard();
        let completer = tokio::spawn(complete_loop(
            self.store.clone(),
            self.owner.clone(),
            done_rx,
        ));
        tokio::spawn(renew_loop(ctx.clone(), cfg.lease, background.clone()));
        tokio::spawn(cron_loop(
            self.store.clone(),
            cfg.clone(),
            wake.clone(),
            background.clone(),
        ));
        let mut tasks = JoinSet::new();
        let mut after_app: Option<AppId> = None;
        let mut backlog = false;
        let lease_ms = cfg.lease.as_millis() as i64;
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            // With a backlog, claim in batches: wait (briefly) until half the workers are
            // free rather than paying a claim round trip for every finished delivery.
            let refill = (cfg.workers / 2).max(1);
            if backlog && slots.available_permits() < refill && !tasks.is_empty() {
                let until = tokio::time::Instant::now() + Duration::from_millis(20);
                while slots.available_permits() < refill && !tasks.is_empty() {
                    tokio::select! {
                        _ = tasks.join_next() => {}
                        _ = tokio::time::sleep_until(until) => break,
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    p = slots.acquire() => drop(p),
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            // A read first: on SQLite a claim is a write that would take the write lock
            // from publishers on every wake-up even when nothing is due. Skipped while
            // the last claim came back full (there is more).
            let now = now_ms();
            match if backlog {
                Ok(Some(now))
            } else {
                self.store.next_due().await
            } {
                Ok(Some(at)) if at <= now => {}
                Ok(Some(at)) => {
                    let wait = Duration::from_millis((at - now).max(1) as u64);
                    self.idle(wait.min(cfg.poll), &shutdown).await;
                    continue;
                }
                Ok(None) => {
                    self.idle(cfg.poll, &shutdown).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the outbox failed; retrying");
                    self.idle(cfg.poll, &shutdown).await;
                    continue;
                }
            }
            let limit = (free as u32).min(cfg.batch);
            let claimed = match self
                .store
                .claim_deliveries(
                    &self.owner,
                    now_ms(),
                    lease_ms,
                    limit,
                    cfg.per_app,
                    after_app.as_ref(),
                )
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed; retrying");
                    self.idle(cfg.poll, &shutdown).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                let until_due = match self.store.next_due().await {
                    Ok(Some(at)) => {
                        Duration::from_millis((at - now_ms()).clamp(5, i64::MAX) as u64)
                    }
                    _ => cfg.poll,
                };
                self.idle(until_due.min(cfg.poll), &shutdown).await;
                continue;
            }
            backlog = claimed.len() as u32 == limit;
            after_app = claimed.last().map(|d| d.app_id.clone());
            for d in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                ctx.inflight.lock().expect("inflight").insert(d.id);
                let ctx = ctx.clone();
                tasks.spawn(async move {
                    let id = d.id;
                    run_one(&ctx, d).await;
                    ctx.inflight.lock().expect("inflight").remove(&id);
                    drop(permit);
                });
            }
        }
        // Graceful stop: no more claims; running deliveries get the grace period.
        let drained = tokio::time::timeout(cfg.grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.invoker.cancel_running();
            tasks.shutdown().await;
        }
        // The renewer holds a handle on the completer's channel: stop it first.
        background.cancel();
        drop(ctx);
        let _ = completer.await;
    }

    async fn idle(&self, d: Duration, shutdown: &CancellationToken) {
        // Any of the wake-ups (none configured: only the timer and shutdown).
        let any_wake = async {
            if self.wakes.is_empty() {
                return std::future::pending().await;
            }
            let wakes = self.wakes.iter().map(|n| Box::pin(n.notified()));
            futures_util::future::select_all(wakes).await;
        };
        tokio::select! {
            _ = any_wake => {}
            _ = tokio::time::sleep(d) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

async fn trigger(
    ctx: &Ctx,
    d: &Delivery,
) -> Result<Option<Arc<Trigger>>, picloud_core::StoreError> {
    // Loaded once for all the batch's deliveries of this trigger.
    let load = async {
        ctx.store
            .get_trigger(&d.app_id, &d.trigger_id)
            .await
            .map(|t| t.map(Arc::new))
    };
    ctx.triggers
        .try_get_with(d.trigger_id.clone(), load)
        .await
        .map_err(picloud_core::StoreError::from)
}

async fn run_one(ctx: &Ctx, d: Delivery) {
    let t = match trigger(ctx, &d).await {
        Ok(Some(t)) => t,
        // Deleted: its deliveries went with it (cascade); this one just finished.
        Ok(None) => {
            let _ = ctx.done.send(d.id);
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, delivery = d.id, "loading a trigger failed");
            let _ = ctx
                .store
                .retry_delivery(&ctx.owner, d.id, now_ms() + 1000, "storage unavailable")
                .await;
            return;
        }
    };
    if !t.enabled {
        // Paused: the delivery waits, its attempt not counted against it.
        let _ = ctx
            .store
            .retry_delivery(&ctx.owner, d.id, now_ms() + 60_000, "trigger disabled")
            .await;
        return;
    }
    let mut event = d.event.clone();
    if let serde_json::Value::Object(m) = &mut event {
        m.insert("delivery_id".into(), d.id.to_string().into());
        m.insert("attempt".into(), d.attempt.into());
    }
    let source = format!("trigger:{}", t.id);
    let error = match ctx
        .invoker
        .invoke(
            &d.app_id,
            &t.script,
            source,
            Input::Event(event),
            Some(d.id),
            None,
        )
        .await
    {
        Ok(ran) => match ran.outcome.result {
            Ok(_) => {
                let _ = ctx.done.send(d.id);
                return;
            }
            Err(e) => e.message,
        },
        // Shutting down mid-run: leave the lease to expire so another run picks it up.
        Err(InvokeError::Stopped) => return,
        Err(e) => e.to_string(),
    };
    fail(ctx, &d, &t, &error).await;
}

async fn fail(ctx: &Ctx, d: &Delivery, t: &Trigger, error: &str) {
    let error: String = error.chars().take(4000).collect();
    let result = if d.attempt >= t.retry.max_attempts {
        ctx.store
            .dead_letter_delivery(&ctx.owner, d.id, &error)
            .await
            .map(|dl| {
                if dl.is_some() {
                    metrics::counter!("picloud_dead_letters_total").increment(1);
                    ctx.wake.notify_one();
                }
            })
    } else {
        let delay = t
            .retry
            .delay_with_jitter_ms(d.attempt, rand::random::<f64>());
        metrics::counter!("picloud_delivery_retries_total").increment(1);
        ctx.store
            .retry_delivery(&ctx.owner, d.id, now_ms() + delay, &error)
            .await
            .map(|_| ())
    };
    if let Err(e) = result {
        // The lease runs out and the delivery is tried again: nothing is lost.
        crate::warn_unless_full!(e, delivery = d.id, "recording a failed delivery failed");
    }
}

async fn complete_loop(store: Arc<dyn Store>, owner: String, mut rx: mpsc::UnboundedReceiver<i64>) {
    while let Some(first) = rx.recv().await {
        let mut ids = vec![first];
        while ids.len() < 1000 {
            match rx.try_recv() {
                Ok(id) => ids.push(id),
                Err(_) => break,
            }
        }
        match store.complete_deliveries(&owner, &ids).await {
            Ok(done) => {
                metrics::counter!("picloud_deliveries_total").increment(done.len() as u64);
            }
            // Not removed: the delivery runs again after its lease (at least once).
            Err(e) => crate::warn_unless_full!(e, n = ids.len(), "completing deliveries failed"),
        }
    }
}

async fn renew_loop(ctx: Arc<Ctx>, lease: Duration, stop: CancellationToken) {
    let every = lease / 3;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        let ids: Vec<i64> = ctx
            .inflight
            .lock()
            .expect("inflight")
            .iter()
            .copied()
            .collect();
        if ids.is_empty() {
            continue;
        }
        let until = now_ms() + lease.as_millis() as i64;
        match ctx.store.renew_leases(&ctx.owner, &ids, until).await {
            Ok(lost) => {
                // A run that finished while the renewal was on its way has had its row
                // completed (or rescheduled): not lost, just done.
                let running = ctx.inflight.lock().expect("inflight");
                let lost: Vec<i64> = lost.into_iter().filter(|id| running.contains(id)).collect();
                drop(running);
                if !lost.is_empty() {
                    tracing::warn!(
                        ?lost,
                        "leases lost while running (another node may run them too)"
                    );
                }
            }
            Err(e) => crate::warn_unless_full!(e, "renewing leases failed"),
        }
    }
}

async fn cron_loop(
    store: Arc<dyn Store>,
    cfg: DispatcherConfig,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        match store.fire_cron(now_ms(), cfg.cron_catch_up).await {
            Ok(n) if n > 0 => wake.notify_one(),
            Ok(_) => {}
            Err(e) => crate::warn_unless_full!(e, "firing cron triggers failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.cron_every) => {}
            _ = stop.cancelled() => return,
        }
    }
}
