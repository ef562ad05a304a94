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
//!   batch, not once per run.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::Notify;

/// Most runs whose results wait for one announcement.
const BATCH: usize = 16;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    idle: usize,
    /// Threads notified but not yet awake: no need to notify another.
    waking: usize,
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

    /// Runs `f` on a script thread; `None` if it panicked.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let slot: Slot<R> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let job: Job = Box::new(move || {
            let r = catch_unwind(AssertUnwindSafe(f)).ok();
            *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        });
        let notify = {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.jobs.push_back(job);
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

fn work(shared: &Shared) {
    let mut done = 0;
    let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        while st.jobs.is_empty() {
            st.idle += 1;
            st = shared.ready.wait(st).unwrap_or_else(|e| e.into_inner());
            st.idle -= 1;
            st.waking = st.waking.saturating_sub(1);
        }
        // One run at a time, so a long run never holds up queued ones: another thread is
        // woken while work is left.
        let job = st.jobs.pop_front().expect("not empty");
        let wake_next = !st.jobs.is_empty() && st.idle > st.waking;
        if wake_next {
            st.waking += 1;
        }
        drop(st);
        if wake_next {
            shared.ready.notify_one();
        }
        job();
        done += 1;
        st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        // Results are announced when the queue runs dry (or every BATCH runs): one wake-up
        // of the async worker for all of them.
        if st.jobs.is_empty() || done >= BATCH {
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
                tokio::spawn(async move { pool.run(move || i * 2).await })
            })
            .collect();
        for (i, r) in runs.into_iter().enumerate() {
            assert_eq!(r.await.unwrap(), Some(i as u64 * 2));
        }
        assert_eq!(pool.run(|| -> u8 { panic!("boom") }).await, None);
        assert_eq!(pool.run(|| 7).await, Some(7));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_run_does_not_hold_up_the_others() {
        let pool = ScriptPool::new(2, 256 * 1024).unwrap();
        let slow = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(|| std::thread::sleep(std::time::Duration::from_millis(500)))
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        assert_eq!(pool.run(|| 1).await, Some(1));
        assert!(started.elapsed() < std::time::Duration::from_millis(300));
        slow.await.unwrap();
    }
}
