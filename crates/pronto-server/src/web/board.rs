//! A manager's team board: who can take leads now, the leads nobody has taken (past their SLA first) with a
//! hand-off to a rep of the team, speed to lead over a chosen period as a chart, two tables and a CSV, and where
//! business comes from (leads by channel beside checkouts and orders per week; the words leads use most).
//!
//! The chart is SVG drawn here rather than a vendored chart library: a stacked bar per week is a few
//! rectangles, it needs no script (so it prints, and shows with scripts off), and it keeps the pages under the
//! Content-Security-Policy with nothing loaded from elsewhere. The tables carry the same numbers for screen
//! readers and for reading exact values.

use super::html::{csrf_field, escape, layout, scroll, span, time, Shell};
use crate::auth::Viewer;
use crate::inbox::Board;
use crate::sales::Group;
use pronto_domain::report::business::Week;
use pronto_domain::report::{Bucket, SpeedReport};

/// The buckets a chart stacks, with their colours (each at least 3:1 against white, WCAG 1.4.11) and names.
const STACK: [(Bucket, &str, &str); 5] = [
    (Bucket::Within5Min, "#065f46", "within 5 min"),
    (Bucket::Within1Hour, "#1d4ed8", "5-60 min"),
    (Bucket::Within24Hours, "#b45309", "1-24 h"),
    (Bucket::Over24Hours, "#b91c1c", "over 24 h"),
    (Bucket::Never, "#4b5563", "never"),
];

fn share(r: &SpeedReport, b: Bucket) -> f64 {
    r.buckets
        .iter()
        .find(|row| row.bucket == b)
        .map(|row| row.share)
        .unwrap_or(0.0)
}

/// The shares answered within 5 min, 1 h and 24 h (cumulative) and never.
fn cumulative(r: &SpeedReport) -> [f64; 4] {
    let a = share(r, Bucket::Within5Min);
    let b = a + share(r, Bucket::Within1Hour);
    let c = b + share(r, Bucket::Within24Hours);
    [a, b, c, share(r, Bucket::Never)]
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| span(chrono::Duration::seconds(s as i64)))
        .unwrap_or_else(|| "—".into())
}

fn open(r: &SpeedReport) -> usize {
    r.buckets
        .iter()
        .find(|row| row.bucket == Bucket::Open)
        .map(|row| row.leads)
        .unwrap_or(0)
}

/// One table row per group: leads, the cumulative shares, median, p90, breaches.
fn table(caption: &str, first: &str, rows: &[&Group]) -> String {
    if rows.is_empty() {
        return format!(
            "<p class=\"muted\">{}: no leads in this period.</p>",
            escape(caption)
        );
    }
    let body: String = rows
        .iter()
        .map(|g| {
            let [a, b, c, never] = cumulative(&g.report);
            format!(
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&g.key),
                g.report.leads,
                pct(a),
                pct(b),
                pct(c),
                pct(never),
                open(&g.report),
                secs(g.report.median_response_secs),
                secs(g.report.p90_response_secs),
                g.report.sla_breaches
            )
        })
        .collect();
    let table = format!(
        "<table><caption>{}</caption><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">Leads</th>\
         <th scope=\"col\">≤ 5 min</th><th scope=\"col\">≤ 1 h</th><th scope=\"col\">≤ 24 h</th><th scope=\"col\">Never</th>\
         <th scope=\"col\">Still open</th><th scope=\"col\">Median</th><th scope=\"col\">p90</th><th scope=\"col\">SLA missed</th></tr></thead>\
         <tbody>{body}</tbody></table>",
        escape(caption),
        escape(first)
    );
    scroll(caption, &table)
}

/// Shares as stacked bars (SVG), one row per group (a week, a rep); `id` names the chart's title and
/// description (unique on the page), `of` says what a row is in the description ("week of", "rep").
fn chart(id: &str, title: &str, of: &str, weeks: &[&Group]) -> String {
    if weeks.is_empty() {
        return String::new();
    }
    let (label_w, bar_w, row_h) = (92.0, 480.0, 26.0);
    let height = row_h * weeks.len() as f64 + 8.0;
    let mut bars = String::new();
    for (i, g) in weeks.iter().enumerate() {
        let y = 4.0 + i as f64 * row_h;
        bars.push_str(&format!(
            "<text x=\"0\" y=\"{:.1}\" class=\"label\">{}</text>",
            y + 16.0,
            escape(&g.key)
        ));
        let mut x = label_w;
        for (bucket, colour, name) in STACK {
            let w = share(&g.report, bucket) * bar_w;
            if w > 0.0 {
                bars.push_str(&format!(
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{colour}\">\
                     <title>{of} {}: {} {name}</title></rect>",
                    row_h - 6.0,
                    escape(&g.key),
                    pct(share(&g.report, bucket))
                ));
            }
            x += w;
        }
    }
    let legend: String = STACK
        .iter()
        .map(|(_, colour, name)| {
            format!("<li><svg class=\"swatch\" viewBox=\"0 0 12 12\" aria-hidden=\"true\"><rect width=\"12\" height=\"12\" fill=\"{colour}\"/></svg>{name}</li>")
        })
        .collect();
    let summary: String = weeks
        .iter()
        .map(|g| {
            let [a, b, _, never] = cumulative(&g.report);
            format!(
                "{of} {}: {} within 5 min, {} within 1 h, {} never",
                g.key,
                pct(a),
                pct(b),
                pct(never)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "<figure class=\"chart\"><svg viewBox=\"0 0 {:.0} {height:.0}\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" \
         preserveAspectRatio=\"xMinYMin meet\"><title id=\"{id}-title\">{}</title>\
         <desc id=\"{id}-desc\">{}</desc>{bars}</svg>\
         <figcaption><ul class=\"legend\">{legend}</ul></figcaption></figure>",
        label_w + bar_w,
        escape(title),
        escape(&summary)
    )
}

/// Leads by channel beside checkouts and orders, per week, and what leads ask about.
fn business(board: &Board) -> String {
    let w = &board.business;
    let total = |f: fn(&Week) -> u64| w.iter().map(f).sum::<u64>();
    let (form, phone, api) = (total(|w| w.form), total(|w| w.phone), total(|w| w.api));
    let (checkouts, orders) = (total(|w| w.checkouts), total(|w| w.orders));
    let summary = format!(
        "<p id=\"business-summary\">{} leads ({form} by form, {phone} by phone, {api} by API) beside {checkouts} checkouts and {orders} orders.</p>",
        form + phone + api
    );
    let table = if w.is_empty() {
        "<p class=\"muted\">No leads, checkouts or orders in this period.</p>".to_string()
    } else {
        let rows: String = w
            .iter()
            .map(|w| {
                format!(
                    "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    w.week.format("%Y-%m-%d"),
                    w.form,
                    w.phone,
                    w.api,
                    w.form + w.phone + w.api,
                    w.checkouts,
                    w.orders
                )
            })
            .collect();
        scroll(
            "Leads by channel, checkouts and orders, per week",
            &format!(
                "<table><caption>Leads by channel, checkouts and orders, per week (by the Monday it starts)</caption>\
                 <thead><tr><th scope=\"col\">Week</th><th scope=\"col\">Form</th><th scope=\"col\">Web phone</th>\
                 <th scope=\"col\">API</th><th scope=\"col\">All leads</th><th scope=\"col\">Checkouts</th>\
                 <th scope=\"col\">Orders</th></tr></thead><tbody>{rows}</tbody></table>"
            ),
        )
    };
    let words = if board.words.is_empty() {
        "<p class=\"muted\">No lead wrote a message in this period.</p>".to_string()
    } else {
        let items: String = board
            .words
            .iter()
            .map(|(word, n)| {
                format!(
                    "<li>{} <span class=\"muted\">({n} {})</span></li>",
                    escape(word),
                    if *n == 1 { "lead" } else { "leads" }
                )
            })
            .collect();
        format!("<ol class=\"words\">{items}</ol>")
    };
    format!(
        "<section aria-labelledby=\"business\"><h2 id=\"business\">Where business comes from</h2>{summary}{table}\
         <h3>What leads ask about</h3><p class=\"meta\">The words most leads used in their messages: what the \
         website may not say.</p>{words}</section>"
    )
}

/// The board page.
pub fn board_page(viewer: &Viewer, board: &Board) -> String {
    let now = board.now;
    let reps: String = board
        .reps
        .iter()
        .map(|r| {
            let at_capacity = r.capacity.is_some_and(|c| r.open_leads >= i64::from(c));
            let state = if r.away {
                "away"
            } else if !r.on_duty {
                "off duty"
            } else if at_capacity {
                "at capacity"
            } else {
                "taking leads"
            };
            let cap = r
                .capacity
                .map(|c| format!(" of {c}"))
                .unwrap_or_default();
            format!(
                "<tr><th scope=\"row\">{}</th><td class=\"state {}\">{state}</td><td>{}{cap}</td><td>{}</td></tr>",
                escape(&r.name),
                state.replace(' ', "-"),
                r.open_leads,
                escape(&r.teams.join(", "))
            )
        })
        .collect();
    let late = board
        .unclaimed
        .iter()
        .filter(|l| l.sla_deadline.is_some_and(|d| d <= now))
        .count();
    let unclaimed: String = board
        .unclaimed
        .iter()
        .map(|l| {
            let who = l
                .name
                .clone()
                .or_else(|| l.email.clone())
                .unwrap_or_else(|| "Someone".into());
            let sla = match l.sla_deadline {
                Some(d) if d <= now => format!("<p class=\"sla late\" data-deadline=\"{}\">SLA missed {} ago</p>",
                    d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), span(d - now)),
                Some(d) => format!("<p class=\"sla\" data-deadline=\"{}\">{} left to call</p>",
                    d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), span(d - now)),
                None => String::new(),
            };
            let members = l
                .team
                .as_ref()
                .and_then(|t| board.teams.iter().find(|(id, _)| id == t))
                .map(|(_, m)| m.clone())
                .unwrap_or_default();
            let options: String = members
                .iter()
                .filter(|(id, _)| l.owner.as_deref() != Some(id.as_str()))
                .map(|(id, name)| format!("<option value=\"{}\">{}</option>", escape(id), escape(name)))
                .collect();
            let reassign = if options.is_empty() {
                String::new()
            } else {
                format!(
                    "<form method=\"post\" action=\"/app/leads/{id}/reassign\" class=\"duty\">{}\
                     <label for=\"to-{id}\">Give to</label><select id=\"to-{id}\" name=\"rep\">{options}</select>\
                     <button type=\"submit\">Reassign</button></form>",
                    csrf_field(&viewer.csrf),
                    id = l.id
                )
            };
            format!(
                "<li class=\"card\"><h3><a href=\"/app/leads/{}\">{}</a></h3>{sla}<p class=\"meta\">{} · {} · with {}</p>{reassign}</li>",
                l.id,
                escape(&who),
                time(l.created_at, board.zone),
                escape(l.team.as_deref().unwrap_or("no team")),
                escape(l.owner.as_deref().unwrap_or("nobody"))
            )
        })
        .collect();
    let unclaimed = if unclaimed.is_empty() {
        "<p class=\"muted\">Every lead has been taken.</p>".to_string()
    } else {
        format!("<ul class=\"cards\">{unclaimed}</ul>")
    };
    let r = &board.report;
    let mut weeks: Vec<&Group> = r.groups.iter().filter(|g| g.by == "week").collect();
    weeks.sort_by(|a, b| a.key.cmp(&b.key));
    let by_rep: Vec<&Group> = r.groups.iter().filter(|g| g.by == "rep").collect();
    let [a, b, c, never] = cumulative(&r.overall);
    let query = format!("from={}&amp;to={}", escape(&board.from), escape(&board.to));
    let body = format!(
        "<h1>Team board</h1>\
         <section aria-labelledby=\"now\"><h2 id=\"now\">Now</h2>\
         <p><strong>{}</strong> unclaimed, <strong>{late}</strong> past their SLA.</p>\
         {}</section>\
         <section aria-labelledby=\"unclaimed\"><h2 id=\"unclaimed\">Unclaimed leads <span class=\"count\">{}</span></h2>{unclaimed}</section>\
         <section aria-labelledby=\"speed\"><h2 id=\"speed\">Speed to lead</h2>\
         <form method=\"get\" action=\"/app/board\" class=\"period\"><label for=\"from\">From</label>\
         <input id=\"from\" name=\"from\" type=\"date\" value=\"{}\"><label for=\"to\">To</label>\
         <input id=\"to\" name=\"to\" type=\"date\" value=\"{}\"><button type=\"submit\">Show</button></form>\
         <p id=\"speed-summary\">{} leads: {} answered within 5 min, {} within 1 h, {} within 24 h, {} never; median {}, p90 {}; \
         {} missed their SLA.</p>\
         {}{}{}{}<p><a href=\"/app/board.csv?{query}\" download>Download as CSV</a></p></section>{}",
        board.unclaimed.len(),
        scroll(
            "Reps",
            &format!(
                "<table><caption>Reps</caption><thead><tr><th scope=\"col\">Rep</th><th scope=\"col\">State</th>\
                 <th scope=\"col\">Open leads</th><th scope=\"col\">Teams</th></tr></thead><tbody>{reps}</tbody></table>"
            )
        ),
        board.unclaimed.len(),
        escape(&board.from),
        escape(&board.to),
        r.overall.leads,
        pct(a),
        pct(b),
        pct(c),
        pct(never),
        secs(r.overall.median_response_secs),
        secs(r.overall.p90_response_secs),
        r.overall.sla_breaches,
        chart("chart", "Share of leads answered, per week", "week of", &weeks),
        table("Per week (by the Monday it starts)", "Week", &weeks),
        chart("rep-chart", "Share of leads answered, per rep", "rep", &by_rep),
        table("Per rep (SLA misses count against who held the lead)", "Rep", &by_rep),
        business(board),
    );
    layout(
        &Shell {
            title: "Team board",
            viewer: Some(viewer),
            current: "board",
            waiting: Some(board.unclaimed.len()),
        },
        &body,
    )
}
