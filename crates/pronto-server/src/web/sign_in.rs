//! The sign-in pages and the admin's list of sessions.

use super::html::{csrf_field, escape, layout, scroll, time, Shell};
use crate::auth::Viewer;
use pronto_domain::access::User;
use pronto_store::Session;

fn shell<'a>(title: &'a str, viewer: Option<&'a Viewer>) -> Shell<'a> {
    Shell {
        title,
        viewer,
        current: "",
        waiting: None,
    }
}

/// The sign-in page: a mailed link (the usual way), a password for those given one, the admin key.
/// `csrf` is the pre-session token its cookie also carries; `notice` a sentence above the forms.
pub fn sign_in_page(csrf: &str, notice: Option<&str>, mail: bool) -> String {
    let notice = notice
        .map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", escape(n)))
        .unwrap_or_default();
    let no_mail = if mail {
        String::new()
    } else {
        "<p class=\"muted\">No mail server is configured (<code>PRONTO_SMTP_URL</code>), so no link can be \
         mailed. On the server, <code>pronto sign-in-link you@example.com</code> prints one.</p>"
            .to_string()
    };
    let body = format!(
        "<h1>Sign in</h1>{notice}\
         <section aria-labelledby=\"by-link\"><h2 id=\"by-link\">Email me a link</h2>{no_mail}\
         <form method=\"post\" action=\"/app/sign-in\" class=\"stack\">{csrf}\
         <label for=\"email\">Your work email</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required>\
         <details><summary>Use a password instead</summary>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\"></details>\
         <button type=\"submit\" class=\"primary\">Sign in</button></form></section>\
         <section aria-labelledby=\"by-key\"><h2 id=\"by-key\">Administrator</h2>\
         <form method=\"post\" action=\"/app/sign-in/admin-key\" class=\"stack\">{csrf}\
         <label for=\"key\">Admin key (<code>pk_admin_…</code>)</label>\
         <input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"off\" required>\
         <button type=\"submit\">Sign in with the admin key</button></form>\
         <p class=\"muted\">The key is used once to open a session; the browser does not keep it.</p></section>",
        csrf = csrf_field(csrf)
    );
    layout(&shell("Sign in", None), &body)
}

/// After "email me a link".
pub fn link_sent_page(email: &str) -> String {
    let body = format!(
        "<h1>Check your mail</h1><p role=\"status\">If <strong>{}</strong> belongs to someone who may sign in, a \
         link is on its way. It works once, for a short while.</p><p><a href=\"/app/sign-in\">Back</a></p>",
        escape(email)
    );
    layout(&shell("Check your mail", None), &body)
}

/// Behind a mailed link: one button, because opening a link (as mail scanners do) must sign nobody in.
pub fn confirm_page(user: &User, token: &str, csrf: &str) -> String {
    let body = format!(
        "<h1>Sign in</h1><p>Signing in as <strong>{}</strong> ({}).</p>\
         <form method=\"post\" action=\"/app/sign-in/{}\">{}\
         <button type=\"submit\" class=\"primary\">Sign in</button></form>",
        escape(&user.name),
        escape(&user.id),
        escape(token),
        csrf_field(csrf)
    );
    layout(&shell("Sign in", None), &body)
}

/// A used, expired or unknown link.
pub fn link_invalid_page() -> String {
    layout(
        &shell("Link expired", None),
        "<h1>This link no longer works</h1><p>Sign-in links work once and only for a short while.</p>\
         <p><a href=\"/app/sign-in\">Ask for a new one</a></p>",
    )
}

/// The admin's list of live sessions, each with a button that ends it.
pub fn sessions_page(viewer: &Viewer, sessions: &[Session], users: &[User]) -> String {
    let rows: String = sessions
        .iter()
        .map(|s| {
            let name = users
                .iter()
                .find(|u| u.id == s.user)
                .map(|u| u.name.clone())
                .unwrap_or_else(|| s.user.clone());
            let you = if s.id == viewer.session.id {
                " <span class=\"muted\">(this browser)</span>"
            } else {
                ""
            };
            format!(
                "<tr><td>{}{you}<br><span class=\"muted\">{}</span></td><td>{}</td><td>{}</td><td>{}</td>\
                 <td><form method=\"post\" action=\"/app/sessions/{}/revoke\">{}\
                 <button type=\"submit\" aria-label=\"Revoke the session of {} started {}\">Revoke</button></form></td></tr>",
                escape(&name),
                escape(&s.user),
                escape(&s.method),
                time(s.created_at, chrono_tz::UTC),
                escape(s.agent.as_deref().unwrap_or("")),
                escape(&s.id),
                csrf_field(&viewer.csrf),
                escape(&name),
                s.created_at.format("%Y-%m-%d %H:%M UTC")
            )
        })
        .collect();
    let body = format!(
        "<h1>Sessions</h1><p>Everyone signed in now. Revoking ends a session at once, on every server.</p>\
         {}",
        scroll(
            "Live sessions",
            &format!(
                "<table><caption class=\"muted\">{} live sessions</caption>\
                 <thead><tr><th scope=\"col\">Who</th><th scope=\"col\">How</th><th scope=\"col\">Since</th>\
                 <th scope=\"col\">Browser</th><th scope=\"col\"><span class=\"visually-hidden\">Action</span></th></tr></thead>\
                 <tbody>{rows}</tbody></table>",
                sessions.len()
            )
        )
    );
    layout(
        &Shell {
            title: "Sessions",
            viewer: Some(viewer),
            current: "sessions",
            waiting: None,
        },
        &body,
    )
}

/// A page for an error a signed-in or signed-out person meets (403, 404, 400, 503).
pub fn error_page(viewer: Option<&Viewer>, title: &str, message: &str) -> String {
    let body = format!(
        "<h1>{}</h1><p>{}</p><p><a href=\"/app/inbox\">Back to the inbox</a></p>",
        escape(title),
        escape(message)
    );
    layout(&shell(title, viewer), &body)
}
