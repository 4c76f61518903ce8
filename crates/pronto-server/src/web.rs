//! The web app's pages, rendered on the server: plain HTML forms that work without JavaScript, which
//! `assets/app.js` enhances (live inbox, SLA countdowns, local times). Each function here turns what the
//! service answered into a page; none reads a request or the store.
//!
//! # Layout
//! - [`html`]: the app's shell (header, navigation, sign-out, the CSRF field), escaping and times.
//! - [`sign_in`]: the sign-in pages (link, password, admin key) and the admin's session list.
//! - [`board`]: a manager's team board: reps' state, unclaimed leads with a hand-off, speed to lead as an
//!   SVG chart, tables and a CSV.
//! - [`inbox`]: a rep's inbox (new leads first, SLA countdowns, call, claim, log a call, today's tasks,
//!   away/back) and a lead's whole story.
//! - [`owner`]: a shop owner's recovery at a glance (funnels per flow and step, holdout, experiments), the
//!   messages explorer, a message as sent, a contact's timeline.

pub mod board;
pub mod html;
pub mod inbox;
pub mod owner;
pub mod sign_in;
