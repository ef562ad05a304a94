//! `picloud.toml`: an app described in one file (docs/apps.md). Parsed here, compared with
//! a running server by `app_cmd`. Paths inside are relative to the manifest's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

pub const FILE: &str = "picloud.toml";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub slug: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Hosts the app answers on besides `<slug>.localhost`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// The static site's directory, served on the app's Host.
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    pub static_dir: Option<PathBuf>,
    /// A single-page app: unknown extension-less paths answer `index.html`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spa: bool,
    /// Env values the scripts read, by name. Values are secrets: set them with the API,
    /// never here; a deploy says which are missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Runtime>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<Topic>,
    /// Script name → its source file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scripts: BTreeMap<String, PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    /// Overrides of the script limits (`max_operations`, `timeout_ms`, …).
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub limits: toml::Table,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
}

/// A topic. Fields left out are left as the server has them (or its defaults, on create).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Topic {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_subscribable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// WebSocket client events allowed (docs/protocol.md "Client events").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_publish: Option<bool>,
    /// Presence on (docs/protocol.md "Presence").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub script: String,
}

/// A trigger is known by its kind, script and filter; `enabled` and `retry` are its settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub kind: String,
    pub script: String,
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub filter: toml::Table,
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    pub max_attempts: u32,
    pub base_delay_ms: i64,
    pub max_delay_ms: i64,
}

/// A TOML table as the JSON the API speaks.
pub fn json(table: &toml::Table) -> serde_json::Value {
    serde_json::to_value(table).unwrap_or_default()
}

/// A JSON object as a TOML table (`export`); `null`s have no TOML form and are left out.
pub fn table(value: &serde_json::Value) -> toml::Table {
    let mut v = value.clone();
    if let serde_json::Value::Object(m) = &mut v {
        m.retain(|_, x| !x.is_null());
    }
    serde_json::from_value(v).unwrap_or_default()
}

impl Manifest {
    /// Reads `DIR/picloud.toml`, or a manifest file named directly.
    pub fn load(dir_or_file: &Path) -> anyhow::Result<(Manifest, PathBuf)> {
        let (file, dir) = if dir_or_file.is_dir() {
            (dir_or_file.join(FILE), dir_or_file.to_owned())
        } else {
            let dir = dir_or_file.parent().unwrap_or(Path::new(".")).to_owned();
            (dir_or_file.to_owned(), dir)
        };
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let m: Manifest = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid manifest", file.display()))?;
        m.check()
            .with_context(|| format!("{} is not a valid manifest", file.display()))?;
        Ok((m, dir))
    }

    /// What the file alone can tell is wrong; the server judges the rest.
    fn check(&self) -> anyhow::Result<()> {
        let mut seen = std::collections::HashSet::new();
        for t in &self.topics {
            if !seen.insert(&t.name) {
                bail!("topic {:?} is listed twice", t.name);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.routes {
            if !seen.insert((r.method.to_ascii_uppercase(), &r.path)) {
                bail!("route {} {} is listed twice", r.method, r.path);
            }
            if !self.scripts.contains_key(&r.script) {
                bail!(
                    "route {} {} names script {:?}, which is not under [scripts]",
                    r.method,
                    r.path,
                    r.script
                );
            }
        }
        for t in &self.triggers {
            if !self.scripts.contains_key(&t.script) {
                bail!(
                    "a {} trigger names script {:?}, which is not under [scripts]",
                    t.kind,
                    t.script
                );
            }
        }
        Ok(())
    }

    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }
}
