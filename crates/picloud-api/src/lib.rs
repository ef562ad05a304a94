//! PiCloud's HTTP surface.
//!
//! # Layout
//! - [`router::build`]: the planes (axum routers) inside [`service::HttpService`], the one
//!   layer every request passes (span, deadline, panic net, JSON errors, metrics), where
//!   [`dispatch`] picks a plane by Host.
//! - [`dispatch`]: Host → health (any Host) | control plane (admin hosts) | data plane
//!   (resolved through [`host::HostResolver`]).
//! - [`routes`]: control-plane handlers, one file per resource; [`auth`] checks keys and
//!   capabilities; [`wire`] holds the JSON types; [`json`] and [`error`] give every failure
//!   the `{"error":{"code","message"}}` shape, with [`json_errors`] as the safety net.
//! - [`data_plane`]: app-host routes; [`dashboard`]: the embedded admin UI at `/_/`;
//!   [`static_site`]: an app's static files on its Host; [`wrong_plane`]: 404s that name
//!   the host a path belongs on.
//! - [`changes`]: cache invalidations, applied here and relayed to a cluster's other nodes.
//! - [`health`], [`metrics`], [`openapi`]: operations; [`activity`]: the per-second
//!   samples behind the admin stats stream.
//! - [`server`]: the accept loop (SSE streams on a lean path, the rest through hyper) until
//!   shutdown.

pub mod activity;
pub mod auth;
pub mod backups;
pub mod changes;
pub mod dashboard;
pub mod data_plane;
pub mod dispatch;
pub mod endpoint;
pub mod error;
pub mod health;
pub mod host;
pub mod json;
pub mod json_errors;
pub mod key_revocations;
pub mod lookup_cache;
pub mod metrics;
pub mod openapi;
pub mod payload;
pub mod router;
pub mod routes;
pub mod server;
pub mod service;
pub mod state;
pub mod static_site;
pub mod timestamp;
pub mod wire;
pub mod wire_scripts;
pub mod wrong_plane;

pub use router::build;
pub use server::serve;
pub use service::HttpService;
pub use state::{ApiConfig, AppState};
