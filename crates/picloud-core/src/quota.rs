//! Per-app quotas (set by an instance admin): how much of a node one tenant may take.
//! Each is enforced per node: behind a load balancer over N nodes an app gets up to N times
//! a rate, and each node holds its own connection count.

use crate::ValidationError;

/// An app's overrides; `None` takes the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Open realtime connections of the app on one node.
    pub connections: Option<u32>,
    /// Topics one connection may subscribe to (at most [`MAX_TOPICS_PER_CONNECTION`]).
    pub topics_per_connection: Option<u32>,
    /// Durable publishes per second through the admin API (a batch counts each message).
    pub publishes_per_sec: Option<u32>,
    /// Ephemeral publishes per second through the admin API.
    pub ephemeral_per_sec: Option<u32>,
    /// Client events per second one WebSocket connection may send (bursts of twice that).
    pub client_events_per_sec: Option<u32>,
    /// Presence enters, updates and leaves per second one connection may send (bursts of
    /// twice that).
    pub presence_per_sec: Option<u32>,
}

/// What applies: the overrides over the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub connections: u32,
    pub topics_per_connection: u32,
    pub publishes_per_sec: u32,
    pub ephemeral_per_sec: u32,
    pub client_events_per_sec: u32,
    pub presence_per_sec: u32,
}

/// The server's own cap on topics per connection, whatever an app is allowed.
pub const MAX_TOPICS_PER_CONNECTION: u32 = 100;

/// Generous enough that one app may use a whole node (the benchmarks do); an instance that
/// hosts tenants it does not trust lowers them per app.
pub const DEFAULTS: Effective = Effective {
    connections: 20_000,
    topics_per_connection: MAX_TOPICS_PER_CONNECTION,
    publishes_per_sec: 50_000,
    ephemeral_per_sec: 200_000,
    client_events_per_sec: 10,
    presence_per_sec: 5,
};

impl Quotas {
    pub fn effective(&self) -> Effective {
        Effective {
            connections: self.connections.unwrap_or(DEFAULTS.connections),
            topics_per_connection: self
                .topics_per_connection
                .unwrap_or(DEFAULTS.topics_per_connection),
            publishes_per_sec: self.publishes_per_sec.unwrap_or(DEFAULTS.publishes_per_sec),
            ephemeral_per_sec: self.ephemeral_per_sec.unwrap_or(DEFAULTS.ephemeral_per_sec),
            client_events_per_sec: self
                .client_events_per_sec
                .unwrap_or(DEFAULTS.client_events_per_sec),
            presence_per_sec: self.presence_per_sec.unwrap_or(DEFAULTS.presence_per_sec),
        }
    }

    /// Every override at least 1 (0 would refuse everything: delete the app instead), and
    /// topics per connection within the server's cap.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (field, v) in [
            ("connections", self.connections),
            ("topics_per_connection", self.topics_per_connection),
            ("publishes_per_sec", self.publishes_per_sec),
            ("ephemeral_per_sec", self.ephemeral_per_sec),
            ("client_events_per_sec", self.client_events_per_sec),
            ("presence_per_sec", self.presence_per_sec),
        ] {
            if v == Some(0) {
                return Err(ValidationError::new(field, "must be at least 1"));
            }
        }
        if self
            .topics_per_connection
            .is_some_and(|t| t > MAX_TOPICS_PER_CONNECTION)
        {
            return Err(ValidationError::new(
                "topics_per_connection",
                format!("at most {MAX_TOPICS_PER_CONNECTION}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_defaults_and_zero_or_too_many_topics_are_refused() {
        let q = Quotas {
            publishes_per_sec: Some(5),
            ..Default::default()
        };
        assert_eq!(q.effective().publishes_per_sec, 5);
        assert_eq!(q.effective().connections, DEFAULTS.connections);
        assert!(q.validate().is_ok());
        let zero = Quotas {
            connections: Some(0),
            ..Default::default()
        };
        assert!(zero.validate().is_err());
        let many = Quotas {
            topics_per_connection: Some(101),
            ..Default::default()
        };
        assert!(many.validate().is_err());
    }
}
