//! pronto's server: the HTTP API (axum), configuration, and the workers that run flows.
//!
//! Handlers are thin: extractors read the request, the handler makes one [`service::Service`] call (which
//! parses into domain types and calls the store; no handler reaches the store itself), and
//! [`error::ApiError`] maps every failure to a status and a JSON body naming the field.
//! No SQL lives here.
//!
//! # Layout
//! - [`config`]: `pronto.toml` + environment + flags → checked [`config::Settings`].
//! - [`app`]: open the store, bootstrap keys, build the router, serve, shut down gracefully.
//! - [`routes`]: one module per area (the web app under `/app`, ingest, leads and forms, contacts, flows/runs/messages and the
//!   unsubscribe link, speed to lead: reps, leads, claims, attempts, the report, inbound SMS/voice/email
//!   webhooks, ops) and the OpenAPI frame (`docs`).
//! - [`workers`]: the scheduler (fires due timers and SLA steps) and the delivery worker (sends the outbox over
//!   SMTP or into the dev mailbox, SMS over a Twilio-compatible API, signed webhooks), each sleeping until the
//!   next due time or a wake-up; each one's unit of work is a public step (`fire_step`, `deliver_step`) that
//!   tests run until idle (`Stepper::settle`, with `App::build_stepped`).
//! - [`sales`]: the speed-to-lead service: reps' status, claims and attempts as events with the action
//!   attached, STOP/START/HELP (STOP also an `SMS Opted Out` event cadences exit on), reps' task queues, the
//!   report (JSON, CSV, terminal table).
//! - [`auth`]: the web app's sign-in (mailed link, password, admin key), sessions and CSRF tokens.
//! - [`inbox`]: what a signed-in person works with: their inbox, a lead's story, actions as themselves;
//!   every lead passes the domain's visibility rule (`access::User::may_see`).
//! - [`owner`]: what a shop owner (an admin) works with: every flow's recovery over a period, the messages
//!   explorer, a message as sent, a contact's timeline.
//! - [`lead_report`]: the speed-to-lead report's leads kept in memory, brought up to date from the store's
//!   change mark on each read (the board and `GET /v1/reports/speed-to-lead`).
//! - [`live`]: one watcher per process that tells open inboxes when leads change (server-sent events).
//! - [`web`]: the app's pages rendered from what the service answers (no request, no store).
//! - [`privacy`]: everything held on one person, for their access request (the export).
//! - [`suppressions`]: the suppression list as admins manage it (list, add, CSV import and export, remove).
//! - [`experiments`]: flows' experiments over a period (`GET /v1/reports/flows`, `pronto report flows`).
//! - [`extract`]: write key (HTTP Basic), admin key (Bearer), Idempotency-Key, client IP, size-limited body.
//! - [`service`]: authenticate, parse, store, count.
//! - [`views`]: what the service assembles for the API (below the service and the routes).
//! - [`state`]: shared state; the per-IP form limiter.
//! - [`keys`]: generating and hashing API keys.
//! - [`telemetry`]: Prometheus metrics and the request-recording middleware.
//! - [`error`]: the API's error type.

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod experiments;
pub mod extract;
pub mod inbox;
pub mod keys;
pub mod lead_report;
pub mod live;
pub mod owner;
pub mod privacy;
pub mod routes;
pub mod sales;
pub mod service;
pub mod shops;
pub mod state;
pub mod suppressions;
pub mod telemetry;
pub mod views;
pub mod web;
pub mod workers;

pub use app::App;
pub use config::{Overrides, Settings};
