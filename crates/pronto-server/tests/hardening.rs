//! What an attacker or a sloppy client sends, over real HTTP, on SQLite and PostgreSQL: scoped idempotency
//! keys, NUL characters, forged inbound replies, write keys in bodies, corrupt gzip, revoked keys.

use chrono::{DateTime, Duration, Utc};
use common::{Server, ADMIN, WRITE};
use pronto_domain::Clock;
use pronto_server::config::EXAMPLE_CONFIG;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

mod common;

/// Tuesday 15:00 UTC: both example reps are on duty.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

const INBOUND_SECRET: &str = "inbound-secret-for-tests-0001";

fn config() -> String {
    format!("{EXAMPLE_CONFIG}\n[inbound]\nemail_secret = \"{INBOUND_SECRET}\"\n")
}

async fn start(backend: &str) -> Server {
    common::start(backend, false, &config(), t0()).await
}

pronto_store::for_each_backend!(start;
    an_idempotency_key_is_scoped_per_endpoint_and_credential_and_a_retry_answers_the_first_lead,
    a_nul_in_a_lookup_a_path_or_a_body_is_a_400_naming_the_field,
    an_inbound_reply_needs_the_inbound_secret_and_never_the_write_key,
    a_write_key_sent_in_the_body_is_never_stored,
    a_corrupt_gzip_body_is_a_400_and_not_a_413,
    a_revoked_key_is_refused_at_once_and_the_last_admin_key_is_kept,
    leads_are_limited_per_ip_and_per_recipient_and_acknowledgements_are_capped_per_day,
    html_pages_send_a_strict_csp_no_referrer_and_keep_the_admin_key_out_of_storage,
);

/// Two servers on one PostgreSQL database share the per-IP counter (SQLite has one process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lead_limit_per_ip_is_shared_by_every_process_on_postgres() {
    let a = start("postgres").await;
    let b = common::start_on(&a.db_url, false, &config(), t0()).await;
    let lead = |i: usize| json!({"email": format!("shared{i}@client.example")});
    for i in 0..60 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (st, body) = node
            .call(
                Method::POST,
                "/v1/leads",
                Auth::Write(WRITE),
                &[],
                Some(lead(i)),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "lead {i}: {body}");
    }
    let (st, _) = b
        .call(
            Method::POST,
            "/v1/leads",
            Auth::Write(WRITE),
            &[],
            Some(lead(60)),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::TOO_MANY_REQUESTS,
        "the 61st lead of the minute, on either node"
    );
    b.stop().await;
    a.stop().await;
}

impl Server {
    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        req = match auth {
            Auth::Write(k) => req.basic_auth(k, Some("")),
            Auth::Admin(k) => req.bearer_auth(k),
            Auth::None => req,
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Write(&'a str),
    Admin(&'a str),
    None,
}

fn field(body: &Value) -> &str {
    body["errors"][0]["field"].as_str().unwrap_or("")
}

async fn an_idempotency_key_is_scoped_per_endpoint_and_credential_and_a_retry_answers_the_first_lead(
    s: Server,
) {
    let w = Auth::Write(WRITE);
    // A Segment message whose messageId equals the key a lead will use.
    let (st, _) = s
        .call(
            Method::POST,
            "/v1/track",
            w,
            &[],
            Some(json!({"userId": "u-1", "event": "Viewed", "messageId": "key-1"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let lead = json!({"name": "Bo", "email": "bo@client.example", "message": "call me"});
    let idem = [("Idempotency-Key", "key-1")];
    let (st, first) = s
        .call(Method::POST, "/v1/leads", w, &idem, Some(lead.clone()))
        .await;
    assert_eq!(
        st,
        StatusCode::CREATED,
        "the lead is stored, not taken for the track: {first}"
    );
    let lead_id = first["lead_id"].as_str().expect("a lead id").to_string();
    let (st, _) = s
        .call(
            Method::GET,
            &format!("/v1/leads/{lead_id}"),
            Auth::Admin(ADMIN),
            &[],
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);

    let (st, again) = s
        .call(Method::POST, "/v1/leads", w, &idem, Some(lead.clone()))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (again["lead_id"].as_str(), again["duplicate"].as_bool()),
        (Some(lead_id.as_str()), Some(true))
    );

    let other = json!({"name": "Cy", "email": "cy@client.example"});
    let (st, reused) = s
        .call(Method::POST, "/v1/leads", w, &idem, Some(other))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{reused}");
    assert_eq!(
        (reused["error"].as_str(), field(&reused)),
        (Some("idempotency_key_reused"), "Idempotency-Key")
    );
    let (st, _) = s
        .call(
            Method::GET,
            "/v1/contacts?email=cy%40client.example",
            Auth::Admin(ADMIN),
            &[],
            None,
        )
        .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "nothing of the refused request is stored"
    );

    // The same key on another endpoint is another key.
    let (st, _) = s
        .call(
            Method::POST,
            "/v1/track",
            w,
            &idem,
            Some(json!({"userId": "u-2", "event": "Viewed"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, c) = s
        .call(
            Method::GET,
            "/v1/contacts?user_id=u-2",
            Auth::Admin(ADMIN),
            &[],
            None,
        )
        .await;
    assert_eq!(
        c["events"].as_array().map(Vec::len),
        Some(1),
        "the keyed track is stored: {c}"
    );

    // And from another credential.
    let (st, made) = s
        .call(
            Method::POST,
            "/v1/admin/keys",
            Auth::Admin(ADMIN),
            &[],
            Some(json!({"kind": "write", "label": "site 2"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    let second = made["key"].as_str().unwrap().to_string();
    let (st, theirs) = s
        .call(
            Method::POST,
            "/v1/leads",
            Auth::Write(&second),
            &idem,
            Some(lead),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_ne!(theirs["lead_id"].as_str(), Some(lead_id.as_str()));

    // A bad key is judged after the credential: without one, 401.
    let (st, _) = s
        .call(
            Method::POST,
            "/v1/leads",
            Auth::None,
            &[("Idempotency-Key", " ")],
            Some(json!({"email": "x@y.example"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

async fn a_nul_in_a_lookup_a_path_or_a_body_is_a_400_naming_the_field(s: Server) {
    let a = Auth::Admin(ADMIN);
    let cases = [
        (Method::GET, "/v1/contacts?user_id=u%00x", "user_id"),
        (Method::GET, "/v1/contacts?anonymous_id=%00", "anonymous_id"),
        (Method::GET, "/v1/contacts?email=a%00%40b.example", "email"),
        (Method::GET, "/v1/tasks?rep=ann%00", "rep"),
        (Method::PATCH, "/v1/reps/a%00b", "path"),
    ];
    for (method, path, want) in cases {
        let (st, body) = s
            .call(method, path, a, &[], Some(json!({"away": true})))
            .await;
        assert_eq!(
            (st, field(&body)),
            (StatusCode::BAD_REQUEST, want),
            "{path}: {body}"
        );
    }
    let (_, lead) = s
        .call(
            Method::POST,
            "/v1/leads",
            Auth::Write(WRITE),
            &[],
            Some(json!({"email": "nul@client.example"})),
        )
        .await;
    let id = lead["lead_id"].as_str().unwrap();
    let (st, body) = s
        .call(
            Method::POST,
            &format!("/v1/leads/{id}/attempts"),
            a,
            &[],
            Some(json!({"channel": "call", "outcome": "no_answer", "note": "left\u{0}msg"})),
        )
        .await;
    assert_eq!(
        (st, field(&body)),
        (StatusCode::BAD_REQUEST, "note"),
        "{body}"
    );
    for (key, value) in [("subject", "Re: hi\u{0}"), ("text", "\u{0}")] {
        let mail = json!({"from": "nul@client.example", key: value});
        let (st, body) = s.inbound(&mail, Signed::Correct("nul-1")).await;
        assert_eq!((st, field(&body)), (StatusCode::BAD_REQUEST, key), "{body}");
    }
    s.stop().await;
}

enum Signed<'a> {
    /// A Standard Webhooks signature with the inbound secret, for this webhook id.
    Correct(&'a str),
    WrongSecret,
    /// Signed correctly, ten minutes ago.
    Stale,
    BasicSecret,
    BasicWrong,
    WriteKey,
    Nothing,
}

impl Server {
    async fn inbound(&self, mail: &Value, how: Signed<'_>) -> (StatusCode, Value) {
        let body = serde_json::to_vec(mail).unwrap();
        let now = self.clock.now().timestamp();
        let mut req = self
            .http
            .post(format!("{}/v1/inbound/email", self.base))
            .header("content-type", "application/json");
        let sign = |secret: &str, id: &str, at: i64| {
            pronto_channels::webhook::sign(secret.as_bytes(), id, at, &body)
        };
        req = match how {
            Signed::Correct(id) => req
                .header("webhook-id", id)
                .header("webhook-timestamp", now.to_string())
                .header("webhook-signature", sign(INBOUND_SECRET, id, now)),
            Signed::WrongSecret => req
                .header("webhook-id", "w-1")
                .header("webhook-timestamp", now.to_string())
                .header(
                    "webhook-signature",
                    sign("not-the-inbound-secret", "w-1", now),
                ),
            Signed::Stale => req
                .header("webhook-id", "w-2")
                .header("webhook-timestamp", (now - 600).to_string())
                .header("webhook-signature", sign(INBOUND_SECRET, "w-2", now - 600)),
            Signed::BasicSecret => req.basic_auth("postmark", Some(INBOUND_SECRET)),
            Signed::BasicWrong => req.basic_auth("postmark", Some("guess")),
            Signed::WriteKey => req.basic_auth(WRITE, Some("")),
            Signed::Nothing => req,
        };
        let r = req.body(body.clone()).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn lead_view(&self, id: &str) -> Value {
        self.admin(&format!("/v1/leads/{id}")).await
    }
}

async fn an_inbound_reply_needs_the_inbound_secret_and_never_the_write_key(s: Server) {
    let (_, lead) = s
        .call(
            Method::POST,
            "/v1/leads",
            Auth::Write(WRITE),
            &[],
            Some(json!({"name": "Lee", "email": "lee@client.example"})),
        )
        .await;
    let id = lead["lead_id"].as_str().unwrap().to_string();
    let reply = json!({"from": "Lee <lee@client.example>", "subject": "Re: your request", "text": "Call me at 5"});
    for how in [
        Signed::WriteKey,
        Signed::Nothing,
        Signed::BasicWrong,
        Signed::WrongSecret,
        Signed::Stale,
    ] {
        let (st, body) = s.inbound(&reply, how).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    }
    let v = s.lead_view(&id).await;
    assert!(
        v["replied_at"].is_null(),
        "a forged reply changes nothing: {v}"
    );
    let replied = |v: &Value| {
        v["log"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["kind"] == "replied")
            .count()
    };
    assert_eq!(replied(&v), 0);

    let (st, _) = s.inbound(&reply, Signed::Correct("delivery-1")).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let (st, _) = s.inbound(&reply, Signed::Correct("delivery-1")).await;
    assert_eq!(st, StatusCode::ACCEPTED, "a redelivery is accepted");
    let v = s.lead_view(&id).await;
    assert!(v["replied_at"].is_string());
    assert_eq!(replied(&v), 1, "and recorded once: {v}");
    let (st, _) = s.inbound(&reply, Signed::BasicSecret).await;
    assert_eq!(
        st,
        StatusCode::ACCEPTED,
        "the secret as the Basic password works too"
    );
    assert_eq!(replied(&s.lead_view(&id).await), 2);
    s.stop().await;
}

async fn a_write_key_sent_in_the_body_is_never_stored(s: Server) {
    let single =
        json!({"writeKey": WRITE, "userId": "u-wk", "event": "Viewed", "properties": {"a": 1}});
    let (st, _) = s
        .call(Method::POST, "/v1/track", Auth::None, &[], Some(single))
        .await;
    assert_eq!(st, StatusCode::OK);
    let batch = json!({"writeKey": WRITE, "batch": [
        {"type": "track", "userId": "u-wk", "event": "Batched", "writeKey": WRITE},
        {"type": "identify", "userId": "u-wk", "traits": {"plan": "pro"}}
    ]});
    let (st, _) = s
        .call(Method::POST, "/v1/batch", Auth::None, &[], Some(batch))
        .await;
    assert_eq!(st, StatusCode::OK);
    let c = s.admin("/v1/contacts?user_id=u-wk").await;
    let events = c["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    let text = serde_json::to_string(&c).unwrap();
    assert!(
        !text.contains(WRITE) && !text.contains("writeKey"),
        "{text}"
    );
    s.stop().await;
}

async fn a_corrupt_gzip_body_is_a_400_and_not_a_413(s: Server) {
    let r = s
        .http
        .post(format!("{}/v1/track", s.base))
        .basic_auth(WRITE, Some(""))
        .header("content-encoding", "gzip")
        .header("content-type", "application/json")
        .body(b"\x1f\x8b\x08\x00this is not deflate data at all".to_vec())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (status, field(&body)),
        (StatusCode::BAD_REQUEST, "body"),
        "{body}"
    );
    s.stop().await;
}

async fn a_revoked_key_is_refused_at_once_and_the_last_admin_key_is_kept(s: Server) {
    let a = Auth::Admin(ADMIN);
    let (st, made) = s
        .call(
            Method::POST,
            "/v1/admin/keys",
            a,
            &[],
            Some(json!({"kind": "admin", "label": "ops"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (key, id) = (
        made["key"].as_str().unwrap().to_string(),
        made["id"].as_str().unwrap().to_string(),
    );
    let (st, _) = s
        .call(Method::GET, "/v1/flows", Auth::Admin(&key), &[], None)
        .await;
    assert_eq!(st, StatusCode::OK, "a new key works at once");
    let (_, list) = s.call(Method::GET, "/v1/admin/keys", a, &[], None).await;
    let listed = list["keys"].as_array().unwrap();
    assert!(listed
        .iter()
        .any(|k| k["id"] == id.as_str() && k["label"] == "ops" && k["origin"] == "api"));
    assert!(
        !serde_json::to_string(&list).unwrap().contains(&key),
        "a listing never shows a key"
    );

    let (st, revoked) = s
        .call(
            Method::DELETE,
            &format!("/v1/admin/keys/{id}"),
            a,
            &[],
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(revoked["revoked_at"].is_string());
    let (st, _) = s
        .call(Method::GET, "/v1/flows", Auth::Admin(&key), &[], None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "refused at once");
    let (st, _) = s
        .call(Method::DELETE, "/v1/admin/keys/nope", a, &[], None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The configured admin key is the last live one: revoking it over the API would lock everyone out.
    let own = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "admin" && k["origin"] == "env")
        .unwrap();
    let (st, body) = s
        .call(
            Method::DELETE,
            &format!("/v1/admin/keys/{}", own["id"].as_str().unwrap()),
            a,
            &[],
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");

    // A write key revoked here is refused by another node on the same database within the cache's second.
    let other = common::start_on(&s.db_url, false, &config(), t0()).await;
    let (_, w) = s
        .call(
            Method::POST,
            "/v1/admin/keys",
            a,
            &[],
            Some(json!({"kind": "write"})),
        )
        .await;
    let (wk, wid) = (
        w["key"].as_str().unwrap().to_string(),
        w["id"].as_str().unwrap().to_string(),
    );
    let track = || json!({"userId": "u-r", "event": "Viewed"});
    let (st, _) = other
        .call(
            Method::POST,
            "/v1/track",
            Auth::Write(&wk),
            &[],
            Some(track()),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "the other node caches the key");
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/v1/admin/keys/{wid}"),
            a,
            &[],
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let revoked_at = std::time::Instant::now();
    loop {
        let (st, _) = other
            .call(
                Method::POST,
                "/v1/track",
                Auth::Write(&wk),
                &[],
                Some(track()),
            )
            .await;
        if st == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_millis(2_000),
            "the other node still accepts the key {:?} after the revocation",
            revoked_at.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    other.stop().await;
    s.stop().await;
}

async fn leads_are_limited_per_ip_and_per_recipient_and_acknowledgements_are_capped_per_day(
    s: Server,
) {
    let w = Auth::Write(WRITE);
    // Per recipient: 10 leads naming one address per hour; of those, 3 are acknowledged per day.
    for i in 0..10 {
        let (st, body) = s
            .call(
                Method::POST,
                "/v1/leads",
                w,
                &[],
                Some(json!({"email": "victim@client.example", "message": format!("spam {i}")})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "lead {i}: {body}");
    }
    let r = s
        .http
        .post(format!("{}/v1/leads", s.base))
        .basic_auth(WRITE, Some(""))
        .json(&json!({"email": "victim@client.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    let acks = s
        .messages_until("the acknowledgements", |m| {
            m.iter()
                .filter(|x| x["to"] == "victim@client.example")
                .count()
                >= 3
        })
        .await;
    let to_victim = acks
        .iter()
        .filter(|x| x["to"] == "victim@client.example")
        .count();
    assert_eq!(
        to_victim, 3,
        "three acknowledgements a day to one address, not ten"
    );
    let (_, c) = s
        .call(
            Method::GET,
            "/v1/contacts?email=victim%40client.example",
            Auth::Admin(ADMIN),
            &[],
            None,
        )
        .await;
    let leads = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "Lead Submitted")
        .count();
    assert_eq!(
        leads, 10,
        "every accepted lead is stored, acknowledged or not"
    );

    // Per IP: 60 leads a minute from one address (the 11 above included).
    let mut created = 11;
    loop {
        let (st, _) = s
            .call(
                Method::POST,
                "/v1/leads",
                w,
                &[],
                Some(json!({"email": format!("ip{created}@client.example")})),
            )
            .await;
        created += 1;
        if st == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(st, StatusCode::CREATED);
        assert!(created <= 60, "the per-IP limit holds");
    }
    assert_eq!(created, 61, "the 61st request of the minute is refused");
    s.advance(Duration::seconds(61));
    let (st, _) = s
        .call(
            Method::POST,
            "/v1/leads",
            w,
            &[],
            Some(json!({"email": "later@client.example"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "the next minute is a new window");
    s.stop().await;
}

async fn html_pages_send_a_strict_csp_no_referrer_and_keep_the_admin_key_out_of_storage(s: Server) {
    let (_, lead) = s
        .call(
            Method::POST,
            "/v1/leads",
            Auth::Write(WRITE),
            &[],
            Some(json!({"name": "<b>Lee</b>", "email": "lee@client.example"})),
        )
        .await;
    let alert = s
        .messages_until("the rep alert", |m| {
            m.iter().any(|x| x["to"] == "ann@example.com")
        })
        .await;
    let text = alert.iter().find(|x| x["to"] == "ann@example.com").unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string();
    let claim = text
        .split_whitespace()
        .find(|w| w.contains("/c/"))
        .expect("a claim link")
        .replace("http://127.0.0.1:0", &s.base);
    let form = s
        .http
        .post(format!("{}/f/contact", s.base))
        .form(&[("email", "f@client.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let form_headers = form.headers().clone();
    let form_body = form.text().await.unwrap();
    let mut pages = vec![(
        "/f/contact (thank you)".to_string(),
        form_headers,
        form_body,
    )];
    for url in [claim, format!("{}/u/x/y/z", s.base)] {
        let r = s.http.get(&url).send().await.unwrap();
        pages.push((url, r.headers().clone(), r.text().await.unwrap()));
    }
    for (url, h, body) in &pages {
        let csp = h["content-security-policy"].to_str().unwrap();
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{url}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{url}: {csp}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{url}");
        assert_eq!(h["x-frame-options"], "DENY", "{url}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{url}");
        // Nothing inline for the policy to block: no script without src, no style element or attribute.
        assert!(
            !body.contains("<script>") && !body.contains("<style") && !body.contains(" style="),
            "{url}: {body}"
        );
        assert!(
            !body.contains("<b>Lee</b>"),
            "{url}: the lead's name is escaped"
        );
    }
    let js = s
        .http
        .get(format!("{}/assets/app.js", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let js = js.text().await.unwrap();
    assert!(
        !js.contains("localStorage.setItem")
            && !js.contains("sessionStorage.setItem")
            && !js.contains("document.cookie")
    );
    let css = s
        .http
        .get(format!("{}/assets/pronto.css", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    let _ = lead;
    s.stop().await;
}
