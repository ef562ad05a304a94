//! Admin API handlers, one file per resource. Each handler authenticates with
//! [`crate::auth::AdminAuth`], checks one capability, and calls one store trait or service.

pub mod admin_keys;
pub mod app_routes;
pub mod apps;
pub mod backups;
pub mod domains;
pub mod presence;
pub mod publish;
pub mod quotas;
pub mod runtime;
pub mod scripts;
pub mod secrets;
pub mod static_files;
pub mod stats;
pub mod subscribers;
pub mod tokens;
pub mod topics;
pub mod triggers;
pub mod try_request;
