//! Speed to lead end to end, over HTTP, on SQLite and PostgreSQL, against the shipped example config (two
//! reps, one team, an SLA of 5 minutes with a realert → reassign → manager chain), emails delivered over a
//! real SMTP conversation. Time is a [`pronto_domain::ManualClock`] and no background worker runs: after
//! moving the clock a test runs the workers' steps until both are idle ([`Server::settle`]), so "nothing was
//! sent" is asserted after the workers had every chance, not after a sleep.

use chrono::{DateTime, Duration, Utc};
use common::{Server, ADMIN};
use pronto_server::config::EXAMPLE_CONFIG;
use reqwest::StatusCode;
use serde_json::{json, Value};

mod common;

/// Tuesday 15:00 UTC: Ann (New York, 09-17) and Bo (Berlin, 08-18) are both on duty.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn start(backend: &str) -> Server {
    common::start_stepped(backend, true, EXAMPLE_CONFIG, t0()).await
}

pronto_store::for_each_backend!(start;
    a_form_lead_alerts_the_rep_acknowledges_the_lead_escalates_on_time_and_a_claim_stops_the_clock,
    an_away_rep_is_skipped_and_off_hours_leads_are_promised_the_next_shift,
    a_promise_names_a_time_the_lead_can_read_and_none_when_nobody_can_take_the_lead,
    an_escalation_reassigns_only_to_a_rep_on_duty_else_tells_the_manager_and_alerts_say_overdue,
    an_attempt_dated_before_its_lead_is_refused_and_report_periods_take_dates,
    leads_are_listed_newest_first_by_state_and_owner_a_page_at_a_time,
);

mod quiet_hours {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::a_leads_own_zone_or_its_phones_country_sets_its_sms_quiet_hours("sqlite").await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::a_leads_own_zone_or_its_phones_country_sets_its_sms_quiet_hours("postgres").await
    }
}

mod sms {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::stop_start_help_and_replies_over_twilio_style_sms("sqlite").await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::stop_start_help_and_replies_over_twilio_style_sms("postgres").await
    }
}

impl Server {
    async fn post_form(&self, fields: &[(&str, &str)]) {
        let r = self
            .http
            .post(format!("{}/f/contact", self.base))
            .form(fields)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }

    /// The outbox messages to `to` whose text contains `needle`.
    async fn mail_to(&self, to: &str, needle: &str) -> Value {
        let m = self
            .messages_until(&format!("a message to {to} with {needle:?}"), |m| {
                m.iter()
                    .any(|x| x["to"] == to && x["text"].as_str().unwrap().contains(needle))
            })
            .await;
        m.into_iter()
            .find(|x| x["to"] == to && x["text"].as_str().unwrap().contains(needle))
            .unwrap()
    }

    /// Waits until the SMTP server has a message for `to` containing `needle`.
    async fn delivered(&self, to: &str, needle: &str) -> String {
        for _ in 0..200 {
            if let Some(m) = self
                .sink
                .as_ref()
                .unwrap()
                .received()
                .into_iter()
                .find(|m| {
                    m.contains(&format!("To: {to}"))
                        && m.replace("=\r\n", "").replace("=\n", "").contains(needle)
                })
            {
                return m;
            }
            self.settle().await;
        }
        panic!("no delivered message to {to} with {needle:?}");
    }
}

/// The alert's claim link, on the test server (links carry `server.public_url`, here the unbound :0).
fn claim_link(s: &Server, text: &str) -> String {
    let at = text
        .find("I'm on it: ")
        .expect("the alert has a claim link")
        + "I'm on it: ".len();
    let link = text[at..].split_whitespace().next().unwrap();
    link.replace("http://127.0.0.1:0", &s.base)
}

async fn a_form_lead_alerts_the_rep_acknowledges_the_lead_escalates_on_time_and_a_claim_stops_the_clock(
    s: Server,
) {
    s.post_form(&[
        ("name", "Lee Lead"),
        ("email", "lee@client.example"),
        ("phone", "+1 212 555 0123"),
        ("message", "Quote for 40 chairs?"),
    ])
    .await;
    // Within a second: the on-duty rep's alert (round robin starts with Ann) and the lead's acknowledgement.
    let alert = s
        .mail_to("ann@example.com", "New lead for Ann: Lee Lead")
        .await;
    let text = alert["text"].as_str().unwrap();
    assert!(text.contains("Call: tel:+12125550123"), "{text}");
    assert!(text.contains("Quote for 40 chairs?"), "{text}");
    let ack = s.mail_to("lee@client.example", "will contact you").await;
    assert!(
        ack["text"]
            .as_str()
            .unwrap()
            .contains("Ann will contact you within 5 minutes"),
        "{ack}"
    );
    assert_eq!(
        ack["reply_to"], "ann@example.com",
        "the lead's reply reaches the rep"
    );
    s.delivered("ann@example.com", "New lead").await;
    s.delivered("lee@client.example", "within 5 minutes").await;

    let ann_link = claim_link(&s, text);
    let lead_id = ann_link.split('/').nth_back(2).unwrap().to_string();
    let lead = s.admin(&format!("/v1/leads/{lead_id}")).await;
    assert_eq!(lead["owner"], "ann", "{lead}");
    assert_eq!(lead["status"], "open");
    let kinds: Vec<&str> = lead["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["routed", "alerted", "acknowledged"], "{lead}");

    // 4 minutes: nothing yet. 5: Ann is alerted again. 10: the lead goes to Bo.
    s.advance_and_settle(Duration::minutes(4)).await;
    let before = s.admin("/v1/messages?limit=1000").await["messages"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, 2, "no escalation before the SLA runs out");
    s.advance_and_settle(Duration::minutes(1)).await;
    s.mail_to("ann@example.com", "STILL WAITING").await;
    s.advance_and_settle(Duration::minutes(5)).await;
    let to_bo = s.mail_to("bo@example.com", "REASSIGNED TO YOU").await;
    s.delivered("bo@example.com", "REASSIGNED").await;
    let lead = s.admin(&format!("/v1/leads/{lead_id}")).await;
    assert_eq!(lead["owner"], "bo", "{lead}");
    assert_eq!(lead["tried"], json!(["ann", "bo"]));

    // Bo's link: the GET page claims nothing (link scanners open links), the button does.
    let bo_link = claim_link(&s, to_bo["text"].as_str().unwrap());
    let page = s.http.get(&bo_link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("I'm on it</button>"));
    assert!(s.admin(&format!("/v1/leads/{lead_id}")).await["claimed_at"].is_null());
    // Ann's token does not work for Bo, nor Bo's for another lead.
    let forged = ann_link.replace("/ann/", "/bo/");
    assert_eq!(
        s.http.post(&forged).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let other = bo_link.replace(&lead_id, "0190a000-0000-7000-8000-000000000000");
    assert_eq!(
        s.http.post(&other).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let done = s.http.post(&bo_link).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().await.unwrap().contains("It's yours"));
    let lead = s.admin(&format!("/v1/leads/{lead_id}")).await;
    assert_eq!(
        (lead["claimed_by"].as_str(), lead["due_at"].is_null()),
        (Some("bo"), true),
        "{lead}"
    );

    // The manager step (20 min) never comes: the clock stopped.
    s.advance_and_settle(Duration::minutes(15)).await;
    let after = s.admin("/v1/messages?limit=1000").await["messages"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        after, 4,
        "alert, ack, realert, reassignment; nothing for the manager"
    );

    // A logged call is the first contact (25 minutes after arrival).
    let (status, lead) = s
        .admin_send(
            reqwest::Method::POST,
            &format!("/v1/leads/{lead_id}/attempts"),
            json!({"rep": "bo", "channel": "call", "outcome": "reached"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lead}");
    assert_eq!(
        lead["first_contact_at"].as_str().unwrap(),
        "2026-11-24T15:25:00Z"
    );
    assert_eq!(lead["status"], "contacted");
    let (status, bad) = s
        .admin_send(
            reqwest::Method::POST,
            &format!("/v1/leads/{lead_id}/attempts"),
            json!({"channel": "fax", "outcome": "maybe"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["channel", "outcome"]);

    let report = s
        .admin("/v1/reports/speed-to-lead?from=2026-11-24T00:00:00Z&to=2026-11-25T00:00:00Z")
        .await;
    let buckets: Vec<(String, u64)> = report["overall"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["bucket"].as_str().unwrap().to_string(),
                b["leads"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(buckets[1], ("within1_hour".to_string(), 1), "{report}");
    assert_eq!(
        report["overall"]["sla_breaches"], 1,
        "claimed after 10 minutes, SLA 5"
    );
    let by_rep: Vec<&str> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["by"] == "rep")
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    // The lead was Ann's when its 5 minutes ran out and Bo's when claimed: the breach is Ann's.
    assert_eq!(by_rep, ["bo", "ann"]);
    let breaches = |rep: &str| {
        report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["by"] == "rep" && g["key"] == rep)
            .unwrap()["report"]["sla_breaches"]
            .clone()
    };
    assert_eq!(
        (breaches("ann"), breaches("bo")),
        (json!(1), json!(0)),
        "{report}"
    );
    let csv = s
        .http
        .get(format!(
            "{}/v1/reports/speed-to-lead?from=2026-11-24T00:00:00Z&format=csv",
            s.base
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("by,key,leads,within5_min,"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("rep,bo,1,0,")), "{csv}");
    s.stop().await;
}

async fn an_away_rep_is_skipped_and_off_hours_leads_are_promised_the_next_shift(s: Server) {
    let (status, reps) = s
        .admin_send(
            reqwest::Method::PATCH,
            "/v1/reps/ann",
            json!({"away": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reps["reps"][0]["away"], true, "{reps}");
    s.post_form(&[("email", "one@client.example")]).await;
    s.mail_to("bo@example.com", "New lead for Bo").await;

    // Saturday 03:00 UTC: nobody works weekends. Bo's shift starts first (Monday 08:00 Berlin = 07:00 UTC,
    // Ann's 09:00 New York = 14:00 UTC), so Bo gets the lead, and the lead (no time zone of its own: the
    // business's, New York) is promised Monday after 2:00 AM EST, Bo's start in New York time, on New York's
    // clock, the zone named.
    s.admin_send(
        reqwest::Method::PATCH,
        "/v1/reps/ann",
        json!({"away": false}),
    )
    .await;
    s.clock.set(
        DateTime::parse_from_rfc3339("2026-11-28T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
    );
    s.post_form(&[("email", "two@client.example")]).await;
    let ack = s.mail_to("two@client.example", "will contact you").await;
    assert!(
        ack["text"]
            .as_str()
            .unwrap()
            .contains("Bo will contact you on Monday after 2:00 AM EST"),
        "{ack}"
    );
    s.stop().await;
}

/// The SMS provider is the one fake allowed: a local HTTP server that accepts only Twilio's documented request
/// (Basic auth with the account SID and token, urlencoded To/From/Body at the account's Messages.json).
/// A Twilio-compatible fake: answers 201 only to a Messages request in the documented wire format (path with
/// the account SID, HTTP Basic SID:token, form-encoded, our From number).
async fn twilio_fake() -> wiremock::MockServer {
    use wiremock::matchers::{body_string_contains, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC0001/Messages.json"))
        .and(header("authorization", "Basic QUMwMDAxOnNtcy10b2tlbg=="))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("From=%2B15005550006"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"sid": "SM0001", "status": "queued"})),
        )
        .mount(&twilio)
        .await;
    twilio
}

/// The example config with the fake as its SMS provider.
fn with_sms(twilio: &wiremock::MockServer) -> String {
    format!(
        "{EXAMPLE_CONFIG}\n[sms]\nbase_url = \"{}\"\naccount_sid = \"AC0001\"\nauth_token = \"sms-token\"\nfrom = \"+15005550006\"\n",
        twilio.uri()
    )
}

/// The form fields of every SMS the fake received.
async fn sms_sent(twilio: &wiremock::MockServer) -> Vec<std::collections::HashMap<String, String>> {
    twilio
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            serde_urlencoded::from_bytes::<Vec<(String, String)>>(&r.body)
                .unwrap()
                .into_iter()
                .collect()
        })
        .collect()
}

/// Twilio's inbound-SMS webhook from the lead's number, signed as Twilio signs it.
async fn inbound_sms(s: &Server, body: &str, signed: bool) -> reqwest::Response {
    let params = vec![
        ("From".to_string(), "+12125550123".to_string()),
        ("To".to_string(), "+15005550006".to_string()),
        ("Body".to_string(), body.to_string()),
    ];
    let sig = if signed {
        pronto_channels::sms::twilio_signature(
            "sms-token",
            "http://127.0.0.1:0/v1/inbound/sms",
            &params,
        )
    } else {
        "bm90IGEgc2lnbmF0dXJl".to_string()
    };
    s.http
        .post(format!("{}/v1/inbound/sms", s.base))
        .header("x-twilio-signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap()
}

async fn stop_start_help_and_replies_over_twilio_style_sms(backend: &str) {
    let twilio = twilio_fake().await;
    let s = common::start_stepped(backend, true, &with_sms(&twilio), t0()).await;
    let sms_bodies = || sms_sent(&twilio);

    // A lead with a phone gets the acknowledgement by SMS too, in Twilio's wire format.
    s.post_form(&[
        ("name", "Lee"),
        ("email", "lee@client.example"),
        ("phone", "+1 212 555 0123"),
    ])
    .await;
    for _ in 0..200 {
        if !sms_bodies().await.is_empty() {
            break;
        }
        s.settle().await;
    }
    let sent = sms_bodies().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["To"], "+12125550123");
    assert!(
        sent[0]["Body"].contains("Ann will contact you within 5 minutes. Reply STOP to opt out."),
        "{sent:?}"
    );

    let r = inbound_sms(&s, "STOP", false).await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "an unsigned webhook changes nothing"
    );
    let cases = [
        ("STOP", "You are unsubscribed"),
        ("help", "Reply STOP to unsubscribe"),
        ("Start", "You are resubscribed"),
        (" unsubscribe ", "You are unsubscribed"),
    ];
    for (body, want) in cases {
        let r = inbound_sms(&s, body, true).await;
        assert_eq!(r.status(), StatusCode::OK);
        let twiml = r.text().await.unwrap();
        assert!(twiml.contains(want), "{body:?}: {twiml}");
    }
    let contact = s.admin("/v1/contacts?phone=%2B12125550123").await;
    assert_eq!(contact["traits"]["sms_opt_out"], true, "{contact}");

    // Opted out: the next lead from that number gets its email acknowledgement but no SMS.
    s.post_form(&[
        ("name", "Lee"),
        ("email", "lee@client.example"),
        ("phone", "+1 212 555 0123"),
    ])
    .await;
    s.messages_until("the second acknowledgement", |m| {
        m.iter().filter(|x| x["to"] == "lee@client.example").count() == 2
    })
    .await;
    s.settle().await;
    assert_eq!(sms_bodies().await.len(), 1, "no SMS after STOP");

    // A reply is for a person: forwarded to the lead's owner (keep_owner: Ann again).
    let r = inbound_sms(&s, "Yes, call me after 3pm", true).await;
    assert_eq!(r.status(), StatusCode::OK);
    let fwd = s.mail_to("ann@example.com", "replied by sms").await;
    assert!(
        fwd["text"]
            .as_str()
            .unwrap()
            .contains("Yes, call me after 3pm"),
        "{fwd}"
    );
    s.stop().await;
}

mod cadence_without_sms {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::without_an_sms_provider_texts_are_skipped_at_once_and_tasks_close_by_call_time_or_reach("sqlite").await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::without_an_sms_provider_texts_are_skipped_at_once_and_tasks_close_by_call_time_or_reach(
            "postgres",
        )
        .await
    }
}

mod cadence {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::a_lead_cadence_queues_call_tasks_texts_outside_quiet_hours_and_stops_on_a_reply(
            "sqlite",
        )
        .await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::a_lead_cadence_queues_call_tasks_texts_outside_quiet_hours_and_stops_on_a_reply(
            "postgres",
        )
        .await
    }
}

impl Server {
    async fn tasks(&self, query: &str) -> Vec<Value> {
        self.admin(&format!("/v1/tasks{query}")).await["tasks"]
            .as_array()
            .unwrap_or_else(|| panic!("no task list for {query}"))
            .clone()
    }

    async fn tasks_until(&self, query: &str, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let t = self.tasks(query).await;
            if t.len() == n {
                return t;
            }
            self.settle().await;
        }
        panic!("timed out waiting for {n} tasks at /v1/tasks{query}");
    }

    /// Waits until the contact's `lead-cadence` run has logged a step of `kind`; answers the run.
    async fn cadence_logged(&self, contact: &str, kind: &str, n: usize) -> Value {
        for _ in 0..200 {
            let c = self.admin(&format!("/v1/contacts/{contact}")).await;
            if let Some(run) = c["runs"]
                .as_array()
                .and_then(|rs| rs.iter().find(|r| r["flow"] == "lead-cadence"))
            {
                let seen = run["log"]
                    .as_array()
                    .map_or(0, |l| l.iter().filter(|e| e["kind"] == kind).count());
                if seen >= n {
                    return run.clone();
                }
            }
            self.settle().await;
        }
        panic!("the cadence of {contact} never logged {n} × {kind}");
    }
}

async fn a_lead_cadence_queues_call_tasks_texts_outside_quiet_hours_and_stops_on_a_reply(
    backend: &str,
) {
    let twilio = twilio_fake().await;
    // Tuesday 21:30 in New York (the flow's zone; the lead has no `timezone` trait): nobody is on duty.
    let evening = DateTime::parse_from_rfc3339("2026-11-25T02:30:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let s = common::start_stepped(backend, true, &with_sms(&twilio), evening).await;
    s.post_form(&[
        ("name", "Lee"),
        ("email", "lee@client.example"),
        ("phone", "+1 212 555 0123"),
        ("message", "Quote for 40 chairs?"),
    ])
    .await;

    // The cadence's first step: a call task, in the queue of the lead's owner, with its script.
    let tasks = s.tasks_until("", 1).await;
    let task = &tasks[0];
    let lead_id = task["lead"]["id"].as_str().unwrap().to_string();
    let lead = s.admin(&format!("/v1/leads/{lead_id}")).await;
    let owner = lead["owner"].as_str().expect("the lead has an owner");
    let other = if owner == "ann" { "bo" } else { "ann" };
    assert_eq!(task["rep"], owner);
    assert_eq!(task["kind"], "call");
    assert_eq!(task["title"], "Call Lee now (new lead)");
    assert!(
        task["script"]
            .as_str()
            .unwrap()
            .contains("Quote for 40 chairs?"),
        "{task}"
    );
    assert_eq!(task["call_url"], "tel:+12125550123");
    assert_eq!(task["overdue"], true, "due at once");
    assert_eq!(s.tasks(&format!("?rep={owner}")).await.len(), 1);
    assert!(s.tasks(&format!("?rep={other}")).await.is_empty());
    let (status, body) = s
        .admin_send(reqwest::Method::GET, "/v1/tasks?rep=nobody", Value::Null)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["field"], "rep", "{body}");

    // 1 h: the follow-up email, Reply-To the owner.
    s.advance_and_settle(Duration::hours(1)).await;
    let email = s
        .mail_to(
            "lee@client.example",
            "When is a good time for a short call?",
        )
        .await;
    assert!(
        !email["text"]
            .as_str()
            .unwrap()
            .contains("tried to reach you"),
        "nobody has tried yet, so the email does not say so: {email}"
    );
    let owner_email = format!("{owner}@example.com");
    assert_eq!(email["reply_to"], owner_email.as_str(), "{email}");
    let contact = lead["contact_id"].as_str().unwrap().to_string();

    // A day later it is 22:30 in New York: the text waits for 08:00 there (13:00 UTC).
    let cadence_texts = || async {
        sms_sent(&twilio)
            .await
            .into_iter()
            .filter(|m| m["Body"].contains("about your enquiry"))
            .collect::<Vec<_>>()
    };
    s.advance_and_settle(Duration::days(1)).await;
    let run = s.cadence_logged(&contact, "deferred", 1).await;
    let deferred = run["log"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "deferred")
        .unwrap()
        .clone();
    assert!(
        deferred["detail"]
            .as_str()
            .unwrap()
            .contains("until 2026-11-26T13:00:00Z"),
        "{deferred}"
    );
    assert!(cadence_texts().await.is_empty(), "no text at 22:30");
    s.advance_and_settle(Duration::minutes(9 * 60 + 29)).await;
    assert!(cadence_texts().await.is_empty(), "no text at 07:59");
    s.advance_and_settle(Duration::minutes(1)).await;
    for _ in 0..200 {
        if !cadence_texts().await.is_empty() {
            break;
        }
        s.settle().await;
    }
    let texts = cadence_texts().await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0]["To"], "+12125550123");
    assert!(
        texts[0]["Body"].ends_with("Reply STOP to opt out."),
        "{texts:?}"
    );
    // The step after the text: a second call task.
    s.tasks_until("", 2).await;

    // Logging the call closes both tasks.
    let (status, _) = s
        .admin_send(
            reqwest::Method::POST,
            &format!("/v1/leads/{lead_id}/attempts"),
            json!({"rep": owner, "channel": "call", "outcome": "no_answer"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(s.tasks("").await.is_empty(), "no open task left");
    let done = s.tasks("?state=all").await;
    assert_eq!(done.len(), 2);
    assert!(
        done.iter()
            .all(|t| t["outcome"] == "no_answer" && t["done_by"] == owner),
        "{done:?}"
    );

    // The lead answers by SMS: the cadence ends; two days on, no check-in email.
    let r = inbound_sms(&s, "Thursday 10am works", true).await;
    assert_eq!(r.status(), StatusCode::OK);
    s.cadence_logged(&contact, "exited", 1).await;
    s.advance_and_settle(Duration::days(2)).await;
    let mail = s.admin("/v1/messages?limit=1000").await["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        !mail.iter().any(|m| m["to"] == "lee@client.example"
            && m["subject"]
                .as_str()
                .unwrap_or("")
                .starts_with("A quick question")),
        "no check-in after the reply"
    );
    s.stop().await;
}

async fn without_an_sms_provider_texts_are_skipped_at_once_and_tasks_close_by_call_time_or_reach(
    backend: &str,
) {
    // 21:30 in New York; the shipped config has no [sms].
    let evening = DateTime::parse_from_rfc3339("2026-11-25T02:30:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let s = common::start_stepped(backend, true, EXAMPLE_CONFIG, evening).await;
    s.post_form(&[
        ("name", "Lee"),
        ("email", "lee@client.example"),
        ("phone", "+1 212 555 0123"),
    ])
    .await;
    let first = s.tasks_until("", 1).await;
    let lead_id = first[0]["lead"]["id"].as_str().unwrap().to_string();
    let lead = s.admin(&format!("/v1/leads/{lead_id}")).await;
    let contact = lead["contact_id"].as_str().unwrap().to_string();
    s.advance_and_settle(Duration::hours(1)).await;
    s.mail_to(
        "lee@client.example",
        "When is a good time for a short call?",
    )
    .await;
    // A day on it is 22:30 there: the text cannot be sent at all, so it is skipped now and the call after it
    // is not held until 08:00.
    s.advance_and_settle(Duration::days(1)).await;
    let tasks = s.tasks_until("", 2).await;
    let run = s.cadence_logged(&contact, "skipped", 1).await;
    assert!(
        run["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "skipped" && e["detail"] == "no sms channel is configured"),
        "{run}"
    );
    assert!(
        !run["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "deferred"),
        "{run}"
    );
    // A call logged for a time before the second task was opened closes only the first.
    use pronto_domain::Clock;
    let before_second = (s.clock.now() - Duration::hours(2)).to_rfc3339();
    let path = format!("/v1/leads/{lead_id}/attempts");
    let (status, _) = s
        .admin_send(
            reqwest::Method::POST,
            &path,
            json!({"channel": "call", "outcome": "voicemail", "at": before_second}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let open = s.tasks("").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["id"], tasks[1]["id"]);
    // Reaching the lead by email ends the cadence and closes what is left.
    let (status, _) = s
        .admin_send(
            reqwest::Method::POST,
            &path,
            json!({"channel": "email", "outcome": "reached"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(s.tasks("").await.is_empty());
    s.stop().await;
}

impl Server {
    /// `POST /v1/leads` (JSON, write key); answers the lead id.
    async fn post_lead(&self, body: Value) -> String {
        let r = self
            .http
            .post(format!("{}/v1/leads", self.base))
            .basic_auth(common::WRITE, Some(""))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["lead_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn at(&self, t: &str) {
        self.clock
            .set(DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc));
    }
}

async fn a_promise_names_a_time_the_lead_can_read_and_none_when_nobody_can_take_the_lead(
    s: Server,
) {
    // Tuesday 23:00 UTC: Ann's day (New York) and Bo's (Berlin) are over; Bo starts first, at 07:00 UTC.
    s.at("2026-11-24T23:00:00Z");
    s.post_lead(json!({"email": "ny@client.example", "phone": "+1 212 555 0123"}))
        .await;
    let ack = s.mail_to("ny@client.example", "will contact you").await;
    assert!(
        ack["text"]
            .as_str()
            .unwrap()
            .contains("Bo will contact you tomorrow after 2:00 AM EST"),
        "a New York lead reads New York time, on its clock, the zone named: {ack}"
    );
    s.post_lead(json!({"email": "berlin@client.example", "timezone": "Europe/Berlin"}))
        .await;
    let ack = s.mail_to("berlin@client.example", "will contact you").await;
    assert!(
        ack["text"]
            .as_str()
            .unwrap()
            .contains("today after 08:00 CET"),
        "a lead with its own zone reads its own time (it is already Wednesday in Berlin): {ack}"
    );
    // Nobody can take a lead: no time is promised.
    for rep in ["ann", "bo"] {
        s.admin_send(
            reqwest::Method::PATCH,
            &format!("/v1/reps/{rep}"),
            json!({"away": true}),
        )
        .await;
    }
    s.at("2026-11-24T15:00:00Z");
    let id = s.post_lead(json!({"email": "nobody@client.example"})).await;
    let ack = s.mail_to("nobody@client.example", "will contact you").await;
    let text = ack["text"].as_str().unwrap();
    assert!(
        text.contains("will contact you as soon as possible"),
        "{ack}"
    );
    assert!(!text.contains("within"), "{ack}");
    let lead = s.admin(&format!("/v1/leads/{id}")).await;
    assert!(lead["promised_at"].is_null(), "{lead}");
    s.stop().await;
}

async fn an_escalation_reassigns_only_to_a_rep_on_duty_else_tells_the_manager_and_alerts_say_overdue(
    s: Server,
) {
    // Tuesday 20:00 UTC: Ann works (15:00 New York), Bo's day in Berlin ended at 18:00 (21:00 there).
    s.at("2026-11-24T20:00:00Z");
    let id = s
        .post_lead(json!({"name": "Lee", "email": "lee@client.example"}))
        .await;
    let lead = s.admin(&format!("/v1/leads/{id}")).await;
    assert_eq!(lead["owner"], "ann", "{lead}");
    let first = s.mail_to("ann@example.com", "New lead for Ann").await;
    assert!(
        first["text"]
            .as_str()
            .unwrap()
            .contains("Respond by 3:05 PM EST"),
        "{first}"
    );
    // 6 minutes: the realert says the lead is overdue instead of showing a time that has passed.
    s.advance_and_settle(Duration::minutes(6)).await;
    let again = s.mail_to("ann@example.com", "STILL WAITING").await;
    assert!(
        again["text"]
            .as_str()
            .unwrap()
            .contains("OVERDUE by 1 minute"),
        "{again}"
    );
    // 10 minutes: Bo is off duty for ten more hours, so the lead is not handed to him; the manager hears.
    s.advance_and_settle(Duration::minutes(5)).await;
    let manager = s.mail_to("bo@example.com", "nobody can take it now").await;
    assert!(
        manager["subject"]
            .as_str()
            .unwrap()
            .starts_with("Lead not answered"),
        "{manager}"
    );
    let lead = s.admin(&format!("/v1/leads/{id}")).await;
    assert_eq!(
        lead["owner"], "ann",
        "the lead stays with the rep on duty: {lead}"
    );
    assert!(
        !lead["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["kind"] == "reassigned"),
        "{lead}"
    );
    let to_bo: Vec<Value> = s.admin("/v1/messages?limit=1000").await["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["to"] == "bo@example.com" && m["subject"].as_str().unwrap().starts_with("New lead")
        })
        .cloned()
        .collect();
    assert!(to_bo.is_empty(), "no alert hands it to Bo: {to_bo:?}");
    s.stop().await;
}

async fn an_attempt_dated_before_its_lead_is_refused_and_report_periods_take_dates(s: Server) {
    let id = s.post_lead(json!({"email": "early@client.example"})).await;
    let (status, body) = s
        .admin_send(
            reqwest::Method::POST,
            &format!("/v1/leads/{id}/attempts"),
            json!({"rep": "ann", "channel": "call", "outcome": "reached", "at": "2026-11-24T14:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["field"], "at", "{body}");
    let lead = s.admin(&format!("/v1/leads/{id}")).await;
    assert!(
        lead["first_contact_at"].is_null(),
        "nothing recorded: {lead}"
    );
    // Dates in report queries: whole days in the business's zone (New York).
    s.advance_and_settle(Duration::minutes(1)).await;
    for (query, leads) in [
        ("from=2026-11-24", 1),
        ("from=2026-11-24&to=2026-11-24", 1),
        ("from=2026-11-25&to=2026-11-25", 0),
        ("from=2026-11-23&to=2026-11-23", 0),
    ] {
        let r = s.admin(&format!("/v1/reports/speed-to-lead?{query}")).await;
        assert_eq!(r["overall"]["leads"], leads, "{query}: {r}");
    }
    let (status, body) = s
        .admin_send(
            reqwest::Method::GET,
            "/v1/reports/speed-to-lead?from=yesterday",
            Value::Null,
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("from"))
    );

    // A win with its value: refused where it makes no sense, then summed per bucket and rep.
    let attempts = format!("/v1/leads/{id}/attempts");
    for (body, field) in [
        (
            json!({"rep": "ann", "channel": "call", "outcome": "reached", "value": 10}),
            "value",
        ),
        (
            json!({"rep": "ann", "channel": "call", "outcome": "won", "value": -1}),
            "value",
        ),
        (
            json!({"rep": "ann", "channel": "call", "outcome": "won", "value": 10, "currency": "EURO"}),
            "currency",
        ),
        (
            json!({"rep": "ann", "channel": "call", "outcome": "won", "currency": "EUR"}),
            "currency",
        ),
    ] {
        let (status, got) = s
            .admin_send(reqwest::Method::POST, &attempts, body.clone())
            .await;
        assert_eq!(
            (status, got["errors"][0]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {got}"
        );
    }
    let (status, got) = s
        .admin_send(
            reqwest::Method::POST,
            &attempts,
            json!({"rep": "ann", "channel": "call", "outcome": "won", "value": 1200, "currency": "eur"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{got}");
    let r = s.admin("/v1/reports/speed-to-lead?from=2026-11-24").await;
    assert_eq!(r["overall"]["won_revenue"]["EUR"], 1200.0, "{r}");
    let rep_total: f64 = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["by"] == "rep")
        .filter_map(|g| g["report"]["won_revenue"]["EUR"].as_f64())
        .sum();
    assert_eq!(rep_total, 1200.0, "{r}");
    let bucket_total: f64 = r["overall"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["won_revenue"]["EUR"].as_f64())
        .sum();
    assert_eq!(bucket_total, 1200.0, "{r}");
    s.stop().await;
}

async fn a_leads_own_zone_or_its_phones_country_sets_its_sms_quiet_hours(backend: &str) {
    let twilio = twilio_fake().await;
    // Monday 20:50 UTC (21:50 Berlin, 15:50 New York, the cadence flow's zone). The cadence texts a day and an
    // hour later: 22:50 in Berlin, inside the quiet hours there, though not in New York.
    let monday = DateTime::parse_from_rfc3339("2026-11-23T20:50:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let s = common::start_stepped(backend, true, &with_sms(&twilio), monday).await;
    s.post_lead(
        json!({"name": "Uwe", "email": "uwe@client.example", "phone": "+49 30 901820",
                       "timezone": "Europe/Berlin"}),
    )
    .await;
    s.post_lead(json!({"name": "Ute", "email": "ute@client.example", "phone": "+49 40 428280"}))
        .await;
    let contact = |email: &str| {
        let s = &s;
        let email = email.to_string();
        async move {
            s.admin(&format!("/v1/contacts?email={}", email.replace('@', "%40")))
                .await["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    s.advance_and_settle(Duration::hours(1)).await;
    for who in ["uwe@client.example", "ute@client.example"] {
        s.mail_to(who, "When is a good time for a short call?")
            .await;
    }
    s.advance_and_settle(Duration::days(1)).await;
    for who in ["uwe@client.example", "ute@client.example"] {
        let run = s.cadence_logged(&contact(who).await, "deferred", 1).await;
        let deferred = run["log"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "deferred")
            .unwrap()
            .clone();
        assert!(
            deferred["detail"]
                .as_str()
                .unwrap()
                .contains("until 2026-11-25T07:00:00Z"),
            "{who}: the text waits for 08:00 Berlin: {deferred}"
        );
    }
    s.settle().await;
    let texts: Vec<_> = sms_sent(&twilio)
        .await
        .into_iter()
        .filter(|m| m["Body"].contains("about your enquiry"))
        .collect();
    assert!(
        texts.is_empty(),
        "no cadence text at 22:50 Berlin: {texts:?}"
    );
    s.stop().await;
}

async fn leads_are_listed_newest_first_by_state_and_owner_a_page_at_a_time(s: Server) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            s.post_lead(
                json!({"name": format!("Lead {i}"), "email": format!("lead{i}@example.com"),
                               "message": "Do you ship to Norway?"}),
            )
            .await,
        );
    }
    let claimed = s
        .http
        .post(format!("{}/v1/leads/{}/claim", s.base, ids[1]))
        .bearer_auth(common::ADMIN)
        .json(&json!({"rep": "ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(claimed.status(), StatusCode::OK);

    // Pages of two, newest first, until next_before is absent.
    let mut seen = Vec::new();
    let mut path = "/v1/leads?limit=2".to_string();
    loop {
        let page = s.admin(&path).await;
        let leads = page["leads"].as_array().unwrap();
        seen.extend(leads.iter().map(|l| l["id"].as_str().unwrap().to_string()));
        match page["next_before"].as_str() {
            Some(b) => path = format!("/v1/leads?limit=2&before={b}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let by_state = s.admin("/v1/leads?status=claimed").await;
    let only: Vec<(&str, &str)> = by_state["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["id"].as_str().unwrap(), l["owner"].as_str().unwrap()))
        .collect();
    assert_eq!(only, [(ids[1].as_str(), "ann")]);
    let anns = s.admin("/v1/leads?owner=ann").await;
    assert!(anns["leads"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["owner"] == "ann"));
    assert!(anns["leads"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["id"] == ids[1].as_str()));
    assert_eq!(s.admin("/v1/leads?status=won").await["leads"], json!([]));

    for (query, field) in [
        ("status=done", "status"),
        ("before=lead-1", "before"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=many", "query"),
        ("owner=a%00b", "owner"),
    ] {
        let r = s
            .http
            .get(format!("{}/v1/leads?{query}", s.base))
            .bearer_auth(common::ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    let anonymous = s
        .http
        .get(format!("{}/v1/leads", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    s.stop().await;
}
