//! A shop owner's pages: recovery at a glance (per flow a funnel drawn as SVG bars with the same numbers in a
//! table, the holdout beside it, the message steps; the experiments' results with their intervals), the
//! messages explorer, a message as sent, and a contact's timeline.

use super::html::{escape, fields, layout, scroll, time, Shell};
use crate::auth::Viewer;
use crate::owner::{ContactStory, Messages, Recovery, MESSAGE_STATES};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use pronto_domain::experiment::recovery::{FlowRecovery, Funnel};
use pronto_domain::experiment::results::ExperimentResult;
use pronto_store::MessageView;
use std::collections::BTreeMap;

/// `EUR 150.00 + USD 20.00`, or `—` with nothing.
fn money(m: &BTreeMap<String, f64>) -> String {
    let parts: Vec<String> = m
        .iter()
        .filter(|(_, v)| **v != 0.0)
        .map(|(c, v)| {
            if c.is_empty() {
                format!("{v:.2}")
            } else {
                format!("{} {v:.2}", escape(c))
            }
        })
        .collect();
    if parts.is_empty() {
        "—".into()
    } else {
        parts.join(" + ")
    }
}

fn rate(n: i64, of: i64) -> String {
    if of == 0 {
        "—".into()
    } else {
        format!("{:.1}%", n as f64 * 100.0 / of as f64)
    }
}

fn shell<'a>(title: &'a str, viewer: &'a Viewer, current: &'a str) -> Shell<'a> {
    Shell {
        title,
        viewer: Some(viewer),
        current,
        waiting: None,
    }
}

/// The funnel as bars (each stage's share of the runs entered) and as a table with the same numbers.
fn funnel(flow: &str, f: &Funnel) -> String {
    let stages = [
        ("Entered", f.entered),
        ("Messaged", f.messaged),
        ("Clicked", f.clicked),
        ("Bought", f.converted),
    ];
    let (label_w, bar_w, row_h) = (90.0, 300.0, 24.0);
    let mut bars = String::new();
    for (i, (name, n)) in stages.iter().enumerate() {
        let y = 4.0 + i as f64 * row_h;
        let w = if f.entered > 0 {
            *n as f64 / f.entered as f64 * bar_w
        } else {
            0.0
        };
        bars.push_str(&format!(
            "<text x=\"0\" y=\"{:.1}\" class=\"label\">{name}</text>\
             <rect x=\"{label_w:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"#1d4ed8\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"label\">{n}</text>",
            y + 15.0,
            row_h - 6.0,
            label_w + w + 6.0,
            y + 15.0
        ));
    }
    let rows: String = stages
        .iter()
        .map(|(name, n)| {
            format!(
                "<tr><th scope=\"row\">{name}</th><td>{n}</td><td>{}</td></tr>",
                rate(*n, f.entered)
            )
        })
        .collect();
    let caption = format!("{flow}: runs that got its messages");
    format!(
        "<div class=\"funnel\"><svg viewBox=\"0 0 {:.0} {:.0}\" role=\"img\" aria-label=\"{}: {} entered, {} messaged, {} clicked, {} bought\" \
         preserveAspectRatio=\"xMinYMin meet\">{bars}</svg>{}</div>",
        label_w + bar_w + 60.0,
        row_h * 4.0 + 8.0,
        escape(flow),
        f.entered,
        f.messaged,
        f.clicked,
        f.converted,
        scroll(
            &caption,
            &format!(
                "<table><caption>{}</caption><thead><tr><th scope=\"col\">Stage</th><th scope=\"col\">Runs</th>\
                 <th scope=\"col\">Of entered</th></tr></thead><tbody>{rows}</tbody></table>",
                escape(&caption)
            )
        )
    )
}

fn flow_section(f: &FlowRecovery) -> String {
    let id = escape(&f.flow);
    let gone = if f.configured {
        ""
    } else {
        " <span class=\"muted\">(no longer configured)</span>"
    };
    if f.funnel.entered == 0 && f.holdout.is_none() {
        return format!(
            "<section class=\"flow\" aria-labelledby=\"flow-{id}\"><h2 id=\"flow-{id}\">{id}{gone}</h2>\
             <p class=\"muted\">No runs started in this period.</p></section>"
        );
    }
    let summary = format!(
        "<p>Runs that got its messages: <strong>{}</strong>; of them <strong>{}</strong> bought ({}) for <strong>{}</strong>.</p>",
        f.funnel.entered,
        f.funnel.converted,
        rate(f.funnel.converted, f.funnel.entered),
        money(&f.funnel.revenue)
    );
    let holdout = f
        .holdout
        .as_ref()
        .map(|h| {
            format!(
                "<p>Held out (sent nothing): <strong>{}</strong> runs, <strong>{}</strong> bought ({}) for {}. \
                 The experiments below say what the messages added, with its interval.</p>",
                h.entered,
                h.converted,
                rate(h.converted, h.entered),
                money(&h.revenue)
            )
        })
        .unwrap_or_default();
    let steps = if f.steps.is_empty() {
        String::new()
    } else {
        let rows: String = f
            .steps
            .iter()
            .map(|s| {
                format!(
                    "<tr><th scope=\"row\">{} · {}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    s.step,
                    escape(&s.label),
                    s.messaged,
                    s.clicked,
                    rate(s.clicked, s.messaged),
                    s.conversions,
                    money(&s.revenue)
                )
            })
            .collect();
        let caption = format!("{}: per message step", f.flow);
        scroll(
            &caption,
            &format!(
                "<table><caption>{}</caption><thead><tr><th scope=\"col\">Step</th><th scope=\"col\">Messaged</th>\
                 <th scope=\"col\">Clicked</th><th scope=\"col\">Click rate</th><th scope=\"col\">Orders (last touch)</th>\
                 <th scope=\"col\">Their revenue</th></tr></thead><tbody>{rows}</tbody></table>",
                escape(&caption)
            ),
        )
    };
    format!(
        "<section class=\"flow\" aria-labelledby=\"flow-{id}\"><h2 id=\"flow-{id}\">{id}{gone}</h2>{summary}{holdout}{}{steps}\
         <p><a href=\"/app/messages?flow={id}\">Its messages</a></p></section>",
        funnel(&f.flow, &f.funnel)
    )
}

fn interval(i: [f64; 2], scale: f64, unit: &str) -> String {
    format!("[{:.1}{unit}, {:.1}{unit}]", i[0] * scale, i[1] * scale)
}

fn experiment_section(e: &ExperimentResult) -> String {
    let rows: String = e
        .groups
        .iter()
        .map(|g| {
            let uplift = g
                .conversion_uplift
                .as_ref()
                .map(|u| {
                    format!(
                        "{:+.1} points {}",
                        u.difference * 100.0,
                        interval(u.interval, 100.0, "")
                    )
                })
                .unwrap_or_else(|| "—".into());
            format!(
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{:.1}% {}</td><td>{}</td><td>{uplift}</td><td>{}</td></tr>",
                escape(&g.arm),
                g.entered,
                g.converted,
                g.conversion_rate * 100.0,
                interval(g.conversion_rate_interval, 100.0, "%"),
                money(&g.revenue),
                money(&g.incremental_revenue)
            )
        })
        .collect();
    let caption = format!(
        "{} · experiment {} (control: {})",
        e.flow,
        e.experiment,
        e.control.as_deref().unwrap_or("none")
    );
    scroll(
        &caption,
        &format!(
            "<table><caption>{}</caption><thead><tr><th scope=\"col\">Group</th><th scope=\"col\">Runs</th>\
             <th scope=\"col\">Bought</th><th scope=\"col\">Conversion (95%)</th><th scope=\"col\">Revenue</th>\
             <th scope=\"col\">Against control (95%, any-time valid)</th><th scope=\"col\">Incremental revenue</th></tr></thead>\
             <tbody>{rows}</tbody></table>",
            escape(&caption)
        ),
    )
}

/// Recovery at a glance.
pub fn recovery_page(viewer: &Viewer, r: &Recovery) -> String {
    let mut total = Funnel::default();
    for f in &r.flows {
        total.entered += f.funnel.entered;
        total.messaged += f.funnel.messaged;
        total.clicked += f.funnel.clicked;
        total.converted += f.funnel.converted;
        for (c, v) in &f.funnel.revenue {
            *total.revenue.entry(c.clone()).or_default() += v;
        }
    }
    let flows: String = r.flows.iter().map(flow_section).collect();
    let experiments = if r.experiments.is_empty() {
        "<p class=\"muted\">No experiment ran in this period. Add a holdout to a flow (<code>experiment = { id = \"…\", \
         holdout = \"10%\" }</code>) to measure what its messages earn beyond what would have sold anyway.</p>"
            .to_string()
    } else {
        r.experiments.iter().map(experiment_section).collect()
    };
    let body = format!(
        "<h1>Recovery</h1>\
         <form method=\"get\" action=\"/app/recovery\" class=\"period\"><label for=\"from\">From</label>\
         <input id=\"from\" name=\"from\" type=\"date\" value=\"{}\"><label for=\"to\">To</label>\
         <input id=\"to\" name=\"to\" type=\"date\" value=\"{}\"><button type=\"submit\">Show</button></form>\
         <p id=\"recovery-summary\">Runs started in this period: <strong>{}</strong> got messages, <strong>{}</strong> clicked, \
         <strong>{}</strong> bought for <strong>{}</strong> (orders within each flow's conversion window; revenue as the \
         order events state it).</p>{flows}\
         <section aria-labelledby=\"experiments\"><h2 id=\"experiments\">Experiments</h2>{experiments}</section>",
        escape(&r.from),
        escape(&r.to),
        total.messaged,
        total.clicked,
        total.converted,
        money(&total.revenue),
    );
    layout(&shell("Recovery", viewer, "recovery"), &body)
}

fn option(value: &str, label: &str, selected: bool) -> String {
    format!(
        "<option value=\"{}\"{}>{}</option>",
        escape(value),
        if selected { " selected" } else { "" },
        escape(label)
    )
}

fn message_row(m: &MessageView, zone: Tz) -> String {
    let origin = match (&m.flow, m.step) {
        (Some(f), Some(s)) => format!("{} · step {}", escape(f), s + 1),
        (Some(f), None) => escape(f),
        _ => "speed to lead".into(),
    };
    let subject = if m.subject.is_empty() {
        m.text.chars().take(60).collect::<String>()
    } else {
        m.subject.clone()
    };
    format!(
        "<tr><td>{}</td><td><a href=\"/app/contacts/{}\">{}</a></td><td>{origin}</td>\
         <td><a href=\"/app/messages/{}\">{}</a></td><td class=\"state {}\">{}</td></tr>",
        time(m.created_at, zone),
        m.contact_id,
        escape(&m.to),
        m.id,
        escape(&subject),
        escape(&m.state),
        escape(&m.state)
    )
}

fn message_table(caption: &str, messages: &[MessageView], zone: Tz) -> String {
    if messages.is_empty() {
        return "<p class=\"muted\">No messages.</p>".into();
    }
    let rows: String = messages.iter().map(|m| message_row(m, zone)).collect();
    scroll(
        caption,
        &format!(
            "<table><caption>{}</caption><thead><tr><th scope=\"col\">Written</th><th scope=\"col\">To</th>\
             <th scope=\"col\">From</th><th scope=\"col\">Subject</th><th scope=\"col\">State</th></tr></thead>\
             <tbody>{rows}</tbody></table>",
            escape(caption)
        ),
    )
}

/// The messages explorer.
pub fn messages_page(viewer: &Viewer, m: &Messages) -> String {
    let s = &m.search;
    let flow = s.flow.as_deref().unwrap_or("");
    let state = s.state.and_then(|st| st.as_str()).unwrap_or("");
    let flows: String = std::iter::once(option("", "any", flow.is_empty()))
        .chain(m.flows.iter().map(|f| option(f, f, f == flow)))
        .collect();
    let states: String = std::iter::once(option("", "any", state.is_empty()))
        .chain(MESSAGE_STATES.iter().map(|st| option(st, st, *st == state)))
        .collect();
    let next = m
        .next
        .map(|id| {
            let keep = |k: &str, v: &Option<String>| {
                v.as_deref()
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| format!("&amp;{k}={}", escape(&urlencoding(v))))
                    .unwrap_or_default()
            };
            format!(
                "<p><a href=\"/app/messages?before={id}{}{}{}\">Older messages</a></p>",
                keep("to", &s.to),
                keep("flow", &s.flow),
                keep(
                    "state",
                    &s.state.and_then(|st| st.as_str()).map(str::to_string)
                )
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Messages</h1>\
         <form method=\"get\" action=\"/app/messages\" class=\"period\" role=\"search\">\
         <label for=\"to\">Recipient</label><input id=\"to\" name=\"to\" type=\"search\" value=\"{}\" autocomplete=\"off\">\
         <label for=\"flow\">Flow</label><select id=\"flow\" name=\"flow\">{flows}</select>\
         <label for=\"state\">State</label><select id=\"state\" name=\"state\">{states}</select>\
         <button type=\"submit\">Search</button></form>{}{next}",
        escape(s.to.as_deref().unwrap_or("")),
        message_table("Messages, newest first", &m.messages, m.zone)
    );
    layout(&shell("Messages", viewer, "messages"), &body)
}

/// Percent-encodes a query value.
fn urlencoding(v: &str) -> String {
    serde_urlencoded::to_string([("", v)])
        .map(|s| s.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// One message as it was sent: its headers, its text, and a link to its HTML.
pub fn message_page(viewer: &Viewer, zone: Tz, m: &MessageView) -> String {
    let opt_time =
        |t: Option<DateTime<Utc>>| t.map(|t| time(t, zone)).unwrap_or_else(|| "—".into());
    let rows = [
        (
            "To",
            format!(
                "<a href=\"/app/contacts/{}\">{}</a>",
                m.contact_id,
                escape(&m.to)
            ),
        ),
        ("From", escape(&m.from)),
        ("Reply to", escape(m.reply_to.as_deref().unwrap_or("—"))),
        ("Channel", escape(&m.channel)),
        (
            "Flow",
            match (&m.flow, m.step) {
                (Some(f), Some(s)) => format!("{} · step {}", escape(f), s + 1),
                (Some(f), None) => escape(f),
                _ => "speed to lead".into(),
            },
        ),
        ("State", escape(&m.state)),
        ("Attempts", m.attempts.to_string()),
        ("Last error", escape(m.last_error.as_deref().unwrap_or("—"))),
        ("Written", time(m.created_at, zone)),
        ("Sent", opt_time(m.sent_at)),
        ("Next attempt", opt_time(m.next_attempt_at)),
        (
            "Message-ID key",
            format!("<code>{}</code>", escape(&m.idempotency_key)),
        ),
    ];
    let dl: String = rows
        .iter()
        .map(|(k, v)| format!("<dt>{k}</dt><dd>{v}</dd>"))
        .collect();
    let html = if m.html.is_some() {
        format!(
            "<p><a href=\"/app/messages/{}/html\" target=\"_blank\" rel=\"noopener\">Open the HTML as sent</a> \
             (scripts off, in its own sandbox)</p>",
            m.id
        )
    } else {
        String::new()
    };
    let title = if m.subject.is_empty() {
        format!("{} to {}", m.channel, m.to)
    } else {
        m.subject.clone()
    };
    let body = format!(
        "<p><a href=\"/app/messages\">← Messages</a></p><h1>{}</h1><dl class=\"fields\">{dl}</dl>\
         <section aria-labelledby=\"text\"><h2 id=\"text\">Text</h2><pre class=\"script\">{}</pre></section>{html}",
        escape(&title),
        escape(&m.text)
    );
    layout(&shell(&title, viewer, "messages"), &body)
}

/// A contact: who they are, what they did, what pronto sent them and the flows they went through.
pub fn contact_page(viewer: &Viewer, c: &ContactStory) -> String {
    let contact = &c.page.contact;
    let zone = c.zone;
    let name = ["name", "first_name", "email"]
        .iter()
        .find_map(|k| contact.traits.get(*k).and_then(|v| v.as_str()))
        .map(str::to_string)
        .unwrap_or_else(|| contact.id.to_string());
    let identities: String = contact
        .identities
        .iter()
        .map(|i| format!("<li>{}: {}</li>", escape(i.kind.as_str()), escape(&i.value)))
        .collect();
    let traits = fields(&contact.traits);
    let mut timeline: Vec<(DateTime<Utc>, String)> = Vec::new();
    for e in &c.page.events {
        let what = e.name.clone().unwrap_or_else(|| e.kind.clone());
        timeline.push((
            e.timestamp.unwrap_or(e.received_at),
            format!(
                "<strong>{}</strong> <span class=\"muted\">({})</span>",
                escape(&what),
                escape(&e.kind)
            ),
        ));
    }
    for m in &c.messages {
        timeline.push((
            m.created_at,
            format!(
                "pronto wrote <a href=\"/app/messages/{}\">{}</a> ({}, {})",
                m.id,
                escape(if m.subject.is_empty() {
                    &m.channel
                } else {
                    &m.subject
                }),
                escape(&m.channel),
                escape(&m.state)
            ),
        ));
    }
    for r in &c.page.runs {
        timeline.push((
            r.started_at,
            format!(
                "entered flow <strong>{}</strong> (key {}){}",
                escape(&r.flow),
                escape(&r.key),
                r.arm
                    .as_ref()
                    .map(|a| format!(", group {}", escape(a)))
                    .unwrap_or_default()
            ),
        ));
        if r.state != "active" {
            timeline.push((
                r.updated_at,
                format!(
                    "flow <strong>{}</strong> {}{}",
                    escape(&r.flow),
                    escape(&r.state),
                    r.outcome
                        .as_ref()
                        .filter(|o| **o != r.state)
                        .map(|o| format!(": {}", escape(o)))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    timeline.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    let items: String = timeline
        .iter()
        .map(|(at, text)| format!("<li>{} — {text}</li>", time(*at, zone)))
        .collect();
    let more = if c.page.next_before.is_some() {
        format!(
            "<p class=\"muted\">Older events: <code>GET /v1/contacts/{}?before={}</code>.</p>",
            contact.id,
            c.page.next_before.unwrap_or_default()
        )
    } else {
        String::new()
    };
    let body = format!(
        "<p><a href=\"/app/messages\">← Messages</a></p><h1>{}</h1>\
         <p class=\"meta\">Known since {}</p><ul>{identities}</ul>{traits}\
         <section aria-labelledby=\"timeline\"><h2 id=\"timeline\">Timeline, newest first</h2>\
         <ol class=\"story\">{items}</ol>{more}</section>",
        escape(&name),
        time(contact.created_at, zone),
    );
    layout(&shell(&name, viewer, "messages"), &body)
}
