//! Admin API and Host dispatch, driven over real sockets against the real router, on SQLite
//! and on PostgreSQL.

mod raw;
mod sse;
mod support;

mod apps;
mod auth;
mod bad_input;
mod batch_publish;
mod dashboard;
mod domains;
mod edge;
mod health;
mod keep_alive;
mod lanes;
mod openapi;
mod overview;
mod quotas;
mod realtime;
mod resume;
mod scripts;
mod slow_consumer;
mod static_site;
mod ws;
mod ws_client;
