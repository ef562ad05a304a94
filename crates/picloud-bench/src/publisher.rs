//! Publishers: keep-alive connections that each send one request and wait for its answer
//! (no pipelining), either as fast as possible or on a shared fixed-rate schedule. Every
//! message carries its send time (`latency::Payload`), so subscribers can measure
//! publish→receive latency; the publisher records publish (request→response) latency.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::http::HttpConn;
use crate::latency::{self, Payload};
use crate::server::{Endpoint, TopicRef};

#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// Each connection sends its next request as soon as the previous one is answered.
    Saturate,
    /// Messages per second in all, on one schedule shared by the connections.
    Rate(f64),
}

#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub conns: usize,
    pub pace: Pace,
    pub duration: Duration,
    pub durable: bool,
    /// Message `i` goes to topic `i % topics` (round-robin over `t0..t<topics>`).
    pub topics: usize,
    /// Every message to this topic instead (`topics` is then ignored).
    pub named_topic: Option<&'static str>,
    /// Stop after this many messages (sent, successful or not) even before `duration`.
    pub limit: Option<u64>,
    /// Messages per request: 1 uses the one-message endpoint; more, PiCloud's batch
    /// endpoint (`POST /api/v1/apps/{app}/publish`), consecutive round-robin topics each.
    pub batch: usize,
}

pub struct Outcome {
    pub ok: u64,
    /// Failed publishes by HTTP status (0: I/O error).
    pub errors: BTreeMap<u16, u64>,
    pub first_error: Option<String>,
    /// Request→response, µs, successful publishes.
    pub latency: Histogram<u64>,
    pub elapsed: Duration,
    /// Fixed rate only: scheduled send time→response, µs (includes any wait behind
    /// schedule, so a server that cannot hold the rate shows it here).
    pub from_schedule: Histogram<u64>,
    /// Fixed rate only: how late the latest send was against its schedule.
    pub max_behind: Duration,
}

impl Outcome {
    fn new() -> Self {
        Self {
            ok: 0,
            errors: BTreeMap::new(),
            first_error: None,
            latency: latency::histogram(),
            from_schedule: latency::histogram(),
            elapsed: Duration::ZERO,
            max_behind: Duration::ZERO,
        }
    }

    fn merge(&mut self, o: Outcome) {
        self.ok += o.ok;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        let _ = self.latency.add(&o.latency);
        let _ = self.from_schedule.add(&o.from_schedule);
        self.max_behind = self.max_behind.max(o.max_behind);
    }

    fn error(&mut self, status: u16, msg: String) {
        *self.errors.entry(status).or_default() += 1;
        if self.first_error.is_none() {
            self.first_error = Some(msg);
        }
    }

    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn to_json(&self, plan: &Plan) -> Value {
        let secs = self.elapsed.as_secs_f64();
        let per_sec = self.ok as f64 / secs.max(1e-9);
        let (rate_held, from_schedule) = match plan.pace {
            Pace::Saturate => (Value::Null, Value::Null),
            Pace::Rate(r) => (
                json!(per_sec >= 0.98 * r),
                latency::summary(&self.from_schedule),
            ),
        };
        json!({
            "conns": plan.conns,
            "messages_per_request": plan.batch.max(1),
            "pace": match plan.pace { Pace::Saturate => json!("max"), Pace::Rate(r) => json!(r) },
            "publish_secs": round3(secs),
            "publishes_ok": self.ok,
            "publishes_failed": self.failed(),
            "publish_errors_by_status": self.errors.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "first_publish_error": self.first_error,
            "publishes_per_sec": round1(per_sec),
            "publish_latency_ms": latency::summary(&self.latency),
            "rate_held": rate_held,
            "publish_latency_from_schedule_ms": from_schedule,
            "max_behind_schedule_ms": match plan.pace { Pace::Saturate => Value::Null, Pace::Rate(_) => json!(round3(self.max_behind.as_secs_f64() * 1000.0)) },
        })
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub async fn run(
    ep: &Endpoint,
    plan: Plan,
    payload: Arc<Payload>,
    epoch: Instant,
) -> Result<Outcome> {
    run_over(std::slice::from_ref(ep), plan, payload, epoch).await
}

/// [`run`] through several servers (a cluster's nodes): request `i` goes to `eps[i % n]`,
/// so the publishes round-robin over the nodes on the plan's one schedule. With more
/// than one server every send time is tagged with the server's index
/// ([`latency::tag_origin`]) so that subscribers can tell same-node from cross-node
/// deliveries. Each connection task keeps one connection to every server and, as with
/// one server, has one request in flight.
pub async fn run_over(
    eps: &[Endpoint],
    plan: Plan,
    payload: Arc<Payload>,
    epoch: Instant,
) -> Result<Outcome> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + plan.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.conns {
        let (eps, next, payload) = (eps.to_vec(), next.clone(), payload.clone());
        tasks.spawn(conn_loop(eps, plan, next, start, deadline, payload, epoch));
    }
    let mut total = Outcome::new();
    while let Some(o) = tasks.join_next().await {
        total.merge(o?);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

async fn conn_loop(
    eps: Vec<Endpoint>,
    plan: Plan,
    next: Arc<AtomicU64>,
    start: Instant,
    deadline: Instant,
    payload: Arc<Payload>,
    epoch: Instant,
) -> Outcome {
    let mut out = Outcome::new();
    let mut conns = Vec::with_capacity(eps.len());
    for ep in &eps {
        match HttpConn::connect(ep.addr).await {
            Ok(c) => conns.push(c),
            Err(e) => {
                out.error(0, format!("{e:#}"));
                return out;
            }
        }
    }
    let tagged = eps.len() > 1;
    let mut req = Vec::with_capacity(1024);
    let mut body = Vec::with_capacity(256);
    let mut one = Vec::with_capacity(256);
    let batch = plan.batch.max(1) as u64;
    loop {
        let i = next.fetch_add(batch, Relaxed);
        if plan.limit.is_some_and(|l| i >= l) {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            break; // a server that cannot keep up gets no extra time
        }
        let scheduled = match plan.pace {
            Pace::Saturate => None,
            Pace::Rate(rate) => {
                let at = start + Duration::from_secs_f64(i as f64 / rate);
                if at >= deadline {
                    break;
                }
                if at > now {
                    tokio::time::sleep_until(at.into()).await;
                } else {
                    out.max_behind = out.max_behind.max(now - at);
                }
                Some(at)
            }
        };
        let topic = |i: u64| match plan.named_topic {
            Some(name) => TopicRef::Named(name),
            None => TopicRef::Index((i % plan.topics.max(1) as u64) as usize),
        };
        let node = ((i / batch) % eps.len() as u64) as usize;
        let (ep, conn) = (&eps[node], &mut conns[node]);
        let sent = Instant::now();
        let mut t_ns = sent.duration_since(epoch).as_nanos() as u64;
        if tagged {
            t_ns = latency::tag_origin(t_ns, node as u64);
        }
        req.clear();
        if batch == 1 {
            payload.write(&mut body, t_ns);
            ep.publish_request(&mut req, topic(i), &body, plan.durable);
        } else {
            use std::io::Write;
            body.clear();
            body.extend_from_slice(b"{\"messages\":[");
            for k in 0..batch {
                if k > 0 {
                    body.push(b',');
                }
                payload.write(&mut one, t_ns);
                let _ = write!(body, "{{\"topic\":\"{}\",\"data\":", topic(i + k));
                body.extend_from_slice(&one);
                body.push(b'}');
            }
            body.extend_from_slice(b"]}");
            ep.publish_batch_request(&mut req, &body, plan.durable);
        }
        match conn.roundtrip(&req).await {
            Ok(status) if (200..300).contains(&status) => {
                out.ok += batch;
                out.latency
                    .saturating_record((sent.elapsed().as_micros() as u64).max(1));
                if let Some(at) = scheduled {
                    out.from_schedule
                        .saturating_record((at.elapsed().as_micros() as u64).max(1));
                }
            }
            Ok(status) => {
                let msg = format!("{status}: {}", conn.body_text());
                out.error(status, msg);
            }
            Err(e) => {
                out.error(0, format!("{e:#}"));
                // The next roundtrip reconnects; don't spin on a dead server.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    out
}
