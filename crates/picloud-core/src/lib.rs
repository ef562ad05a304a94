//! PiCloud's core: the vocabulary every other crate speaks.
//!
//! # Layout
//! - [`app`]: apps (tenants) and slug validation.
//! - [`host`]: Host header parsing and normalisation, the key of data-plane routing.
//! - [`domain`]: custom domains that resolve to an app.
//! - [`capability`]: what an admin key may do.
//! - [`admin_key`]: admin key generation, parsing and constant-time verification.
//! - [`topic`]: topic names, patterns (`chat.*`), auth mode, retention.
//! - [`message`]: messages, publish items, and the [`message::Broadcaster`] seam.
//! - [`secret`]: app secrets that sign subscriber tokens.
//! - [`script`]: scripts, versions, routes and route matching.
//! - [`trigger`]: trigger kinds, filters, cron schedules, retry policies.
//! - [`data`]: kv keys, document collections, file paths (the script SDK's data).
//! - [`dispatch`]: deliveries, dead letters, invocation records, per-app runtime settings.
//! - [`store`]: the storage traits (`AppStore`, `DomainStore`, …) that `picloud-store`
//!   implements for SQLite and PostgreSQL, with their contracts.
//! - [`error`]: validation and store errors.
//!
//! Data flows one way: the API parses input into these types (validation happens here),
//! calls a store trait, and renders the result. This crate does no I/O and knows nothing
//! of sqlx, axum or HTTP.

pub mod admin_key;
pub mod app;
pub mod capability;
pub mod data;
pub mod dispatch;
pub mod domain;
pub mod error;
pub mod host;
pub mod ids;
pub mod message;
pub mod quota;
pub mod script;
pub mod secret;
pub mod store;
pub mod time;
pub mod topic;
pub mod trigger;

pub use error::{StoreError, ValidationError};
