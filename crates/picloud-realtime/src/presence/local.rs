//! Members in this process: one node's presence.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use hashbrown::HashMap;
use picloud_core::ids::AppId;
use picloud_core::topic::TopicName;
use tokio::sync::watch;

use super::{Event, EventKind, Member, PresenceError, PresenceStore};

struct Held {
    data: String,
    conns: HashSet<String>,
}

/// (app, topic) → sub → its data and connections.
type Topics = HashMap<(AppId, TopicName), BTreeMap<String, Held>>;

pub struct LocalPresence {
    topics: Mutex<Topics>,
    incarnation: watch::Sender<u64>,
}

impl Default for LocalPresence {
    fn default() -> Self {
        Self {
            topics: Mutex::default(),
            incarnation: watch::channel(0).0,
        }
    }
}

#[async_trait]
impl PresenceStore for LocalPresence {
    async fn enter(
        &self,
        app: &AppId,
        topic: &TopicName,
        sub: &str,
        conn: &str,
        data: &str,
    ) -> Result<Option<Event>, PresenceError> {
        let mut topics = self.topics.lock().expect("presence lock");
        let members = topics.entry((app.clone(), topic.clone())).or_default();
        let event = |kind| Event::new(kind, sub, data);
        match members.get_mut(sub) {
            None => {
                members.insert(
                    sub.to_owned(),
                    Held {
                        data: data.to_owned(),
                        conns: HashSet::from([conn.to_owned()]),
                    },
                );
                Ok(Some(event(EventKind::Join)))
            }
            Some(held) => {
                held.conns.insert(conn.to_owned());
                if held.data == data {
                    return Ok(None);
                }
                data.clone_into(&mut held.data);
                Ok(Some(event(EventKind::Update)))
            }
        }
    }

    async fn leave(
        &self,
        app: &AppId,
        topic: &TopicName,
        sub: &str,
        conn: &str,
    ) -> Result<Option<Event>, PresenceError> {
        let mut topics = self.topics.lock().expect("presence lock");
        let key = (app.clone(), topic.clone());
        let Some(members) = topics.get_mut(&key) else {
            return Ok(None);
        };
        let Some(held) = members.get_mut(sub) else {
            return Ok(None);
        };
        if !held.conns.remove(conn) || !held.conns.is_empty() {
            return Ok(None);
        }
        let held = members.remove(sub).expect("present");
        if members.is_empty() {
            topics.remove(&key);
        }
        Ok(Some(Event::new(EventKind::Leave, sub, held.data)))
    }

    async fn members(&self, app: &AppId, topic: &TopicName) -> Result<Vec<Member>, PresenceError> {
        let topics = self.topics.lock().expect("presence lock");
        Ok(topics
            .get(&(app.clone(), topic.clone()))
            .map(|members| {
                members
                    .iter()
                    .map(|(sub, held)| Member {
                        sub: sub.clone(),
                        data: held.data.clone(),
                        connections: held.conns.len(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    fn incarnation(&self) -> watch::Receiver<u64> {
        self.incarnation.subscribe()
    }

    fn prefix(&self) -> String {
        String::new()
    }
}
