//! Script threads. Each run must leave the async threads (a script may compute for
//! seconds), but handing every run to a thread and waking the async worker for every
//! completion costs two context switches per run on a busy core (measured: the
//! hello-world endpoint's main cost). Here:
//! - script threads are `SCHED_BATCH` (Linux): waking one does not preempt the async
//!   worker, which goes on queueing runs until it parks; the woken thread then runs what
//!   has queued, one run at a time (waking another thread while work is left, so a long
//!   run holds up nothing);
//! - results are put in place as runs finish and announced with one wake-up when the
//!   queue runs dry (or every [`BATCH`] runs), so the async worker is woken once per
//!   batch, not once per run;
//! - queued runs wait per app, and free threads take the apps in turn (one run each), so
//!   one app's backlog delays another app's run by at most one run per app ahead of it;
//! - a queued run whose caller has gone (the request timed out or the client left) is
//!   dropped before it starts, and counted (`picloud_script_runs_abandoned_total`).

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::Notify;

/// Queued runs dropped because their caller had gone.
pub const ABANDONED: &str = "picloud_script_runs_abandoned_total";

/// Most runs whose results wait for one announcement.
const BATCH: usize = 16;

type Job = Box<dyn FnOnce() + Send>;

/// A run waiting for a thread, and whether its caller is still waiting for it.
struct Queued {
    job: Job,
    abandoned: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    /// Queued runs per app (by id), oldest first.
    queues: HashMap<Arc<str>, VecDeque<Queued>>,
    /// The apps with queued runs, in turn order.
    turns: VecDeque<Arc<str>>,
    idle: usize,
    /// Threads notified but not yet awake: no need to notify another.
    waking: usize,
}

impl State {
    fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }

    fn push(&mut self, app: Arc<str>, run: Queued) {
        let queue = self.queues.entry(app.clone()).or_default();
        if queue.is_empty() {
            self.turns.push_back(app);
        }
        queue.push_back(run);
    }

    /// The oldest run of the app whose turn it is; the app goes to the back of the turns
    /// if it has more.
    fn pop(&mut self) -> Option<Queued> {
        let app = self.turns.pop_front()?;
        let queue = self
            .queues
            .get_mut(&app)
            .expect("an app in turn has a queue");
        let run = queue.pop_front().expect("an app in turn has a run");
        if queue.is_empty() {
            self.queues.remove(&app);
        } else {
            self.turns.push_back(app);
        }
        Some(run)
    }
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    /// Announces finished batches to the waiting runs.
    finished: Notify,
}

#[derive(Clone)]
pub struct ScriptPool {
    shared: Arc<Shared>,
}

/// Where a run's result lands: `Some(Some(r))` done, `Some(None)` panicked.
type Slot<R> = Arc<Mutex<Option<Option<R>>>>;

impl ScriptPool {
    /// Starts `threads` threads with `stack_bytes` of stack each.
    pub fn new(threads: usize, stack_bytes: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            finished: Notify::new(),
        });
        for i in 0..threads.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("picloud-script-{i}"))
                .stack_size(stack_bytes)
                .spawn(move || {
                    batch_priority();
                    work(&shared)
                })?;
        }
        Ok(Self { shared })
    }

    /// Runs `f` for `app` on a script thread; `None` if it panicked. Dropping the returned
    /// future before the run has started drops the run.
    pub async fn run<R: Send + 'static>(
        &self,
        app: &str,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let slot: Slot<R> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let job: Job = Box::new(move || {
            let r = catch_unwind(AssertUnwindSafe(f)).ok();
            *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        });
        let abandoned = Arc::new(AtomicBool::new(false));
        let _caller = Caller(abandoned.clone());
        let notify = {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.push(Arc::from(app), Queued { job, abandoned });
            let notify = st.idle > st.waking;
            if notify {
                st.waking += 1;
            }
            notify
        };
        if notify {
            self.shared.ready.notify_one();
        }
        loop {
            // Registered before the check, so an announcement in between is not missed.
            let finished = self.shared.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            if let Some(r) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return r;
            }
            finished.await;
        }
    }
}

/// Marks the run abandoned when its caller stops waiting (a run already started finishes;
/// its result is dropped).
struct Caller(Arc<AtomicBool>);

impl Drop for Caller {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

fn work(shared: &Shared) {
    let mut done = 0;
    let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        while st.is_empty() {
            st.idle += 1;
            st = shared.ready.wait(st).unwrap_or_else(|e| e.into_inner());
            st.idle -= 1;
            st.waking = st.waking.saturating_sub(1);
        }
        // One run at a time, so a long run never holds up queued ones: another thread is
        // woken while work is left.
        let run = st.pop().expect("not empty");
        let wake_next = !st.is_empty() && st.idle > st.waking;
        if wake_next {
            st.waking += 1;
        }
        drop(st);
        if wake_next {
            shared.ready.notify_one();
        }
        if run.abandoned.load(Ordering::Acquire) {
            metrics::counter!(ABANDONED).increment(1);
        } else {
            (run.job)();
        }
        done += 1;
        st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        // Results are announced when the queue runs dry (or every BATCH runs): one wake-up
        // of the async worker for all of them.
        if st.is_empty() || done >= BATCH {
            drop(st);
            shared.finished.notify_waiters();
            done = 0;
            st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// `SCHED_BATCH`: this thread's wake-ups do not preempt the async worker. Best effort.
fn batch_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a valid, fully
    // initialised sched_param; it only changes this thread's scheduling policy.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        let _ = libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_everything_and_survives_panics() {
        let pool = ScriptPool::new(3, 256 * 1024).unwrap();
        let runs: Vec<_> = (0..1000u64)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.run("a", move || i * 2).await })
            })
            .collect();
        for (i, r) in runs.into_iter().enumerate() {
            assert_eq!(r.await.unwrap(), Some(i as u64 * 2));
        }
        assert_eq!(pool.run("a", || -> u8 { panic!("boom") }).await, None);
        assert_eq!(pool.run("a", || 7).await, Some(7));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_run_does_not_hold_up_the_others() {
        let pool = ScriptPool::new(2, 256 * 1024).unwrap();
        let slow = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run("a", || {
                    std::thread::sleep(std::time::Duration::from_millis(500))
                })
                .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        assert_eq!(pool.run("a", || 1).await, Some(1));
        assert!(started.elapsed() < std::time::Duration::from_millis(300));
        slow.await.unwrap();
    }

    /// One thread, app A with a backlog of ten runs: app B's run goes next, not last.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn apps_take_turns() {
        let pool = ScriptPool::new(1, 256 * 1024).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let started = Arc::new(std::sync::Barrier::new(2));
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = {
            let (pool, started) = (pool.clone(), started.clone());
            tokio::spawn(async move {
                pool.run("a", move || {
                    started.wait();
                    let _ = held.recv();
                })
                .await
            })
        };
        started.wait(); // the thread is busy with A's first run until released
        let mut runs = Vec::new();
        for (app, n) in std::iter::repeat_n("a", 10).zip(1..).chain([("b", 0)]) {
            let (pool, order) = (pool.clone(), order.clone());
            runs.push(tokio::spawn(async move {
                pool.run(app, move || order.lock().unwrap().push((app, n)))
                    .await
            }));
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        release.send(()).unwrap();
        first.await.unwrap();
        for r in runs {
            r.await.unwrap();
        }
        let order = order.lock().unwrap();
        let b = order.iter().position(|(app, _)| *app == "b").unwrap();
        assert!(b <= 1, "B ran after {b} of A's queued runs: {order:?}");
    }

    /// A queued run whose caller stopped waiting never starts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_whose_caller_left_is_dropped() {
        let pool = ScriptPool::new(1, 256 * 1024).unwrap();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run("a", || {
                    std::thread::sleep(std::time::Duration::from_millis(300))
                })
                .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let gave_up = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            pool.run("b", move || flag.store(true, Ordering::SeqCst)),
        )
        .await;
        assert!(gave_up.is_err());
        busy.await.unwrap();
        assert_eq!(pool.run("c", || 1).await, Some(1), "the pool goes on");
        assert!(
            !ran.load(Ordering::SeqCst),
            "the abandoned run did not start"
        );
    }
}
