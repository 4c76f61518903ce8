//! pronto's server: the HTTP API (axum), configuration, and (in later issues) the workers.
//!
//! Handlers are thin: extractors read the request, the [`service::Service`] parses into domain types and makes
//! one store call, and [`error::ApiError`] maps every failure to a status and a JSON body naming the field.
//! No SQL lives here.
//!
//! # Layout
//! - [`config`]: `pronto.toml` + environment + flags → checked [`config::Settings`].
//! - [`app`]: open the store, bootstrap keys, build the router, serve, shut down gracefully.
//! - [`routes`]: one module per area (ingest, leads and forms, contacts, ops) and the OpenAPI frame (`docs`).
//! - [`extract`]: write key (HTTP Basic), admin key (Bearer), Idempotency-Key, client IP, size-limited body.
//! - [`service`]: authenticate, parse, store, count.
//! - [`state`]: shared state; the per-IP form limiter.
//! - [`keys`]: generating and hashing API keys.
//! - [`telemetry`]: Prometheus metrics and the request-recording middleware.
//! - [`error`]: the API's error type.

pub mod app;
pub mod config;
pub mod error;
pub mod extract;
pub mod keys;
pub mod routes;
pub mod service;
pub mod state;
pub mod telemetry;

pub use app::App;
pub use config::{Overrides, Settings};
