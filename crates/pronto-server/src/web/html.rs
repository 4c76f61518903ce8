//! The app's shell and the small pieces every page uses. Pages carry no inline script or style (the
//! Content-Security-Policy forbids both); every form of a signed-in page carries the session's CSRF token.

use crate::auth::Viewer;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use pronto_domain::access::Role;

pub use crate::routes::pages::escape;

/// What the header shows besides the title.
pub struct Shell<'a> {
    pub title: &'a str,
    pub viewer: Option<&'a Viewer>,
    /// Which navigation entry is current.
    pub current: &'a str,
    /// Shown before the title in the tab (`(3) Inbox`): unclaimed leads waiting.
    pub waiting: Option<usize>,
}

/// A whole page: `body` is HTML its caller built with [`escape`].
pub fn layout(shell: &Shell<'_>, body: &str) -> String {
    let tab = match shell.waiting {
        Some(n) if n > 0 => format!("({n}) {} — pronto", shell.title),
        _ => format!("{} — pronto", shell.title),
    };
    let header = match shell.viewer {
        Some(v) => {
            let mut nav = vec![("inbox", "/app/inbox", "Inbox")];
            if v.user.role >= Role::Manager {
                nav.push(("board", "/app/board", "Board"));
            }
            if v.user.role == Role::Admin {
                nav.push(("recovery", "/app/recovery", "Recovery"));
                nav.push(("messages", "/app/messages", "Messages"));
                nav.push(("sessions", "/app/sessions", "Sessions"));
            }
            let links: String = nav
                .iter()
                .map(|(id, href, label)| {
                    let current = if *id == shell.current {
                        " aria-current=\"page\""
                    } else {
                        ""
                    };
                    format!("<a href=\"{href}\"{current}>{label}</a>")
                })
                .collect();
            format!(
                "<header class=\"bar\"><nav aria-label=\"Main\"><span class=\"brand\">pronto</span>{links}</nav>\
                 <form method=\"post\" action=\"/app/sign-out\" class=\"inline\">{}\
                 <span class=\"who\">{} <span class=\"muted\">({})</span></span> \
                 <button type=\"submit\" class=\"link\">Sign out</button></form></header>",
                csrf_field(&v.csrf),
                escape(&v.user.name),
                v.user.role.as_str()
            )
        }
        None => "<header class=\"bar\"><nav aria-label=\"Main\"><span class=\"brand\">pronto</span></nav></header>"
            .to_string(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/assets/pronto.css\">\
         <script src=\"/assets/app.js\" defer></script></head>\
         <body class=\"app\">{header}<main id=\"main\">{body}</main></body></html>",
        escape(&tab)
    )
}

/// A wide table in a box that scrolls sideways on a phone (the page itself never does): focusable and named,
/// so a keyboard can scroll it too.
pub fn scroll(label: &str, table: &str) -> String {
    format!(
        "<div class=\"scroll\" tabindex=\"0\" role=\"region\" aria-label=\"{}\">{table}</div>",
        escape(label)
    )
}

/// A JSON object's entries as a definition list (`dt` the key, `dd` the value: a string as it is, anything
/// else as JSON); empty for none.
pub fn fields(m: &serde_json::Map<String, serde_json::Value>) -> String {
    if m.is_empty() {
        return String::new();
    }
    let rows: String = m
        .iter()
        .map(|(k, v)| {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            format!("<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v))
        })
        .collect();
    format!("<dl class=\"fields\">{rows}</dl>")
}

/// The hidden field every form of a signed-in page sends back.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf)
    )
}

/// A time in `zone`, with the zone named; `app.js` rewrites it into the browser's own zone.
pub fn time(at: DateTime<Utc>, zone: Tz) -> String {
    let local = at.with_timezone(&zone);
    format!(
        "<time datetime=\"{}\">{} {}</time>",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        local.format("%a %d %b %H:%M"),
        escape(zone.name())
    )
}

/// "4 min" / "2 h 5 min" / "3 d": how long a span is, for people.
pub fn span(d: chrono::Duration) -> String {
    let secs = d.num_seconds().abs();
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_say_them() {
        let cases = [
            (chrono::Duration::seconds(42), "42 s"),
            (chrono::Duration::minutes(4), "4 min"),
            (chrono::Duration::minutes(125), "2 h 5 min"),
            (chrono::Duration::days(3), "3 d"),
            (chrono::Duration::minutes(-4), "4 min"),
        ];
        for (d, text) in cases {
            assert_eq!(span(d), text);
        }
    }

    #[test]
    fn a_time_is_written_in_the_zone_it_names() {
        let at = DateTime::parse_from_rfc3339("2026-12-06T15:04:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            time(at, chrono_tz::America::New_York),
            "<time datetime=\"2026-12-06T15:04:00Z\">Sun 06 Dec 10:04 America/New_York</time>"
        );
    }
}
