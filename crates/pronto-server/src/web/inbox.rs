//! A rep's inbox and a lead's story, phone first: one column of cards, big targets, a call link and
//! "I'm on it" on every new lead, a call logged in two taps (open, pick the outcome).

use super::html::{csrf_field, escape, fields, layout, span, time, Shell};
use crate::auth::Viewer;
use crate::inbox::{Inbox, LeadStory, CALL_OUTCOMES};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use pronto_store::LeadState;

fn who(l: &LeadState) -> String {
    l.name
        .clone()
        .or_else(|| l.email.clone())
        .or_else(|| l.phone.clone())
        .unwrap_or_else(|| "Someone".into())
}

/// "SLA: 4 min left" (ticking in the browser), "SLA missed 2 min ago", or nothing once someone is on it.
fn sla(l: &LeadState, now: DateTime<Utc>) -> String {
    match (l.sla_deadline, l.claimed_at.or(l.first_contact_at)) {
        (Some(deadline), None) => {
            let left = deadline - now;
            let (class, text) = if left > chrono::Duration::zero() {
                ("sla", format!("{} left to call", span(left)))
            } else {
                ("sla late", format!("SLA missed {} ago", span(left)))
            };
            format!(
                "<p class=\"{class}\" data-deadline=\"{}\">{text}</p>",
                deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        }
        _ => String::new(),
    }
}

fn call_link(l: &LeadState) -> String {
    l.phone
        .as_ref()
        .map(|p| {
            format!(
                "<a class=\"button call\" href=\"tel:{0}\">Call {0}</a>",
                escape(p)
            )
        })
        .unwrap_or_default()
}

fn log_call_form(l: &LeadState, csrf: &str) -> String {
    let buttons: String = CALL_OUTCOMES
        .iter()
        .map(|(value, label)| {
            format!("<button type=\"submit\" name=\"outcome\" value=\"{value}\">{label}</button>")
        })
        .collect();
    format!(
        "<details class=\"log\"><summary>Log a call</summary>\
         <form method=\"post\" action=\"/app/leads/{id}/calls\" class=\"stack\">{csrf}\
         <label for=\"note-{id}\">Note (optional)</label>\
         <textarea id=\"note-{id}\" name=\"note\" rows=\"2\" maxlength=\"10000\"></textarea>\
         <div class=\"outcomes\" role=\"group\" aria-label=\"How did the call with {name} go?\">{buttons}</div>\
         </form></details>",
        id = l.id,
        csrf = csrf_field(csrf),
        name = escape(&who(l)),
    )
}

fn card(l: &LeadState, viewer: &Viewer, zone: Tz, now: DateTime<Utc>) -> String {
    let company = l
        .company
        .as_ref()
        .map(|c| format!(" <span class=\"muted\">{}</span>", escape(c)))
        .unwrap_or_default();
    let via = l
        .form
        .as_ref()
        .map(|f| format!("form {f}"))
        .or_else(|| l.source.clone())
        .unwrap_or_else(|| "API".into());
    let owner = match (&l.owner, l.status.as_str()) {
        (Some(o), "open") => format!(" · for {}", escape(o)),
        (Some(o), s) => format!(" · {} by {}", escape(s), escape(o)),
        (None, s) => format!(" · {}", escape(s)),
    };
    let message = l
        .message
        .as_ref()
        .map(|m| format!("<blockquote>{}</blockquote>", escape(m)))
        .unwrap_or_default();
    let is_rep = viewer.user.rep.is_some();
    let claim = if is_rep && l.claimed_at.is_none() {
        format!(
            "<form method=\"post\" action=\"/app/leads/{}/claim\" class=\"inline\">{}\
             <button type=\"submit\" class=\"primary\">I'm on it</button></form>",
            l.id,
            csrf_field(&viewer.csrf)
        )
    } else {
        String::new()
    };
    let log = if is_rep {
        log_call_form(l, &viewer.csrf)
    } else {
        String::new()
    };
    format!(
        "<li class=\"card\" id=\"lead-{id}\"><h3><a href=\"/app/leads/{id}\">{name}</a>{company}</h3>{sla}\
         <p class=\"meta\">{when} · via {via}{owner}</p>{message}\
         <div class=\"actions\">{call}{claim}</div>{log}</li>",
        id = l.id,
        name = escape(&who(l)),
        sla = sla(l, now),
        when = time(l.created_at, zone),
        via = escape(&via),
        call = call_link(l),
    )
}

/// One lead as a live update sends it to an open inbox: its card and the list it belongs in.
#[derive(Debug, serde::Serialize)]
pub struct LiveCard {
    pub id: String,
    /// `new` (open), `working` (claimed or contacted) or `gone` (won or lost: off the inbox).
    pub section: &'static str,
    /// The card as the inbox draws it (empty when gone).
    pub html: String,
}

/// The live update of `l` for `viewer`'s inbox.
pub fn live_card(l: &LeadState, viewer: &Viewer, zone: Tz, now: DateTime<Utc>) -> LiveCard {
    use pronto_domain::sales::lead::LeadStatus;
    let section = match l.status {
        LeadStatus::Open => "new",
        LeadStatus::Claimed | LeadStatus::Contacted => "working",
        _ => "gone",
    };
    LiveCard {
        id: l.id.to_string(),
        section,
        html: if section == "gone" {
            String::new()
        } else {
            card(l, viewer, zone, now)
        },
    }
}

fn cards(
    leads: &[LeadState],
    viewer: &Viewer,
    zone: Tz,
    now: DateTime<Utc>,
    empty: &str,
) -> String {
    if leads.is_empty() {
        return format!("<p class=\"muted\">{empty}</p>");
    }
    let items: String = leads.iter().map(|l| card(l, viewer, zone, now)).collect();
    format!("<ul class=\"cards\">{items}</ul>")
}

/// The inbox page.
pub fn inbox_page(viewer: &Viewer, inbox: &Inbox) -> String {
    let away = match inbox.away {
        Some(away) => format!(
            "<form method=\"post\" action=\"/app/away\" class=\"duty\">{}\
             <p>You are <strong>{}</strong>. </p>\
             <input type=\"hidden\" name=\"away\" value=\"{}\">\
             <button type=\"submit\">{}</button></form>",
            csrf_field(&viewer.csrf),
            if away {
                "away: no new leads are routed to you"
            } else {
                "taking leads"
            },
            !away,
            if away { "I'm back" } else { "Set me away" }
        ),
        None => String::new(),
    };
    let tasks = if inbox.away.is_some() {
        let items: String = inbox
            .tasks
            .iter()
            .map(|t| {
                let call = t
                    .call_url
                    .as_ref()
                    .map(|u| format!(" <a class=\"button call\" href=\"{0}\">Call</a>", escape(u)))
                    .unwrap_or_default();
                let late = if t.overdue { " late" } else { "" };
                format!(
                    "<li class=\"card task{late}\"><h3><a href=\"/app/leads/{}\">{}</a></h3>\
                     <p class=\"meta\">due {}{}</p><details><summary>Call script</summary><p class=\"script\">{}</p></details>\
                     <div class=\"actions\">{call}</div></li>",
                    t.task.lead.id,
                    escape(&t.task.title),
                    time(t.task.due_at, inbox.zone),
                    if t.overdue { " · <strong>now</strong>" } else { "" },
                    escape(&t.task.script)
                )
            })
            .collect();
        let list = if items.is_empty() {
            "<p class=\"muted\">No calls due today.</p>".to_string()
        } else {
            format!("<ul class=\"cards\">{items}</ul>")
        };
        let more = if inbox.more_tasks > 0 {
            format!(
                "<p class=\"notice\" id=\"more-tasks\">And {} more due: the most overdue are above.</p>",
                inbox.more_tasks
            )
        } else {
            String::new()
        };
        format!(
            "<section aria-labelledby=\"tasks\"><h2 id=\"tasks\">Today's calls <span class=\"count\">{}</span></h2>{list}{more}</section>",
            inbox.tasks.len() + inbox.more_tasks
        )
    } else {
        String::new()
    };
    let body = format!(
        "<h1>Inbox</h1>{away}\
         <div id=\"live\" data-live=\"/app/live\" aria-live=\"polite\"></div>\
         <section aria-labelledby=\"new\"><h2 id=\"new\">New leads <span class=\"count\" id=\"new-count\">{}</span></h2>{}</section>\
         {tasks}\
         <section aria-labelledby=\"working\"><h2 id=\"working\">Being worked <span class=\"count\" id=\"working-count\">{}</span></h2>{}</section>\
         <p class=\"muted\">Times in <span data-zone>{}</span>. {}</p>",
        inbox.new.len(),
        cards(&inbox.new, viewer, inbox.zone, inbox.now, "No new leads. New ones appear here as they arrive."),
        inbox.working.len(),
        cards(&inbox.working, viewer, inbox.zone, inbox.now, "Nothing claimed and still open."),
        escape(inbox.zone.name()),
        escape(&format!("Signed in as {} ({}).", inbox.user.name, inbox.user.id)),
    );
    layout(
        &Shell {
            title: "Inbox",
            viewer: Some(viewer),
            current: "inbox",
            waiting: Some(inbox.new.len()),
        },
        &body,
    )
}

/// One lead with everything that happened to it, oldest first.
pub fn lead_page(viewer: &Viewer, story: &LeadStory) -> String {
    let l = &story.view.lead;
    let zone = story.zone;
    let mut events: Vec<(DateTime<Utc>, String)> = Vec::new();
    events.push((
        l.created_at,
        format!(
            "Arrived{}",
            l.form
                .as_ref()
                .map(|f| format!(" through form {}", escape(f)))
                .unwrap_or_default()
        ),
    ));
    for g in &story.view.log {
        events.push((
            g.at,
            format!(
                "<strong>{}</strong>{} {}",
                escape(&g.kind),
                g.rep
                    .as_ref()
                    .map(|r| format!(" ({})", escape(r)))
                    .unwrap_or_default(),
                escape(&g.detail)
            ),
        ));
    }
    for a in &story.view.attempts {
        events.push((
            a.at,
            format!(
                "<strong>{} {}</strong>{}{}",
                escape(&a.channel),
                escape(&a.outcome.replace('_', " ")),
                a.rep
                    .as_ref()
                    .map(|r| format!(" by {}", escape(r)))
                    .unwrap_or_default(),
                a.note
                    .as_ref()
                    .map(|n| format!(": {}", escape(n)))
                    .unwrap_or_default()
            ),
        ));
    }
    for r in &story.runs {
        for e in &r.log {
            if e.kind == "sent" || e.kind == "skipped" || e.kind == "exited" {
                events.push((
                    e.at,
                    format!(
                        "<strong>{} {}</strong> {}",
                        escape(&r.flow),
                        escape(&e.kind),
                        escape(&e.detail)
                    ),
                ));
            }
        }
    }
    events.sort_by_key(|(at, _)| *at);
    let story_items: String = events
        .iter()
        .map(|(at, text)| format!("<li>{} — {text}</li>", time(*at, zone)))
        .collect();
    let fields = l.fields.as_object().map(fields).unwrap_or_default();
    let contact: String = [l
        .email
        .as_ref()
        .map(|e| format!("<a href=\"mailto:{0}\">{0}</a>", escape(e)))]
    .into_iter()
    .flatten()
    .collect();
    let card_html = card(l, viewer, zone, story.now);
    let body = format!(
        "<p><a href=\"/app/inbox\">← Inbox</a></p><h1>{}</h1><ul class=\"cards\">{card_html}</ul>\
         <p>{contact}</p>{fields}\
         <section aria-labelledby=\"story\"><h2 id=\"story\">What happened</h2><ol class=\"story\">{story_items}</ol></section>",
        escape(&who(l)),
    );
    layout(
        &Shell {
            title: &who(l),
            viewer: Some(viewer),
            current: "inbox",
            waiting: None,
        },
        &body,
    )
}
