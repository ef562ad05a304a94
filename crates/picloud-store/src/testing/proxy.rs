//! A TCP proxy with faults a test switches on a running connection: cut (every connection
//! reset, new ones refused), blackhole (connections stay open but nothing gets through, as
//! when packets are dropped; what was sent arrives once restored, as TCP would retransmit
//! it), and delay (every byte arrives late). To make a real database or Redis "go away"
//! and come back without stopping the shared server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

#[derive(Default)]
struct Faults {
    down: AtomicBool,
    blackholed: AtomicBool,
    delay_ms: AtomicU64,
    /// Wakes writers held by a blackhole.
    changed: tokio::sync::Notify,
}

pub struct TcpProxy {
    pub addr: SocketAddr,
    faults: Arc<Faults>,
    /// Bumped on every cut; live relays watch it and close.
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts relaying 127.0.0.1:<random port> → `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let faults = Arc::new(Faults::default());
        let (cuts, _) = watch::channel(0u64);
        let task = tokio::spawn({
            let faults = faults.clone();
            let cuts = cuts.clone();
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    if faults.down.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let mut cut = cuts.subscribe();
                    let faults = faults.clone();
                    tokio::spawn(async move {
                        let Ok(outbound) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let (ir, iw) = inbound.into_split();
                        let (or, ow) = outbound.into_split();
                        tokio::select! {
                            () = pipe(ir, ow, faults.clone()) => {}
                            () = pipe(or, iw, faults) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            }
        });
        Self {
            addr,
            faults,
            cuts,
            task,
        }
    }

    /// Closes every relayed connection and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        self.faults.down.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Nothing gets through (in either direction, on any connection) until restored.
    pub fn blackhole(&self) {
        self.faults.blackholed.store(true, Ordering::SeqCst);
    }

    /// Every byte arrives `delay` late (zero: no delay).
    pub fn delay(&self, delay: Duration) {
        self.faults
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Ends every fault.
    pub fn restore(&self) {
        self.faults.down.store(false, Ordering::SeqCst);
        self.faults.blackholed.store(false, Ordering::SeqCst);
        self.faults.delay_ms.store(0, Ordering::SeqCst);
        self.faults.changed.notify_waiters();
    }
}

/// One direction: read as it comes, write when due and not blackholed. Ends when either
/// side closes.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, faults: Arc<Faults>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = {
        let faults = faults.clone();
        async move {
            while let Some((due, bytes)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                loop {
                    let changed = faults.changed.notified();
                    if !faults.blackholed.load(Ordering::SeqCst) {
                        break;
                    }
                    // Polled again now and then: a restore between the check and the wait.
                    let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
                }
                if to.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        }
    };
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let delay = Duration::from_millis(faults.delay_ms.load(Ordering::SeqCst));
            if tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                return;
            }
        }
    };
    // The reader ending (its side closed) drops `tx`; the writer then finishes what it holds.
    tokio::join!(reader, writer);
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cuts.send_modify(|n| *n += 1);
    }
}
