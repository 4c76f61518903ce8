//! The web app over real HTTP on SQLite and PostgreSQL, sign-in links mailed over a real SMTP
//! conversation: a rep signs in by the mailed link (once), sees only their team's leads, claims and logs a
//! call as themselves, goes away; forged posts change nothing; admins sign in with the admin key or a
//! password and revoke sessions; an open live stream hears of a new lead; the owner sees what a flow
//! recovered (agreeing with the flows report), finds messages and opens one as sent, and a contact's timeline. The browser's side (the page
//! redrawn live, axe-core, screenshots) is `tests/browser/app.spec.mjs`.

use chrono::{DateTime, Utc};
use common::{Server, ADMIN, WRITE};
use reqwest::header::{HeaderMap, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;

mod common;

/// Tuesday 15:00 UTC: everyone on duty.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Two teams of one rep each; the owner (an admin) signs in with a password.
fn config(owner_password_hash: &str) -> String {
    format!(
        r#"
[[rep]]
id = "ann"
name = "Ann Archer"
email = "ann@example.com"
phone = "+14155550101"
timezone = "America/New_York"

[[rep]]
id = "cy"
name = "Cy Cole"
email = "cy@example.com"
timezone = "Europe/Berlin"

[[rep]]
id = "al"
name = "Al Alder"
email = "al@example.com"
timezone = "America/Chicago"

[[team]]
id = "north"
members = ["ann", "al"]

[[team]]
id = "south"
members = ["cy"]

[[route]]
source = "south"
team = "south"

[[route]]
team = "north"

[leads]
timezone = "America/New_York"

[leads.sla]
within = "5m"
clock = "wall"

[[user]]
email = "owner@example.com"
name = "Olive Owner"
role = "admin"
password_hash = "{owner_password_hash}"

[[user]]
email = "mia@example.com"
name = "Mia Manager"
role = "manager"
teams = ["north"]

[[flow]]
id = "checkout-recovery"
trigger = {{ event = "Checkout Started" }}
key = "properties.checkout_id"
exit = [{{ event = "Order Completed", same = "key" }}]
experiment = {{ id = "holdout-1", holdout = "30%" }}
[[flow.step]]
wait = "10m"
[[flow.step]]
send = {{ channel = "email", template = "checkout-1" }}

[[flow]]
id = "lead-cadence"
trigger = {{ event = "Lead Submitted" }}
key = "properties.lead_id"
[[flow.step]]
call = {{ script = "call-first" }}

[[template]]
name = "call-first"
subject = "Call {{{{ lead.name }}}}"
text = "Ask what they need."

[limits]
leads_per_ip_per_minute = 0
leads_per_recipient_per_hour = 0

[[template]]
name = "checkout-1"
subject = "You left something"
text = "Your cart: {{{{ cart.total }}}}"
html = "<p style=\"color:#333\">Your cart: {{{{ cart.total }}}}</p>"
"#
    )
}

async fn start(backend: &str) -> Server {
    let hash = pronto_server::auth::hash_password("correct horse battery").unwrap();
    common::start(backend, true, &config(&hash), t0()).await
}

pronto_store::for_each_backend!(start;
    a_rep_signs_in_by_the_mailed_link_once_and_works_only_their_teams_leads,
    admins_sign_in_with_the_admin_key_or_a_password_and_a_revoked_session_stops_at_once,
    an_open_live_stream_hears_of_a_new_lead,
    a_manager_sees_their_teams_board_hands_a_lead_over_and_downloads_the_report,
    the_owner_sees_what_each_flow_recovered_explores_the_messages_and_opens_a_contact,
    a_backlog_of_call_tasks_shows_the_fifty_most_overdue_and_counts_the_rest,
    the_board_kept_in_memory_follows_what_another_node_writes_and_forgets_what_was_erased,
);

/// A browser signed in by the link mailed to `email`.
async fn signed_in(s: &Server, email: &str) -> Browser {
    let mut b = Browser::new(s);
    let origin = b.origin();
    let (_, page, _) = b.get("/app/sign-in").await;
    let csrf = Browser::csrf(&page);
    b.post(
        "/app/sign-in",
        &[("csrf", &csrf), ("email", email)],
        Some(&origin),
    )
    .await;
    let link = mailed_link(s, email).await;
    let (status, _, _) = b.post(&link, &[("csrf", &csrf)], Some(&origin)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{email} signs in");
    b
}

/// A browser: keeps cookies, follows no redirect (so each answer is seen as sent).
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
    /// Every Set-Cookie header seen, as sent.
    set_cookies: Vec<String>,
}

impl Browser {
    fn new(s: &Server) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: s.base.clone(),
            cookies: BTreeMap::new(),
            set_cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, headers: &HeaderMap) {
        for h in headers.get_all(SET_COOKIE) {
            let text = h.to_str().unwrap().to_string();
            let (pair, attrs) = text.split_once(';').unwrap_or((&text, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") || v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
            self.set_cookies.push(text);
        }
    }

    async fn get(&mut self, path: &str) -> (StatusCode, String, HeaderMap) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        self.keep(&headers);
        (status, r.text().await.unwrap(), headers)
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (StatusCode, String, HeaderMap) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .form(form);
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        let r = req.send().await.unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        self.keep(&headers);
        (status, r.text().await.unwrap(), headers)
    }

    /// The CSRF token of the last page's forms.
    fn csrf(page: &str) -> String {
        let at = page
            .find("name=\"csrf\" value=\"")
            .expect("a form with a csrf field")
            + 19;
        page[at..].split('"').next().unwrap().to_string()
    }

    fn origin(&self) -> String {
        self.base.clone()
    }

    /// Signs in with the admin key.
    async fn sign_in_with_admin_key(&mut self, key: &str) -> StatusCode {
        let (_, page, _) = self.get("/app/sign-in").await;
        let csrf = Self::csrf(&page);
        let origin = self.origin();
        self.post(
            "/app/sign-in/admin-key",
            &[("csrf", &csrf), ("key", key)],
            Some(&origin),
        )
        .await
        .0
    }
}

fn location(h: &HeaderMap) -> &str {
    h.get(LOCATION).map(|v| v.to_str().unwrap()).unwrap_or("")
}

async fn post_lead(s: &Server, name: &str, source: &str) -> String {
    let r = s
        .http
        .post(format!("{}/v1/leads", s.base))
        .basic_auth(WRITE, Some(""))
        .json(&json!({"name": name, "email": format!("{}@client.example", name.to_lowercase().replace(' ', ".")),
                      "phone": "+12125550123", "message": format!("{name} would like a call"), "source": source}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    r.json::<Value>().await.unwrap()["lead_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits for the sign-in mail to `to` and answers the link's path (`/app/sign-in/<token>`).
async fn mailed_link(s: &Server, to: &str) -> String {
    let sink = s.sink.as_ref().unwrap();
    for _ in 0..100 {
        if let Some(mail) = sink
            .received()
            .into_iter()
            .find(|m| m.contains(&format!("To: {to}")) && m.contains("sign-in link"))
        {
            let at = mail.find("/app/sign-in/").unwrap();
            let token: String = mail[at + 13..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            return format!("/app/sign-in/{token}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no sign-in mail to {to}: {:?}", sink.received());
}

async fn a_rep_signs_in_by_the_mailed_link_once_and_works_only_their_teams_leads(s: Server) {
    let north = post_lead(&s, "Nora North", "web").await;
    let south = post_lead(&s, "Sam South", "south").await;
    let mut ann = Browser::new(&s);
    let origin = ann.origin();

    // Not signed in: the app sends the browser to the sign-in page.
    let (status, _, h) = ann.get("/app/inbox").await;
    assert_eq!(
        (status, location(&h)),
        (StatusCode::SEE_OTHER, "/app/sign-in")
    );

    let (_, page, _) = ann.get("/app/sign-in").await;
    let csrf = Browser::csrf(&page);
    // A post without the sign-in cookie's token changes nothing.
    let (status, _, _) = ann
        .post(
            "/app/sign-in",
            &[("csrf", "forged"), ("email", "ann@example.com")],
            Some(&origin),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, page, _) = ann
        .post(
            "/app/sign-in",
            &[("csrf", &csrf), ("email", "Ann@Example.com")],
            Some(&origin),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Check your mail"));
    let link = mailed_link(&s, "ann@example.com").await;
    // Someone who is no user gets the same answer, and no mail.
    let (status, other, _) = ann
        .post(
            "/app/sign-in",
            &[("csrf", &csrf), ("email", "mallory@example.com")],
            Some(&origin),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        other.replace("mallory@example.com", "X"),
        page.replace("Ann@Example.com", "X")
    );
    assert!(!s
        .sink
        .as_ref()
        .unwrap()
        .received()
        .iter()
        .any(|m| m.contains("mallory@")));

    // Opening the link (as a mail scanner would, twice) signs nobody in.
    for _ in 0..2 {
        let (status, confirm, _) = ann.get(&link).await;
        assert_eq!(status, StatusCode::OK);
        assert!(confirm.contains("Signing in as <strong>Ann Archer</strong>"));
    }
    assert!(!ann.cookies.contains_key("pronto_session"));
    let (status, _, h) = ann.post(&link, &[("csrf", &csrf)], Some(&origin)).await;
    assert_eq!((status, location(&h)), (StatusCode::SEE_OTHER, "/app"));
    let (status, _, h) = ann.get("/app").await;
    assert_eq!(
        (status, location(&h)),
        (StatusCode::SEE_OTHER, "/app/inbox"),
        "a rep's app opens on the inbox"
    );
    let session_cookie = ann
        .set_cookies
        .iter()
        .find(|c| c.starts_with("pronto_session="))
        .unwrap()
        .clone();
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(
            session_cookie.contains(attribute),
            "{session_cookie} lacks {attribute}"
        );
    }
    // The link works once.
    let mut thief = Browser::new(&s);
    let (_, page, _) = thief.get("/app/sign-in").await;
    let thief_csrf = Browser::csrf(&page);
    let (status, _, _) = thief
        .post(&link, &[("csrf", &thief_csrf)], Some(&origin))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!thief.cookies.contains_key("pronto_session"));

    // Her inbox: her team's lead with its SLA clock, not the other team's.
    let (status, inbox, _) = ann.get("/app/inbox").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        inbox.contains("Nora North") && inbox.contains("left to call"),
        "{inbox}"
    );
    assert!(!inbox.contains("Sam South"));
    assert!(inbox.contains("<title>(1) Inbox — pronto</title>"));
    assert!(inbox.contains("href=\"tel:+12125550123\""));
    let (status, _, _) = ann.get(&format!("/app/leads/{south}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another team's lead");
    let csrf = Browser::csrf(&inbox);
    let (status, _, _) = ann
        .post(
            &format!("/app/leads/{south}/claim"),
            &[("csrf", &csrf)],
            Some(&origin),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(s.admin(&format!("/v1/leads/{south}")).await["claimed_at"].is_null());

    // Forged claims change nothing: no token, a wrong one, another site's origin.
    for (token, from) in [
        ("", origin.as_str()),
        ("0123", origin.as_str()),
        (csrf.as_str(), "https://evil.example"),
    ] {
        let (status, _, _) = ann
            .post(
                &format!("/app/leads/{north}/claim"),
                &[("csrf", token)],
                Some(from),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "csrf {token:?} from {from}");
    }
    assert!(s.admin(&format!("/v1/leads/{north}")).await["claimed_at"].is_null());

    let (status, _, h) = ann
        .post(
            &format!("/app/leads/{north}/claim"),
            &[("csrf", &csrf)],
            Some(&origin),
        )
        .await;
    assert_eq!(
        (status, location(&h)),
        (
            StatusCode::SEE_OTHER,
            format!("/app/inbox#lead-{north}").as_str()
        )
    );
    let lead = s.admin(&format!("/v1/leads/{north}")).await;
    assert_eq!(lead["claimed_by"], "ann");
    assert_eq!(lead["status"], "claimed");

    let (status, _, _) = ann
        .post(
            &format!("/app/leads/{north}/calls"),
            &[
                ("csrf", &csrf),
                ("outcome", "no_answer"),
                ("note", "left no message"),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, page, _) = ann
        .post(
            &format!("/app/leads/{north}/calls"),
            &[("csrf", &csrf), ("outcome", "shrug")],
            Some(&origin),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("outcome: must be"), "{page}");
    let lead = s.admin(&format!("/v1/leads/{north}")).await;
    let attempts = lead["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0]["rep"].as_str(), attempts[0]["outcome"].as_str()),
        (Some("ann"), Some("no_answer"))
    );
    assert_eq!(attempts[0]["note"], "left no message");
    let (_, story, _) = ann.get(&format!("/app/leads/{north}")).await;
    assert!(
        story.contains("call no answer") && story.contains("left no message"),
        "{story}"
    );

    let (status, _, _) = ann
        .post(
            "/app/away",
            &[("csrf", &csrf), ("away", "true")],
            Some(&origin),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let reps = s.admin("/v1/reps").await;
    let me = reps["reps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "ann")
        .unwrap()
        .clone();
    assert_eq!(me["away"], true);
    let (_, inbox, _) = ann.get("/app/inbox").await;
    assert!(inbox.contains("I&#39;m back") || inbox.contains("I'm back"));

    // Signing out ends the session on the server, not only in this browser.
    let stolen = ann.cookies.clone();
    let (status, _, h) = ann
        .post("/app/sign-out", &[("csrf", &csrf)], Some(&origin))
        .await;
    assert_eq!(
        (status, location(&h)),
        (StatusCode::SEE_OTHER, "/app/sign-in")
    );
    assert!(!ann.cookies.contains_key("pronto_session"));
    ann.cookies = stolen;
    let (status, _, _) = ann.get("/app/inbox").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    s.stop().await;
}

async fn admins_sign_in_with_the_admin_key_or_a_password_and_a_revoked_session_stops_at_once(
    s: Server,
) {
    let mut admin = Browser::new(&s);
    let (status, _, headers) = admin.get("/").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the old dashboard's address");
    assert_eq!(headers["location"], "/app", "leads to the app");
    assert_eq!(
        admin
            .sign_in_with_admin_key("pk_admin_wrong_wrong_000")
            .await,
        StatusCode::OK
    );
    assert!(!admin.cookies.contains_key("pronto_session"));
    assert_eq!(
        admin.sign_in_with_admin_key(ADMIN).await,
        StatusCode::SEE_OTHER
    );
    assert!(admin.cookies.contains_key("pronto_session"));
    assert!(
        !admin.cookies.values().any(|v| v.contains(ADMIN))
            && !admin.set_cookies.iter().any(|c| c.contains(ADMIN)),
        "the admin key is never kept in the browser"
    );
    let (status, inbox, _) = admin.get("/app/inbox").await;
    assert_eq!(status, StatusCode::OK);
    assert!(inbox.contains("Administrator (admin key)"));

    let mut owner = Browser::new(&s);
    let origin = owner.origin();
    let (_, page, _) = owner.get("/app/sign-in").await;
    let csrf = Browser::csrf(&page);
    let (status, page, _) = owner
        .post(
            "/app/sign-in",
            &[
                ("csrf", &csrf),
                ("email", "owner@example.com"),
                ("password", "wrong horse battery"),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("do not match"));
    assert!(!owner.cookies.contains_key("pronto_session"));
    let csrf = Browser::csrf(&page);
    let (status, _, _) = owner
        .post(
            "/app/sign-in",
            &[
                ("csrf", &csrf),
                ("email", "owner@example.com"),
                ("password", "correct horse battery"),
            ],
            Some(&origin),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, inbox, _) = owner.get("/app/inbox").await;
    assert_eq!(status, StatusCode::OK);
    assert!(inbox.contains("Olive Owner"));

    // The admin sees both sessions and revokes the owner's: the owner's next request is signed out.
    let (status, list, _) = admin.get("/app/sessions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        list.contains("owner@example.com") && list.contains("admin-key"),
        "{list}"
    );
    let at = list.find("owner@example.com").unwrap();
    let id_at = list[at..].find("/app/sessions/").unwrap() + at + 14;
    let id: String = list[id_at..].chars().take(16).collect();
    let csrf = Browser::csrf(&list);
    let (status, _, _) = admin
        .post(
            &format!("/app/sessions/{id}/revoke"),
            &[("csrf", &csrf)],
            Some(&origin),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = owner.get("/app/inbox").await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // A rep is not an admin.
    let mut cy = Browser::new(&s);
    let (_, page, _) = cy.get("/app/sign-in").await;
    let csrf = Browser::csrf(&page);
    cy.post(
        "/app/sign-in",
        &[("csrf", &csrf), ("email", "cy@example.com")],
        Some(&origin),
    )
    .await;
    let link = mailed_link(&s, "cy@example.com").await;
    cy.post(&link, &[("csrf", &csrf)], Some(&origin)).await;
    let (status, _, _) = cy.get("/app/sessions").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    s.stop().await;
}

async fn an_open_live_stream_hears_of_a_new_lead(s: Server) {
    // Ann (team north) listens; a lead for team south arrives first, then one for north.
    let mut ann = signed_in(&s, "ann@example.com").await;
    let (_, inbox, _) = ann.get("/app/inbox").await;
    let csrf = Browser::csrf(&inbox);
    let mut stream = ann
        .http
        .get(format!("{}/app/live", s.base))
        .header(COOKIE, ann.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // The watcher has taken its first look once the stream is open; give it that one poll.
    tokio::time::sleep(pronto_server::live::POLL * 2).await;
    post_lead(&s, "Stan South", "south").await;
    tokio::time::sleep(pronto_server::live::POLL * 2).await;
    let north = post_lead(&s, "Lena Live", "web").await;
    let heard = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut seen = String::new();
        while let Some(chunk) = stream.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("Lena Live") {
                return seen;
            }
        }
        seen
    })
    .await
    .expect("no live event within 5 s");
    // The event carries Ann's card of the lead, in the new list, with her form's CSRF token.
    let data = heard
        .lines()
        .find(|l| l.starts_with("data: ") && l.contains("Lena Live"))
        .expect("a data line");
    assert!(heard.contains("event: cards"), "{heard}");
    let cards: Value = serde_json::from_str(&data["data: ".len()..]).unwrap();
    let card = &cards.as_array().unwrap()[0];
    assert_eq!(card["id"], north.as_str());
    assert_eq!(card["section"], "new");
    let html = card["html"].as_str().unwrap();
    assert!(
        html.starts_with(&format!("<li class=\"card\" id=\"lead-{north}\">"))
            && html.contains("I'm on it")
            && html.contains(&format!("value=\"{csrf}\"")),
        "{html}"
    );
    assert!(
        !heard.contains("Stan South"),
        "another team's lead is not sent: {heard}"
    );
    s.stop().await;
}

async fn a_manager_sees_their_teams_board_hands_a_lead_over_and_downloads_the_report(s: Server) {
    let north = post_lead(&s, "Nora North", "web").await;
    let south = post_lead(&s, "Sam South", "south").await;
    let owner = s.admin(&format!("/v1/leads/{north}")).await["owner"]
        .as_str()
        .unwrap()
        .to_string();
    let other = if owner == "ann" { "al" } else { "ann" };
    // The shop's side of the same week: two checkouts and an order.
    for (event, id) in [
        ("Checkout Started", "c1"),
        ("Checkout Started", "c2"),
        ("Order Completed", "c1"),
    ] {
        s.track(json!({"userId": "buyer", "event": event, "properties": {"checkout_id": id, "total": 10}}))
            .await;
    }
    // The report covers up to now, and the leads arrived at this very instant: a minute later they are in.
    s.clock.advance(chrono::Duration::minutes(1));
    let mut mia = signed_in(&s, "mia@example.com").await;
    let origin = mia.origin();

    let (status, board, _) = mia.get("/app/board").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        board.contains("Nora North") && !board.contains("Sam South"),
        "{board}"
    );
    assert!(
        board.contains("<strong>1</strong> unclaimed, <strong>0</strong> past their SLA"),
        "{board}"
    );
    assert!(
        board.contains("Ann Archer") && board.contains("Al Alder") && !board.contains("Cy Cole")
    );
    assert!(board.contains("<svg viewBox"), "the weekly chart");
    assert!(
        board.contains("<title id=\"rep-chart-title\">Share of leads answered, per rep</title>")
            && board.contains(&format!(
                "<desc id=\"rep-chart-desc\">rep {owner}: 0% within 5 min"
            )),
        "the per-rep chart: {board}"
    );
    assert!(
        board.contains("1 leads: 0% answered within 5 min"),
        "{board}"
    );
    assert!(
        board
            .contains("1 leads (0 by form, 0 by phone, 1 by API) beside 2 checkouts and 1 orders."),
        "where business comes from, of her team's leads and the shop's events: {board}"
    );
    assert!(
        board.contains("<th scope=\"row\">2026-11-23</th><td>0</td><td>0</td><td>1</td><td>1</td><td>2</td><td>1</td>"),
        "the week of Monday 23 November: {board}"
    );
    assert!(
        board.contains("<li>call <span class=\"muted\">(1 lead)</span></li>")
            && board.contains("<li>north ")
            && !board.contains("<li>would "),
        "what leads ask about: {board}"
    );

    // The clock runs past the SLA: the lead shows as late.
    s.clock.advance(chrono::Duration::minutes(5));
    let (_, board, _) = mia.get("/app/board").await;
    assert!(
        board.contains("<strong>1</strong> past their SLA"),
        "{board}"
    );

    let csrf = Browser::csrf(&board);
    let (status, _, h) = mia
        .post(
            &format!("/app/leads/{north}/reassign"),
            &[("csrf", &csrf), ("rep", other)],
            Some(&origin),
        )
        .await;
    assert_eq!(
        (status, location(&h)),
        (StatusCode::SEE_OTHER, "/app/board")
    );
    let lead = s.admin(&format!("/v1/leads/{north}")).await;
    assert_eq!(lead["owner"], other);
    let log = lead["log"].as_array().unwrap();
    assert!(
        log.iter().any(|g| g["kind"] == "reassigned"
            && g["detail"].as_str().unwrap().contains("by mia@example.com")),
        "{log:?}"
    );
    let sink = s.sink.as_ref().unwrap();
    let to = format!("To: {other}@example.com");
    let mut alerted = false;
    for _ in 0..100 {
        if sink
            .received()
            .iter()
            .any(|m| m.contains(&to) && m.contains("Nora North"))
        {
            alerted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(alerted, "the new owner is alerted");
    // Not a rep of the team; not her team's lead; not a manager.
    let (status, _, _) = mia
        .post(
            &format!("/app/leads/{north}/reassign"),
            &[("csrf", &csrf), ("rep", "cy")],
            Some(&origin),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = mia
        .post(
            &format!("/app/leads/{south}/reassign"),
            &[("csrf", &csrf), ("rep", "cy")],
            Some(&origin),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut ann = signed_in(&s, "ann@example.com").await;
    assert_eq!(ann.get("/app/board").await.0, StatusCode::FORBIDDEN);

    let (status, csv, h) = mia
        .get("/app/board.csv?from=2026-11-01&to=2026-11-30")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(h["content-disposition"]
        .to_str()
        .unwrap()
        .contains("speed-to-lead-2026-11-01-2026-11-30.csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("by,key,leads,within5_min"), "{csv}");
    assert!(
        lines[1].starts_with("overall,,1,"),
        "only her team's lead: {csv}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("week,2026-11-23,1,")),
        "{csv}"
    );
    let (status, _, _) = mia.get("/app/board?from=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    s.stop().await;
}

async fn the_owner_sees_what_each_flow_recovered_explores_the_messages_and_opens_a_contact(
    s: Server,
) {
    // Ten checkouts at 15:30; ten minutes later the treated ones are mailed; three of all ten buy.
    s.advance(chrono::Duration::minutes(30));
    for i in 0..10 {
        s.track(json!({"userId": format!("u{i}"), "event": "Checkout Started",
                       "context": {"traits": {"email": format!("u{i}@example.com")}},
                       "properties": {"checkout_id": format!("c{i}"), "total": 30.0, "currency": "EUR"}}))
            .await;
    }
    s.advance(chrono::Duration::minutes(11));
    let report = |r: Value, arm: &str, field: &str| -> i64 {
        r["experiments"][0]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["arm"] == arm)
            .map(|g| g[field].as_i64().unwrap())
            .unwrap_or(0)
    };
    let period = "from=2026-11-24&to=2026-11-25";
    let treated = report(
        s.admin(&format!("/v1/reports/flows?{period}")).await,
        "treatment",
        "entered",
    );
    assert!(
        treated > 0 && treated < 10,
        "the 30% holdout splits ten runs: {treated}"
    );
    s.messages_until("the treated carts are mailed", |m| {
        m.len() == treated as usize
    })
    .await;
    for i in 0..3 {
        s.track(json!({"userId": format!("u{i}"), "event": "Order Completed",
                       "properties": {"checkout_id": format!("c{i}"), "total": 80.0, "currency": "EUR"}}))
            .await;
    }
    let json = s.admin(&format!("/v1/reports/flows?{period}")).await;
    let (held, held_bought) = (
        report(json.clone(), "holdout", "entered"),
        report(json.clone(), "holdout", "converted"),
    );
    let bought = report(json, "treatment", "converted");
    assert_eq!(held + treated, 10);
    assert_eq!(held_bought + bought, 3);
    // A period ending in the checkouts' hour: after them (and with none started since), the hour is read
    // from the kept counts; before them, run by run, and they are not in it.
    let entered = |r: Value| -> i64 {
        r["experiments"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|e| e["groups"].as_array().cloned().unwrap_or_default())
            .map(|g| g["entered"].as_i64().unwrap_or(0))
            .sum()
    };
    for (period, runs) in [
        ("", 10),
        ("?from=2026-11-24&to=2026-11-24T15:40:00Z", 10),
        ("?from=2026-11-24&to=2026-11-24T15:20:00Z", 0),
    ] {
        let json = s.admin(&format!("/v1/reports/flows{period}")).await;
        assert_eq!(entered(json.clone()), runs, "{period}: {json}");
    }

    let mut owner = Browser::new(&s);
    let origin = owner.origin();
    let (_, page, _) = owner.get("/app/sign-in").await;
    let csrf = Browser::csrf(&page);
    owner
        .post(
            "/app/sign-in",
            &[
                ("csrf", &csrf),
                ("email", "owner@example.com"),
                ("password", "correct horse battery"),
            ],
            Some(&origin),
        )
        .await;
    let (status, _, headers) = owner.get("/app").await;
    assert_eq!(
        (status, location(&headers)),
        (StatusCode::SEE_OTHER, "/app/recovery")
    );

    let (status, page, _) = owner.get(&format!("/app/recovery?{period}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains(&format!(
            "<strong>{treated}</strong> got messages, <strong>0</strong> clicked, <strong>{bought}</strong> bought for"
        )),
        "the summary agrees with the flows report: {page}"
    );
    if bought > 0 {
        assert!(
            page.contains(&format!("EUR {:.2}", 80.0 * bought as f64)),
            "{page}"
        );
    }
    assert!(
        page.contains(&format!(
            "Held out (sent nothing): <strong>{held}</strong> runs, <strong>{held_bought}</strong> bought"
        )),
        "{page}"
    );
    assert!(
        page.contains("2 · email · checkout-1"),
        "the message step by name: {page}"
    );
    assert!(
        page.contains("experiment holdout-1"),
        "the experiment's table: {page}"
    );
    let (status, page, _) = owner.get("/app/recovery?from=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("from"), "{page}");

    // The explorer: by recipient, flow and state; a bad state is named.
    let mailed = s.admin("/v1/messages?limit=100").await["messages"]
        .as_array()
        .unwrap()
        .clone();
    let first = &mailed[0];
    let to = first["to"].as_str().unwrap();
    let (status, page, _) = owner
        .get(&format!("/app/messages?to={}", to.to_uppercase()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page.matches("<tr><td>").count(),
        1,
        "one message to {to}: {page}"
    );
    assert!(page.contains(to));
    let (_, page, _) = owner
        .get("/app/messages?flow=checkout-recovery&state=queued")
        .await;
    let queued = mailed.iter().filter(|m| m["state"] == "queued").count();
    assert_eq!(page.matches("<tr><td>").count(), queued, "{page}");
    let (_, page, _) = owner.get("/app/messages?flow=checkout-recovery").await;
    assert_eq!(page.matches("<tr><td>").count(), treated as usize);
    let (status, page, _) = owner.get("/app/messages?state=lost").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("query: ") && page.contains("state"), "{page}");
    let (status, page, _) = owner.get("/app/messages?before=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("before: is not a message id"), "{page}");

    // A message as sent, its HTML under its own policy, and its contact's timeline.
    let id = first["id"].as_str().unwrap();
    let (status, page, _) = owner.get(&format!("/app/messages/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("You left something") && page.contains("Your cart: 30"),
        "{page}"
    );
    let (status, html, headers) = owner.get(&format!("/app/messages/{id}/html")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<p style=\"color:#333\">Your cart: 30"),
        "{html}"
    );
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("sandbox") && policy.starts_with("default-src 'none'"),
        "{policy}"
    );
    let (status, _, _) = owner.get("/app/messages/not-an-id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = owner
        .get(&format!("/app/messages/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let contact = first["contact_id"].as_str().unwrap();
    let (status, page, _) = owner.get(&format!("/app/contacts/{contact}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Checkout Started")
            && page.contains("entered flow <strong>checkout-recovery</strong>")
            && page.contains(&format!("/app/messages/{id}")),
        "{page}"
    );

    // Nobody but an admin sees any of it.
    let mut ann = signed_in(&s, "ann@example.com").await;
    for path in [
        "/app/recovery",
        "/app/messages",
        &format!("/app/messages/{id}"),
        &format!("/app/contacts/{contact}"),
    ] {
        let (status, page, _) = ann.get(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(!page.contains("You left something"));
    }
    s.stop().await;
}

async fn a_backlog_of_call_tasks_shows_the_fifty_most_overdue_and_counts_the_rest(s: Server) {
    // Every lead opens a call task for its owner; 51 of them for Ann.
    let mut ann_leads = 0;
    let mut n = 0;
    while ann_leads < 51 {
        let id = post_lead(&s, &format!("Backlog {n}"), "web").await;
        n += 1;
        if s.admin(&format!("/v1/leads/{id}")).await["owner"] == "ann" {
            ann_leads += 1;
        }
    }
    let mut ann = signed_in(&s, "ann@example.com").await;
    let mut inbox = String::new();
    for _ in 0..200 {
        inbox = ann.get("/app/inbox").await.1;
        if inbox.contains("Today's calls <span class=\"count\">51</span>") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        inbox.contains("Today's calls <span class=\"count\">51</span>"),
        "{inbox}"
    );
    assert_eq!(
        inbox.matches("class=\"card task").count(),
        50,
        "the fifty most overdue as cards"
    );
    assert!(inbox.contains("And 1 more due"), "{inbox}");
    s.stop().await;
}

/// The speed-to-lead report's leads are kept in each server's memory (`pronto_server::lead_report`): what
/// another node writes to the same database shows on the next read, and an erased lead's words leave the
/// board at once.
async fn the_board_kept_in_memory_follows_what_another_node_writes_and_forgets_what_was_erased(
    s: Server,
) {
    let hash = pronto_server::auth::hash_password("correct horse battery").unwrap();
    let other = common::start_on(&s.db_url, false, &config(&hash), t0()).await;
    let nora = post_lead(&s, "Nora North", "web").await;
    s.advance(chrono::Duration::minutes(1));
    other.advance(chrono::Duration::minutes(1));
    let report = || other.admin("/v1/reports/speed-to-lead");
    let r = report().await;
    assert_eq!(r["overall"]["leads"], 1, "{r}");

    // Another person (post_lead gives everyone one phone number, which would make them one contact).
    let r = s
        .http
        .post(format!("{}/v1/leads", s.base))
        .basic_auth(WRITE, Some(""))
        .json(&json!({"name": "Sam South", "email": "sam@client.example", "message": "Sam South would like a call", "source": "south"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    s.advance(chrono::Duration::minutes(1));
    other.advance(chrono::Duration::minutes(1));
    assert_eq!(report().await["overall"]["leads"], 2);

    let owner = s.admin(&format!("/v1/leads/{nora}")).await["owner"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, lead) = s
        .admin_send(
            reqwest::Method::POST,
            &format!("/v1/leads/{nora}/attempts"),
            json!({"rep": owner, "channel": "call", "outcome": "won", "value": 250, "currency": "EUR"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lead}");
    let r = report().await;
    assert_eq!(r["overall"]["won_revenue"], json!({"EUR": 250.0}), "{r}");
    assert_eq!(r["overall"]["buckets"][0]["bucket"], "within5_min", "{r}");
    assert_eq!(
        r["overall"]["buckets"][0]["leads"], 1,
        "called two minutes in: {r}"
    );

    let mut admin = Browser::new(&other);
    assert_eq!(
        admin.sign_in_with_admin_key(ADMIN).await,
        StatusCode::SEE_OTHER
    );
    let (status, board, _) = admin.get("/app/board").await;
    assert_eq!(status, StatusCode::OK);
    assert!(board.contains("<li>nora "), "{board}");
    assert!(
        board.contains("beside 0 checkouts and 0 orders."),
        "{board}"
    );
    // A checkout and its order through the first node: the second's kept counts follow.
    for name in ["Checkout Started", "Order Completed"] {
        s.track(json!({"userId": "shopper", "event": name,
                       "properties": {"checkout_id": "c1", "total": 30.0, "currency": "EUR"}}))
            .await;
    }
    let (_, board, _) = admin.get("/app/board").await;
    assert!(
        board.contains("beside 1 checkouts and 1 orders."),
        "the other node's checkout and order: {board}"
    );
    let contact = lead["contact_id"].as_str().unwrap().to_string();
    let (status, erased) = s
        .admin_send(
            reqwest::Method::DELETE,
            &format!("/v1/contacts/{contact}"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    let (_, board, _) = admin.get("/app/board").await;
    assert!(
        !board.contains("nora") && board.contains("<li>sam ") && !board.contains("<li>erased "),
        "the erased lead's words are gone, the other's stay: {board}"
    );
    assert_eq!(
        report().await["overall"]["won_revenue"],
        json!({"EUR": 250.0}),
        "erasure keeps the counts"
    );
    other.stop().await;
    s.stop().await;
}
