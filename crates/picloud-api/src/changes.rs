//! Changes that invalidate what nodes cache (resolved Hosts, admin keys, routes, compiled
//! scripts, runtime settings, token keys). [`AppState::changed`] applies one on this node and,
//! in a cluster, sends it on the relay's control channel; every other node applies it on
//! receipt, so a revoked key or a new domain takes effect everywhere at once. The caches'
//! TTLs stay as the fallback for a change the lossy relay drops.

use std::sync::Arc;

use bytes::Bytes;
use picloud_core::ids::AppId;
use picloud_core::script::ScriptName;
use picloud_realtime::cluster::Node;
use serde::{Deserialize, Serialize};

use crate::state::AppState;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// An app or a domain: every resolved Host and app lookup.
    Apps,
    /// An app deleted: its lookups, and every stream opened with its tokens ends.
    AppDeleted {
        app: String,
    },
    /// An admin key created; `revoked`: one revoked (its open streams end too).
    Keys {
        revoked: Option<String>,
    },
    Routes {
        app: String,
    },
    Script {
        app: String,
        name: String,
    },
    Settings {
        app: String,
    },
    /// The app's quotas.
    Quotas {
        app: String,
    },
    /// The app's token keys or lifetime limit; `retired`: a key retired (the streams
    /// opened with its tokens end).
    Tokens {
        app: String,
        retired: Option<String>,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    node: String,
    change: Change,
}

/// This node's end of the control channel (`picloud_realtime::cluster::CONTROL_CHANNEL`).
#[derive(Clone)]
pub struct ControlPlane {
    node: Arc<Node>,
}

impl ControlPlane {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    async fn send(&self, change: &Change) {
        let envelope = Envelope {
            node: self.node.id.to_string(),
            change: change.clone(),
        };
        let Ok(json) = serde_json::to_vec(&envelope) else {
            return;
        };
        if let Err(e) = self.node.send_control(Bytes::from(json)).await {
            // Other nodes converge within their caches' TTLs.
            tracing::warn!(error = %e, "change not relayed");
        }
    }

    /// Applies other nodes' changes on this one until the relay ends.
    pub fn follow(self, state: AppState) {
        let mut rx = self.node.control_received();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(Some(payload)) => {
                        let Ok(e) = serde_json::from_slice::<Envelope>(&payload) else {
                            continue;
                        };
                        if *e.node != *self.node.id {
                            apply(&state, &e.change).await;
                        }
                    }
                    // Changes were missed: drop everything cached that they could touch.
                    Ok(None) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        apply(&state, &Change::Apps).await;
                        apply(&state, &Change::Keys { revoked: None }).await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
}

/// What a change drops on this node.
async fn apply(state: &AppState, change: &Change) {
    match change {
        Change::Apps => invalidate_apps(state),
        Change::AppDeleted { app } => {
            invalidate_apps(state);
            state.realtime.tokens.revoke_app(&AppId(app.clone()));
        }
        Change::Keys { revoked } => {
            state.lookups.invalidate_keys();
            if let Some(id) = revoked {
                state.key_revocations.revoke(id);
            }
        }
        Change::Routes { app } => state.routes.invalidate(&AppId(app.clone())).await,
        Change::Script { app, name } => {
            if let Ok(name) = ScriptName::parse(name) {
                state
                    .invoker
                    .script_changed(&AppId(app.clone()), &name)
                    .await;
            }
        }
        Change::Settings { app } => state.invoker.settings_changed(&AppId(app.clone())).await,
        Change::Quotas { app } => state.realtime.quotas.invalidate(&AppId(app.clone())),
        Change::Tokens { app, retired } => {
            let app = AppId(app.clone());
            state.realtime.tokens.invalidate(&app).await;
            if let Some(kid) = retired {
                state.realtime.tokens.end_streams(&app, kid);
            }
        }
    }
}

fn invalidate_apps(state: &AppState) {
    state.resolver.invalidate_all();
    state.lookups.invalidate_apps();
    // Deleting an app deletes its bound keys.
    state.lookups.invalidate_keys();
}

impl AppState {
    /// Applies `change` here, then tells the other nodes (in a cluster).
    pub async fn changed(&self, change: Change) {
        apply(self, &change).await;
        if let Some(control) = self.control.get() {
            control.send(&change).await;
        }
    }
}
