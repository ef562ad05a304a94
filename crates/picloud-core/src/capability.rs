//! Capabilities: what an admin key may do. Checked on every admin endpoint.

use std::fmt;
use std::str::FromStr;

use crate::ValidationError;

/// One right on the control plane. `InstanceAdmin` implies every other capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// Read apps, domains and (later) topics, scripts and logs.
    AppRead,
    /// Create, update and delete apps and their domains.
    AppWrite,
    /// Create, update and delete topics.
    AppTopicManage,
    /// Publish to topics and mint subscriber tokens.
    AppPublish,
    /// Deploy scripts, routes and triggers.
    ScriptDeploy,
    /// Rotate and retire app secrets.
    SecretsManage,
    /// Everything, including admin keys and instance-wide settings.
    InstanceAdmin,
}

impl Capability {
    pub const ALL: [Capability; 7] = [
        Capability::AppRead,
        Capability::AppWrite,
        Capability::AppTopicManage,
        Capability::AppPublish,
        Capability::ScriptDeploy,
        Capability::SecretsManage,
        Capability::InstanceAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::AppRead => "AppRead",
            Capability::AppWrite => "AppWrite",
            Capability::AppTopicManage => "AppTopicManage",
            Capability::AppPublish => "AppPublish",
            Capability::ScriptDeploy => "ScriptDeploy",
            Capability::SecretsManage => "SecretsManage",
            Capability::InstanceAdmin => "InstanceAdmin",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Capability {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Capability::ALL.iter().map(|c| c.as_str()).collect();
                ValidationError::new(
                    "capability",
                    format!(
                        "unknown capability {s:?}; expected one of {}",
                        known.join(", ")
                    ),
                )
            })
    }
}

/// Serialises a set of capabilities for storage: comma-separated, sorted, deduplicated.
pub fn encode_set(caps: &[Capability]) -> String {
    let mut caps = caps.to_vec();
    caps.sort();
    caps.dedup();
    caps.iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads back [`encode_set`]. Unknown names (from a newer version) are skipped, never granted.
pub fn decode_set(s: &str) -> Vec<Capability> {
    s.split(',').filter_map(|c| c.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_round_trip() {
        for c in Capability::ALL {
            assert_eq!(c.as_str().parse::<Capability>().unwrap(), c);
        }
        assert!("appread".parse::<Capability>().is_err());
        let set = encode_set(&[
            Capability::AppWrite,
            Capability::AppRead,
            Capability::AppRead,
        ]);
        assert_eq!(set, "AppRead,AppWrite");
        assert_eq!(
            decode_set("AppRead,Bogus,AppWrite"),
            vec![Capability::AppRead, Capability::AppWrite]
        );
    }
}
