//! The pure domain of pronto: what an event, a contact, an identity and a lead are, how raw input becomes
//! them, and the decisions taken on them. Nothing here does I/O, so every rule is unit-testable and the
//! storage and HTTP layers stay thin.
//!
//! # Layout
//! - [`access`]: who may sign in to the web app (reps, `[[user]]`s, the admin key), their roles, and the one
//!   rule deciding which leads each sees.
//! - [`error`]: [`FieldError`] and [`Invalid`], the one way every layer reports bad input (a JSON path and a reason).
//! - [`identity`]: checked identifiers: [`Email`], [`Phone`] (E.164), [`Identity`] and its kinds.
//! - [`event`]: Segment tracking-API messages (identify, track, page, screen, group, alias) parsed into [`NewEvent`].
//! - [`ecommerce`]: the Segment e-commerce v2 events (`Checkout Started`, `Order Completed`, …) as typed structs.
//! - [`flow`]: `[[flow]]` definitions checked into [`flow::Flow`] (errors name flow, step and field) and the
//!   pure timing decisions (tiered waits, run keys, SMS quiet hours); steps wait, send (email, SMS), call
//!   (a task for the lead's owner), if, exit.
//! - [`engine`]: the flow engine's pure decisions: start/refresh/ignore on a trigger, exit rules by key or
//!   contact (out-of-order safe), walking steps to the next wait (an SMS in quiet hours defers the run).
//!   [`engine::group`] decides a whole ingest group against the runs loaded for it; [`engine::fire`] a batch of
//!   due runs (the guard, consent, the frequency cap, the SMS skip rule, call tasks) into the effects the store writes.
//! - [`experiment`]: a flow's holdout and variants: who gets what (a stable hash of flow, experiment and run
//!   key), and what the groups show (`experiment::results`).
//! - [`message`]: [`message::Outgoing`], a message as a decision leaves it (the outbox row).
//! - [`pace`]: email paced per receiving domain (so many a minute to gmail.com), the rest held, not failed.
//! - [`offer`]: offer pools of unique codes, the fallback when one is empty, and generating codes.
//! - [`lead`]: a lead from JSON or an HTML form, checked, and the `Lead Submitted` event it becomes.
//! - [`keywords`]: STOP/START/HELP in inbound SMS, as carriers treat them.
//! - [`report`]: speed-to-lead buckets and response-time statistics.
//! - [`sales`]: speed to lead: reps, teams, routing rules and strategies, working hours, the SLA clock and
//!   its escalation chain, the promise an acknowledgement makes.
//! - [`shop`]: Shopify's and WooCommerce's webhooks: the signature check and each topic's payload as the
//!   Segment messages the flows speak (checkouts, orders, refunds, customers).
//! - [`suppression`]: the suppression list: which refusals list an address (hard bounces at once, soft
//!   bounces past a limit), one spelling per address, which queued messages to skip.
//! - [`consent`]: consent by rule: marketing needs recorded consent in opt-in countries, transactional
//!   mail none; where a person is.
//! - [`erasure`]: erasing a person: their identifiers, and text and JSON cleaned of them.
//! - [`resolve`]: identity resolution: which contact an event belongs to, and which contacts merge.
//! - [`template`]: minijinja message templates checked at load (errors name template and part), the cart
//!   as a template sees it, money formatting and tracked links. Not yet used by the server.
//! - [`catalog`]: a shop's products (from its webhooks and CSV exports), what orders bought together, and
//!   the recommendations a cart's message shows ("the item plus two others").
//! - [`calendar`]: whose local time (a person's zone: theirs, their phone's country, a fallback) and how
//!   a time is written for them (their clock, the zone named).
//! - [`claim`]: signed, expiring one-click links for reps (speed-to-lead groundwork).
//! - [`clock`]: the injected [`Clock`], so time-dependent code is tested without sleeping.
//! - [`ids`]: typed ids (UUID v7, so ids sort by creation time).

pub mod access;
pub mod calendar;
pub mod catalog;
pub mod claim;
pub mod clock;
pub mod consent;
pub mod ecommerce;
pub mod engine;
pub mod erasure;
pub mod error;
pub mod event;
pub mod experiment;
pub mod expr;
pub mod flow;
pub mod identity;
pub mod ids;
pub mod keywords;
pub mod lead;
pub mod message;
pub mod offer;
pub mod pace;
pub mod program;
pub mod report;
pub mod resolve;
pub mod sales;
pub mod shop;
pub mod suppression;
pub mod template;

mod fields;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{check_json, check_text, FieldError, Invalid};
pub use event::{BodyError, EventType, NewEvent, ParseOptions};
pub use identity::{Email, Identity, IdentityKind, Phone, Region};
pub use ids::{ContactId, EventId, LeadId, MessageId, RunId, TaskId, WorkspaceId};
pub use lead::Lead;
