//! Members in Redis, for a cluster.
//!
//! - A topic's members: the hash `picloud:p:<app>:<topic>`, one field per `sub` holding
//!   `{"d": <its data, JSON text>, "c": {<connection id>: 1, …}}`.
//! - A node runs as an *incarnation* (`<node>.<random>`), alive while its lease key
//!   `picloud:lease:<incarnation>` exists (expiring [`LEASE`] after its last renewal,
//!   renewed every third of that); what each incarnation holds is listed in `picloud:pc:<incarnation>`, and
//!   every incarnation is in `picloud:incarnations`.
//! - Every change is one Lua script, so it is atomic: an enter is refused once the
//!   connection's incarnation has no lease (a paused node that comes back cannot bring its
//!   members back), and a dead incarnation's members are taken away by one script, whose
//!   one caller reports their leaves.
//! - A node that finds its lease gone starts a new incarnation and tells its connections
//!   (they close and their clients enter again).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::Script;
use async_trait::async_trait;
use picloud_core::ids::AppId;
use picloud_core::topic::TopicName;
use serde::Deserialize;
use tokio::sync::{watch, OnceCell};
use tokio_util::sync::CancellationToken;

use super::{Event, EventKind, Member, PresenceError, PresenceStore, Reaped};

/// How long a node's members outlive its last renewal (renewed every third of it).
pub const LEASE: Duration = Duration::from_secs(15);
const TIMEOUT: Duration = Duration::from_secs(2);
const MEMBERS: &str = "picloud:p:";
const INCARNATIONS: &str = "picloud:incarnations";

fn lease_key(incarnation: &str) -> String {
    format!("picloud:lease:{incarnation}")
}

fn held_key(incarnation: &str) -> String {
    format!("picloud:pc:{incarnation}")
}

fn members_key(app: &AppId, topic: &TopicName) -> String {
    format!("{MEMBERS}{}:{}", app.as_str(), topic.as_str())
}

/// The incarnation of a connection id (`<incarnation>:<n>`).
fn incarnation_of(conn: &str) -> &str {
    conn.rsplit_once(':').map_or(conn, |(inc, _)| inc)
}

/// KEYS: members, held, lease. ARGV: sub, conn, data, held entry.
/// → {-1}: no lease; {0}: nothing to tell; {1}: join; {2}: update.
const ENTER: &str = r"
if redis.call('EXISTS', KEYS[3]) == 0 then return {-1} end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local m
local ev = 0
if cur then m = cjson.decode(cur) else m = {c = {}}; ev = 1 end
if ev == 0 and m.d ~= ARGV[3] then ev = 2 end
m.d = ARGV[3]
m.c[ARGV[2]] = 1
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(m))
redis.call('SADD', KEYS[2], ARGV[4])
return {ev}
";

/// KEYS: members, held. ARGV: sub, conn, held entry. → {0} or {1, data}: left.
const LEAVE: &str = r"
redis.call('SREM', KEYS[2], ARGV[3])
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return {0} end
local m = cjson.decode(cur)
if m.c[ARGV[2]] == nil then return {0} end
m.c[ARGV[2]] = nil
if next(m.c) == nil then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {1, m.d}
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(m))
return {0}
";

/// KEYS: held, incarnations, lease. ARGV: incarnation. Takes a dead incarnation's
/// connections away → {members key, sub, data, …} for each member that left.
const REAP: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then return {} end
local out = {}
for _, e in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local h, sub, conn = string.match(e, '^(.-)\n(.-)\n(.*)$')
  local cur = h and redis.call('HGET', h, sub)
  if cur then
    local m = cjson.decode(cur)
    if m.c[conn] ~= nil then
      m.c[conn] = nil
      if next(m.c) == nil then
        redis.call('HDEL', h, sub)
        table.insert(out, h)
        table.insert(out, sub)
        table.insert(out, m.d)
      else
        redis.call('HSET', h, sub, cjson.encode(m))
      end
    end
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return out
";

#[derive(Deserialize)]
struct Stored {
    d: String,
    c: serde_json::Map<String, serde_json::Value>,
}

pub struct RedisPresence {
    node: String,
    conn: Arc<OnceCell<ConnectionManager>>,
    client: ::redis::Client,
    lease: Duration,
    current: Arc<RwLock<String>>,
    incarnation: watch::Sender<u64>,
    enter: Script,
    leave: Script,
    reap: Script,
}

fn unavailable(e: impl std::fmt::Display) -> PresenceError {
    PresenceError::Unavailable(e.to_string())
}

fn new_incarnation(node: &str) -> String {
    format!("{node}.{:016x}", rand::random::<u64>())
}

impl RedisPresence {
    /// Starts this node's first incarnation and its lease (renewed until `shutdown`, then
    /// dropped, so its members leave at once). Redis may be down: the lease is taken once
    /// it answers, and enters are refused until then.
    pub fn start(url: &str, node: &str, shutdown: CancellationToken) -> Result<Arc<Self>, String> {
        Self::start_with_lease(url, node, LEASE, shutdown)
    }

    /// [`Self::start`] with a lease other than [`LEASE`] (tests).
    pub fn start_with_lease(
        url: &str,
        node: &str,
        lease: Duration,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, String> {
        let client = ::redis::Client::open(url).map_err(|e| e.to_string())?;
        let p = Arc::new(Self {
            node: node.to_owned(),
            conn: Arc::default(),
            client,
            lease,
            current: Arc::new(RwLock::new(new_incarnation(node))),
            incarnation: watch::channel(0).0,
            enter: Script::new(ENTER),
            leave: Script::new(LEAVE),
            reap: Script::new(REAP),
        });
        tokio::spawn(keep_lease(p.clone(), shutdown));
        Ok(p)
    }

    async fn conn(&self) -> Result<ConnectionManager, PresenceError> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(TIMEOUT))
            .set_connection_timeout(Some(TIMEOUT))
            .set_max_delay(Duration::from_secs(1));
        self.conn
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .cloned()
            .map_err(unavailable)
    }

    fn current(&self) -> String {
        self.current.read().expect("incarnation lock").clone()
    }

    /// Takes (or renews) the lease of the current incarnation; a lease found gone starts a
    /// new incarnation.
    async fn renew(&self) -> Result<(), PresenceError> {
        let mut conn = self.conn().await?;
        let inc = self.current();
        let renewed: Option<String> = ::redis::cmd("SET")
            .arg(lease_key(&inc))
            .arg(&self.node)
            .arg("XX")
            .arg("PX")
            .arg(self.lease.as_millis() as u64)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if renewed.is_some() {
            return Ok(());
        }
        let first = *self.incarnation.borrow() == 0
            && !::redis::cmd("SISMEMBER")
                .arg(INCARNATIONS)
                .arg(&inc)
                .query_async::<bool>(&mut conn)
                .await
                .map_err(unavailable)?;
        let inc = if first {
            inc
        } else {
            // Gone: this node was taken for dead (paused, or cut off from Redis too long).
            let next = new_incarnation(&self.node);
            tracing::warn!(
                old = %inc,
                new = %next,
                "presence lease lost: this node's members were removed; its connections reconnect"
            );
            next
        };
        ::redis::pipe()
            .cmd("SET")
            .arg(lease_key(&inc))
            .arg(&self.node)
            .arg("PX")
            .arg(self.lease.as_millis() as u64)
            .ignore()
            .cmd("SADD")
            .arg(INCARNATIONS)
            .arg(&inc)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        let changed = *self.current.read().expect("incarnation lock") != inc;
        *self.current.write().expect("incarnation lock") = inc;
        if changed || first {
            self.incarnation.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// The incarnation this node runs as now.
    pub fn incarnation_id(&self) -> String {
        self.current()
    }

    /// Ends this incarnation: its members leave now (the other nodes' reapers report it).
    async fn resign(&self) {
        if let Ok(mut conn) = self.conn().await {
            let _: Result<(), _> = ::redis::cmd("DEL")
                .arg(lease_key(&self.current()))
                .query_async(&mut conn)
                .await;
        }
    }
}

async fn keep_lease(p: Arc<RedisPresence>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(p.lease / 3);
    let mut logged = false;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = shutdown.cancelled() => {
                p.resign().await;
                return;
            }
        }
        match p.renew().await {
            Ok(()) => logged = false,
            Err(e) if !logged => {
                tracing::warn!(error = %e, "presence lease not renewed; retrying");
                logged = true;
            }
            Err(_) => {}
        }
    }
}

#[async_trait]
impl PresenceStore for RedisPresence {
    async fn enter(
        &self,
        app: &AppId,
        topic: &TopicName,
        sub: &str,
        conn: &str,
        data: &str,
    ) -> Result<Option<Event>, PresenceError> {
        let mut c = self.conn().await?;
        let key = members_key(app, topic);
        let inc = incarnation_of(conn);
        let (ev,): (i64,) = self
            .enter
            .key(&key)
            .key(held_key(inc))
            .key(lease_key(inc))
            .arg(sub)
            .arg(conn)
            .arg(data)
            .arg(format!("{key}\n{sub}\n{conn}"))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(match ev {
            -1 => return Err(PresenceError::LeaseLost),
            1 => Some(Event::new(EventKind::Join, sub, data.to_owned())),
            2 => Some(Event::new(EventKind::Update, sub, data.to_owned())),
            _ => None,
        })
    }

    async fn leave(
        &self,
        app: &AppId,
        topic: &TopicName,
        sub: &str,
        conn: &str,
    ) -> Result<Option<Event>, PresenceError> {
        let mut c = self.conn().await?;
        let key = members_key(app, topic);
        let out: Vec<::redis::Value> = self
            .leave
            .key(&key)
            .key(held_key(incarnation_of(conn)))
            .arg(sub)
            .arg(conn)
            .arg(format!("{key}\n{sub}\n{conn}"))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(match out.as_slice() {
            [_, ::redis::Value::BulkString(data)] => Some(Event::new(
                EventKind::Leave,
                sub,
                String::from_utf8_lossy(data).into_owned(),
            )),
            _ => None,
        })
    }

    async fn members(&self, app: &AppId, topic: &TopicName) -> Result<Vec<Member>, PresenceError> {
        let mut c = self.conn().await?;
        let all: Vec<(String, String)> = ::redis::cmd("HGETALL")
            .arg(members_key(app, topic))
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let mut members: Vec<Member> = all
            .into_iter()
            .filter_map(|(sub, stored)| {
                let s: Stored = serde_json::from_str(&stored).ok()?;
                Some(Member {
                    sub,
                    data: s.d,
                    connections: s.c.len(),
                })
            })
            .collect();
        members.sort_by(|a, b| a.sub.cmp(&b.sub));
        Ok(members)
    }

    async fn reap(&self) -> Result<Vec<Reaped>, PresenceError> {
        let mut c = self.conn().await?;
        let current = self.current();
        let all: Vec<String> = ::redis::cmd("SMEMBERS")
            .arg(INCARNATIONS)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let mut reaped = Vec::new();
        for inc in all.iter().filter(|i| **i != current) {
            let alive: bool = ::redis::cmd("EXISTS")
                .arg(lease_key(inc))
                .query_async(&mut c)
                .await
                .map_err(unavailable)?;
            if alive {
                continue;
            }
            let out: Vec<String> = self
                .reap
                .key(held_key(inc))
                .key(INCARNATIONS)
                .key(lease_key(inc))
                .arg(inc)
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            if !out.is_empty() {
                tracing::info!(incarnation = %inc, members = out.len() / 3, "a dead node's members left");
            }
            for item in out.chunks_exact(3) {
                let Some((app, topic)) = item[0]
                    .strip_prefix(MEMBERS)
                    .and_then(|rest| rest.split_once(':'))
                else {
                    continue;
                };
                let Ok(topic) = TopicName::parse(topic) else {
                    continue;
                };
                reaped.push(Reaped {
                    app: AppId(app.to_owned()),
                    topic,
                    event: Event::new(EventKind::Leave, &item[1], item[2].clone()),
                });
            }
        }
        Ok(reaped)
    }

    fn incarnation(&self) -> watch::Receiver<u64> {
        self.incarnation.subscribe()
    }

    fn prefix(&self) -> String {
        format!("{}:", self.current())
    }
}
