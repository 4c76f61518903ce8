//! The few HTML pages pronto serves outside the app (a rep's claim page, the unsubscribe page, form answers):
//! one shell, one escape, the stylesheet and script they load, and the security headers every response gets.
//!
//! The pages carry no inline script or style, so their Content-Security-Policy can forbid both: a value that
//! slipped through escaping still cannot run. The claim and unsubscribe tokens are in the URL path, so no
//! page sends a `Referer`.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What HTML responses may load: only pronto's own files, nothing inline, no frames, forms post to pronto.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A small page: `title` is text (escaped here), `body` is HTML the caller built with [`escape`].
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/assets/pronto.css\">\
         <body class=\"narrow\"><main>{body}</main></body></html>",
        escape(title)
    )
}

/// Adds the security headers: every response is `nosniff`, sends no `Referer` (the app's pages: only to
/// pronto) and cannot be framed; HTML
/// responses also get [`CONTENT_SECURITY_POLICY`].
pub async fn security_headers(req: Request, next: Next) -> Response {
    // The web app's forms are checked by their `Origin`, which browsers send as `null` under `no-referrer`:
    // its pages send the referrer to pronto itself only (their one token in a URL, a sign-in link's, stays
    // on this server either way).
    let policy = if req.uri().path().starts_with("/app") {
        "same-origin"
    } else {
        "no-referrer"
    };
    let mut res = next.run(req).await;
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static(policy));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // A response that set its own policy (a message's HTML as sent) keeps it.
    if html && !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    res
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The stylesheet of pronto's pages.
#[utoipa::path(get, path = "/assets/pronto.css", tag = "ops",
    responses((status = 200, description = "The stylesheet", content_type = "text/css")))]
pub async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../assets/pronto.css"),
    )
}

/// The web app's script: live inbox, SLA countdowns, times in the browser's zone.
#[utoipa::path(get, path = "/assets/app.js", tag = "ops",
    responses((status = 200, description = "The web app's script", content_type = "text/javascript")))]
pub async fn app_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../assets/app.js"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn escaping_covers_every_character_that_ends_text_or_an_attribute() {
        assert_eq!(
            super::escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
