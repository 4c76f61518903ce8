//! The HTTP API over real HTTP, against SQLite and PostgreSQL alike.

use pronto_domain::SystemClock;
use pronto_server::config::{FileConfig, Overrides, Settings};
use pronto_server::App;
use pronto_store::testing::TestDb;
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

const WRITE: &str = "test-write-key-0123456789";
const ADMIN: &str = "test-admin-key-0123456789";

const CONFIG: &str = r#"
[forms]
rate_limit_per_minute = 3
trust_forwarded_for = true

[[form]]
name = "contact"
honeypot = "website"

[[form]]
name = "quote"
redirect = "https://shop.example/thanks"
source = "quote form"
"#;

struct Server {
    base: String,
    http: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _db: TestDb,
}

async fn server(backend: &str) -> Server {
    let db = TestDb::of(backend).await;
    let overrides = Overrides {
        database_url: Some(db.url.clone()),
        listen: Some("127.0.0.1:0".into()),
        write_key: Some(WRITE.into()),
        admin_key: Some(ADMIN.into()),
        ..Default::default()
    };
    let settings = Settings::resolve(
        FileConfig::parse(CONFIG, "test").unwrap(),
        overrides,
        "test".into(),
    )
    .unwrap();
    let app = App::build(settings.clone(), Arc::new(SystemClock))
        .await
        .expect("server builds");
    let listener = pronto_server::app::bind(settings.listen).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Server {
        base,
        http,
        stop: Some(stop),
        task: Some(task),
        _db: db,
    }
}

impl Server {
    fn post(&self, path: &str) -> RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .basic_auth(WRITE, Some(""))
    }
    fn anon_post(&self, path: &str) -> RequestBuilder {
        self.http.post(format!("{}{path}", self.base))
    }
    fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(format!("{}{path}", self.base))
    }
    fn admin(&self, path: &str) -> RequestBuilder {
        self.get(path).bearer_auth(ADMIN)
    }
    /// The contact found by one identifier, as the admin API answers it.
    async fn contact(&self, query: &str) -> (StatusCode, Value) {
        let res = self
            .admin(&format!("/v1/contacts?{query}"))
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }
    /// Stops gracefully; the database outlives the server until the returned guard drops.
    async fn stop(mut self) -> TestDb {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
        self._db
    }
}

async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn field_names(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

pronto_store::for_each_backend!(server;
    every_segment_message_type_is_accepted_and_lands_on_one_contact_timeline,
    the_write_key_may_be_basic_auth_or_in_the_body_and_nothing_else_opens_the_door,
    bad_input_gets_a_4xx_that_names_the_field_and_stores_nothing,
    a_batch_with_one_bad_message_is_refused_whole,
    a_retried_message_or_lead_is_a_no_op_that_answers_the_same,
    a_json_lead_is_normalised_and_found_by_email_or_phone,
    an_html_form_post_redirects_drops_bots_and_is_rate_limited_per_ip,
    an_anonymous_cart_identified_later_merges_and_the_old_id_still_answers,
    the_timeline_is_paginated_newest_first,
    gzip_bodies_are_accepted,
    ops_endpoints_report_health_readiness_and_metrics,
    every_route_in_the_openapi_document_exists,
    no_garbage_input_makes_the_server_answer_5xx,
    shutdown_finishes_in_flight_requests_and_everything_accepted_is_stored,
);

async fn every_segment_message_type_is_accepted_and_lands_on_one_contact_timeline(s: Server) {
    let cases = [
        (
            "/v1/identify",
            json!({"userId": "u-1", "anonymousId": "a-1", "traits": {"email": "Ann@Shop.example", "name": "Ann"}}),
        ),
        (
            "/v1/track",
            json!({"userId": "u-1", "event": "Checkout Started", "properties": {"checkout_id": "k1", "value": 30, "currency": "USD", "products": [{"product_id": "p", "price": 15, "quantity": 2}]}}),
        ),
        ("/v1/page", json!({"anonymousId": "a-1", "name": "Cart"})),
        ("/v1/screen", json!({"userId": "u-1", "name": "Home"})),
        (
            "/v1/group",
            json!({"userId": "u-1", "groupId": "acme", "traits": {"plan": "gold"}}),
        ),
        ("/v1/alias", json!({"userId": "u-1", "previousId": "a-0"})),
    ];
    for (path, body) in &cases {
        let (status, answer) = send(s.post(path).json(body)).await;
        assert_eq!(
            (status, &answer),
            (StatusCode::OK, &json!({"success": true})),
            "{path}"
        );
    }
    let (status, c) = s.contact("email=ann%40shop.example").await;
    assert_eq!(status, StatusCode::OK);
    let types: Vec<&str> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec!["alias", "group", "screen", "page", "track", "identify"],
        "newest first"
    );
    assert_eq!(c["traits"]["name"], "Ann");
    assert_eq!(c["events"][4]["payload"], cases[1].1, "stored as sent");
    assert!(c["events"][0]["received_at"].is_string());
    s.stop().await;
}

async fn the_write_key_may_be_basic_auth_or_in_the_body_and_nothing_else_opens_the_door(s: Server) {
    let ev = json!({"userId": "k", "event": "X"});
    let with_body_key = json!({"userId": "k", "event": "X", "writeKey": WRITE});
    let cases: Vec<(&str, RequestBuilder, StatusCode)> = vec![
        ("basic auth", s.post("/v1/track").json(&ev), StatusCode::OK),
        (
            "writeKey in body",
            s.anon_post("/v1/track").json(&with_body_key),
            StatusCode::OK,
        ),
        (
            "no key",
            s.anon_post("/v1/track").json(&ev),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "unknown key",
            s.anon_post("/v1/track")
                .basic_auth("nope", Some(""))
                .json(&ev),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "admin key as write key",
            s.anon_post("/v1/track")
                .basic_auth(ADMIN, Some(""))
                .json(&ev),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "write key on admin API",
            s.get("/v1/contacts?user_id=k").bearer_auth(WRITE),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no key on admin API",
            s.get("/v1/contacts?user_id=k"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "admin key on admin API",
            s.admin("/v1/contacts?user_id=k"),
            StatusCode::OK,
        ),
    ];
    for (name, req, want) in cases {
        let (status, body) = send(req).await;
        assert_eq!(status, want, "{name}: {body}");
        if want == StatusCode::UNAUTHORIZED {
            assert_eq!(body["error"], "unauthorized", "{name}");
            assert!(body["message"].as_str().unwrap().contains("key"), "{name}");
        }
    }
    s.stop().await;
}

async fn bad_input_gets_a_4xx_that_names_the_field_and_stores_nothing(s: Server) {
    let big = "x".repeat(33 * 1024);
    let cases: Vec<(&str, &str, String, StatusCode, &str)> = vec![
        ("malformed JSON", "/v1/track", "{\"userId\": ".into(), StatusCode::BAD_REQUEST, "body"),
        ("not an object", "/v1/track", "[1]".into(), StatusCode::BAD_REQUEST, ""),
        ("missing event", "/v1/track", json!({"userId": "bad-1"}).to_string(), StatusCode::BAD_REQUEST, "event"),
        ("missing ids", "/v1/identify", json!({"traits": {}}).to_string(), StatusCode::BAD_REQUEST, "userId"),
        ("wrong type", "/v1/track", json!({"userId": "bad-1", "event": 7}).to_string(), StatusCode::BAD_REQUEST, "event"),
        ("bad e-commerce type", "/v1/track",
            json!({"userId": "bad-1", "event": "Order Completed", "properties": {"revenue": "lots"}}).to_string(),
            StatusCode::BAD_REQUEST, "properties.revenue"),
        ("bad timestamp", "/v1/page", json!({"userId": "bad-1", "timestamp": "noon"}).to_string(), StatusCode::BAD_REQUEST, "timestamp"),
        ("oversized event", "/v1/track", json!({"userId": "bad-1", "event": "X", "properties": {"p": big}}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE, "body"),
        ("oversized batch", "/v1/batch", format!("{{\"batch\": [\"{}\"]}}", "y".repeat(600 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE, "body"),
        ("lead without contact point", "/v1/leads", json!({"name": "Bad One"}).to_string(), StatusCode::BAD_REQUEST, "email"),
        ("lead with bad phone", "/v1/leads", json!({"phone": "12"}).to_string(), StatusCode::BAD_REQUEST, "phone"),
    ];
    for (name, path, body, want, field) in cases {
        let (status, answer) = send(
            s.post(path)
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_eq!(status, want, "{name}: {answer}");
        assert!(
            field_names(&answer).contains(&field.to_string()),
            "{name}: {answer}"
        );
        assert!(answer["message"].is_string(), "{name}");
    }
    let (status, _) = s.contact("user_id=bad-1").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing of the refused requests was stored"
    );
    let (status, body) = send(s.admin("/v1/contacts?email=not-an-email")).await;
    assert_eq!(
        (status, field_names(&body)),
        (StatusCode::BAD_REQUEST, vec!["email".to_string()])
    );
    let (status, body) = send(s.admin("/v1/contacts/not-a-uuid")).await;
    assert_eq!(
        (status, field_names(&body)),
        (StatusCode::BAD_REQUEST, vec!["id".to_string()])
    );
    let (status, body) =
        send(s.admin("/v1/contacts/0195f6f0-0000-7000-8000-000000000000?limit=lots")).await;
    assert_eq!(
        (status, field_names(&body)),
        (StatusCode::BAD_REQUEST, vec!["query".to_string()])
    );
    s.stop().await;
}

async fn a_batch_with_one_bad_message_is_refused_whole(s: Server) {
    let batch = json!({"batch": [
        {"type": "track", "event": "Product Added", "anonymousId": "batch-good", "messageId": "b-1"},
        {"type": "track", "anonymousId": "batch-good", "messageId": "b-2"},
        {"type": "teleport", "anonymousId": "batch-good"},
    ]});
    let (status, body) = send(s.post("/v1/batch").json(&batch)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(field_names(&body), vec!["batch[1].event", "batch[2].type"]);
    assert_eq!(
        s.contact("anonymous_id=batch-good").await.0,
        StatusCode::NOT_FOUND,
        "the good message was not stored either"
    );

    let fixed = json!({"batch": [
        {"type": "track", "event": "Product Added", "anonymousId": "batch-good", "messageId": "b-1"},
        {"type": "track", "event": "Cart Viewed", "anonymousId": "batch-good", "messageId": "b-2"},
    ], "sentAt": "2026-11-24T12:00:00Z"});
    assert_eq!(
        send(s.post("/v1/batch").json(&fixed)).await.0,
        StatusCode::OK
    );
    let (_, c) = s.contact("anonymous_id=batch-good").await;
    assert_eq!(c["events"].as_array().unwrap().len(), 2);
    s.stop().await;
}

async fn a_retried_message_or_lead_is_a_no_op_that_answers_the_same(s: Server) {
    let ev = json!({"anonymousId": "retry-1", "event": "Checkout Started", "messageId": "same-id"});
    for _ in 0..3 {
        assert_eq!(
            send(s.post("/v1/track").json(&ev)).await,
            (StatusCode::OK, json!({"success": true}))
        );
    }
    let (_, c) = s.contact("anonymous_id=retry-1").await;
    assert_eq!(c["events"].as_array().unwrap().len(), 1);

    let lead = json!({"email": "retry@lead.example", "name": "Re Try"});
    let first = send(
        s.post("/v1/leads")
            .header("Idempotency-Key", "lead-42")
            .json(&lead),
    )
    .await;
    let again = send(
        s.post("/v1/leads")
            .header("Idempotency-Key", "lead-42")
            .json(&lead),
    )
    .await;
    assert_eq!(first.0, StatusCode::CREATED);
    assert_eq!(again.0, StatusCode::OK);
    for k in ["lead_id", "contact_id", "event_id"] {
        assert_eq!(first.1[k], again.1[k], "{k}");
    }
    assert_eq!(again.1["duplicate"], true);
    s.stop().await;
}

async fn a_json_lead_is_normalised_and_found_by_email_or_phone(s: Server) {
    let lead = json!({"first_name": "Kim", "last_name": "Ode", "email": " KIM@Ode.example ", "phone": "(415) 555-2671",
                      "company": "Ode Ltd", "message": "Need a quote", "source": "ads", "budget": "5k"});
    let (status, body) = send(s.post("/v1/leads").json(&lead)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, by_phone) = s.contact("phone=%2B14155552671").await;
    let (_, by_email) = s.contact("email=kim%40ode.example").await;
    assert_eq!(by_phone["id"], body["contact_id"]);
    assert_eq!(by_email["id"], body["contact_id"]);
    assert_eq!(
        by_email["traits"],
        json!({"name": "Kim Ode", "email": "kim@ode.example", "phone": "+14155552671", "company": "Ode Ltd"})
    );
    let ev = &by_email["events"][0];
    assert_eq!(ev["name"], "Lead Submitted");
    assert_eq!(ev["payload"]["properties"]["fields"]["budget"], "5k");
    assert_eq!(ev["payload"]["properties"]["source"], "ads");
    s.stop().await;
}

async fn an_html_form_post_redirects_drops_bots_and_is_rate_limited_per_ip(s: Server) {
    let form = |ip: &str, path: &str, body: &str| {
        s.anon_post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-forwarded-for", ip)
            .body(body.to_string())
    };
    let res = form(
        "10.0.0.1",
        "/f/contact",
        "name=Lu+Ma&email=lu%40ma.example&message=Call+me&website=",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Thank you"));
    let (_, c) = s.contact("email=lu%40ma.example").await;
    assert_eq!(c["events"][0]["payload"]["properties"]["form"], "contact");
    assert_eq!(
        c["events"][0]["payload"]["properties"]["message"],
        "Call me"
    );

    // A client asking for JSON learns the lead's id (the same form, the same path).
    let (status, body) = send(
        form("10.0.0.7", "/f/quote", "name=Jo+Id&email=jo%40ma.example")
            .header("accept", "application/json"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let lead_id = body["lead_id"].as_str().expect("the lead's id").to_string();
    let (_, jo) = s.contact("email=jo%40ma.example").await;
    assert_eq!(
        jo["events"][0]["payload"]["properties"]["lead_id"],
        lead_id.as_str()
    );

    let res = form("10.0.0.2", "/f/quote", "email=q%40ma.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "https://shop.example/thanks");
    let (_, q) = s.contact("email=q%40ma.example").await;
    assert_eq!(
        q["events"][0]["payload"]["properties"]["source"],
        "quote form"
    );

    let res = form(
        "10.0.0.3",
        "/f/contact",
        "email=bot%40spam.example&website=http://spam",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "a bot sees success");
    assert_eq!(
        s.contact("email=bot%40spam.example").await.0,
        StatusCode::NOT_FOUND,
        "and is dropped"
    );

    let res = form("10.0.0.4", "/f/contact", "email=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text().await.unwrap().contains("<b>email</b>"),
        "an HTML page names the field"
    );
    let (status, body) =
        send(form("10.0.0.4", "/f/contact", "email=nope").header("accept", "application/json"))
            .await;
    assert_eq!(
        (status, field_names(&body)),
        (StatusCode::BAD_REQUEST, vec!["email".to_string()])
    );

    assert_eq!(
        form("10.0.0.5", "/f/unknown", "email=a%40b.co")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    // 3 posts per minute per IP (test config); the 10.0.0.4 client has used 2.
    assert_eq!(
        form("10.0.0.4", "/f/contact", "email=ok%40ma.example")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let limited = form("10.0.0.4", "/f/contact", "email=ok2%40ma.example")
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(
        form("10.0.0.6", "/f/contact", "email=ok3%40ma.example")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "other IPs are unaffected"
    );
    s.stop().await;
}

async fn an_anonymous_cart_identified_later_merges_and_the_old_id_still_answers(s: Server) {
    let cart = json!({"anonymousId": "anon-cart", "event": "Checkout Started", "properties": {"checkout_id": "c-9", "value": 99}});
    assert_eq!(
        send(s.post("/v1/track").json(&cart)).await.0,
        StatusCode::OK
    );
    let (_, anon) = s.contact("anonymous_id=anon-cart").await;
    let lead = json!({"email": "buyer@shop.example", "name": "Buyer"});
    assert_eq!(
        send(s.post("/v1/leads").json(&lead)).await.0,
        StatusCode::CREATED
    );
    let identify = json!({"anonymousId": "anon-cart", "userId": "cust-9", "traits": {"email": "buyer@shop.example"}});
    assert_eq!(
        send(s.post("/v1/identify").json(&identify)).await.0,
        StatusCode::OK
    );

    let (_, merged) = s.contact("user_id=cust-9").await;
    assert_eq!(merged["merged_from"].as_array().unwrap().len(), 1);
    let names: Vec<&str> = merged["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        names.contains(&"Checkout Started") && names.contains(&"Lead Submitted"),
        "{names:?}"
    );
    let (status, old) =
        send(s.admin(&format!("/v1/contacts/{}", anon["id"].as_str().unwrap()))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(old["id"], merged["id"]);
    s.stop().await;
}

async fn the_timeline_is_paginated_newest_first(s: Server) {
    let batch: Vec<Value> = (0..5)
        .map(|i| json!({"type": "track", "userId": "pager", "event": format!("E{i}")}))
        .collect();
    assert_eq!(
        send(s.post("/v1/batch").json(&json!({"batch": batch})))
            .await
            .0,
        StatusCode::OK
    );
    let (_, p1) = s.contact("user_id=pager&limit=2").await;
    let next = p1["next_before"].as_i64().unwrap();
    let (_, p2) = send(s.admin(&format!(
        "/v1/contacts/{}?limit=2&before={next}",
        p1["id"].as_str().unwrap()
    )))
    .await;
    let (_, p3) = send(s.admin(&format!(
        "/v1/contacts/{}?limit=2&before={}",
        p1["id"].as_str().unwrap(),
        p2["next_before"]
    )))
    .await;
    let names: Vec<&str> = [&p1, &p2, &p3]
        .iter()
        .flat_map(|p| {
            p["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap())
        })
        .collect();
    assert_eq!(names, vec!["E4", "E3", "E2", "E1", "E0"]);
    assert!(p3["next_before"].is_null());
    s.stop().await;
}

async fn gzip_bodies_are_accepted(s: Server) {
    use std::io::Write;
    let body = json!({"batch": [{"type": "track", "userId": "gz", "event": "Zipped"}]}).to_string();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(body.as_bytes()).unwrap();
    let zipped = enc.finish().unwrap();
    let (status, answer) = send(
        s.post("/v1/batch")
            .header("content-encoding", "gzip")
            .header("content-type", "application/json")
            .body(zipped),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(s.contact("user_id=gz").await.0, StatusCode::OK);
    let (status, answer) = send(
        s.post("/v1/batch")
            .header("content-encoding", "br")
            .body(body),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_encoding")
        )
    );
    s.stop().await;
}

async fn ops_endpoints_report_health_readiness_and_metrics(s: Server) {
    assert_eq!(send(s.get("/healthz")).await.0, StatusCode::OK);
    let (status, ready) = send(s.get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ready["backend"] == "sqlite" || ready["backend"] == "postgres");
    send(
        s.post("/v1/track")
            .json(&json!({"userId": "m", "event": "Metered"})),
    )
    .await;
    let text = s
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "http_requests_total{method=\"POST\",route=\"/v1/track\",status=\"200\"}",
        "http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/track\"",
        "pronto_events_ingested_total{type=\"track\"}",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    let (status, body) = send(s.get("/no/such/route")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    s.stop().await;
}

async fn every_route_in_the_openapi_document_exists(s: Server) {
    let (_, doc) = send(s.get("/openapi.json")).await;
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        "/v1/identify",
        "/v1/track",
        "/v1/page",
        "/v1/screen",
        "/v1/group",
        "/v1/alias",
        "/v1/batch",
        "/v1/leads",
        "/f/{form}",
        "/v1/contacts",
        "/v1/contacts/{id}",
        "/v1/flows",
        "/v1/runs/{id}",
        "/v1/messages",
        "/v1/admin/reload",
        "/v1/admin/keys",
        "/v1/admin/keys/{id}",
        "/v1/admin/quarantine",
        "/v1/contacts/{id}/export",
        "/v1/suppressions",
        "/v1/suppressions/import",
        "/v1/suppressions/{medium}/{address}",
        "/u/{workspace}/{contact}/{token}",
        "/r/{workspace}/{message}/{token}",
        "/v1/reps",
        "/v1/reps/{id}",
        "/v1/leads/{id}",
        "/v1/leads/{id}/claim",
        "/v1/leads/{id}/attempts",
        "/v1/tasks",
        "/c/{workspace}/{lead}/{rep}/{token}",
        "/v1/reports/speed-to-lead",
        "/v1/reports/flows",
        "/v1/admin/experiments/promote",
        "/v1/inbound/sms",
        "/v1/inbound/voice",
        "/v1/inbound/email",
        "/v1/inbound/bounces",
        "/v1/inbound/events/sendgrid",
        "/v1/inbound/events/mailgun",
        "/v1/erasures",
        "/v1/webhooks/shopify",
        "/v1/webhooks/woocommerce",
        "/v1/webhooks/unmapped",
        "/",
        "/assets/pronto.css",
        "/assets/app.js",
        "/app",
        "/app/sign-in",
        "/app/sign-in/admin-key",
        "/app/sign-in/{token}",
        "/app/sign-out",
        "/app/inbox",
        "/app/leads/{id}",
        "/app/leads/{id}/claim",
        "/app/leads/{id}/calls",
        "/app/leads/{id}/reassign",
        "/app/away",
        "/app/board",
        "/app/board.csv",
        "/app/live",
        "/app/sessions",
        "/app/sessions/{id}/revoke",
        "/app/recovery",
        "/app/messages",
        "/app/messages/{id}",
        "/app/messages/{id}/html",
        "/app/contacts/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ];
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
    documented.sort();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(documented, want);
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let url = format!(
                "{}{}",
                s.base,
                path.replace("{form}", "contact")
                    .replace("{id}", "0195f6f0-0000-7000-8000-000000000000")
                    .replace("{workspace}", "w")
                    .replace("{contact}", "c")
                    .replace("{token}", "t")
                    .replace("{lead}", "l")
                    .replace("{rep}", "r")
                    .replace("{message}", "m")
            );
            let req = match method.as_str() {
                "get" => s.http.get(&url),
                "post" => s.http.post(&url),
                "patch" => s.http.patch(&url),
                "delete" => s.http.delete(&url),
                other => panic!("unexpected method {other}"),
            };
            let body = req.send().await.unwrap().text().await.unwrap();
            assert!(
                !body.contains("no such route"),
                "{method} {path} is documented but not routed"
            );
        }
    }
    assert!(doc["components"]["securitySchemes"]["writeKey"].is_object());
    s.stop().await;
}

async fn no_garbage_input_makes_the_server_answer_5xx(s: Server) {
    let bodies: Vec<Vec<u8>> = vec![
        vec![],
        b"null".to_vec(),
        b"\xff\xfe\x00garbage".to_vec(),
        b"{\"batch\": [null, 1, \"x\", [], {}]}".to_vec(),
        b"{\"userId\": 1e400, \"event\": \"x\"}".to_vec(),
        b"{\"userId\": \"u\", \"event\": \"x\", \"properties\": {\"products\": [{\"price\": {}}]}}"
            .to_vec(),
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        b"{\"userId\": \"\\ud800\", \"event\": \"x\"}".to_vec(),
        b"email=%ZZ&&&==".to_vec(),
        b"{\"userId\": \"nul\\u0000\", \"event\": \"x\", \"traits\": {\"k\\u0000\": 1}}".to_vec(),
        b"name=a%00b&email=nul%40x.io".to_vec(),
    ];
    let paths = [
        "/v1/track",
        "/v1/identify",
        "/v1/page",
        "/v1/screen",
        "/v1/group",
        "/v1/alias",
        "/v1/batch",
        "/v1/leads",
        "/f/contact",
    ];
    let mut seed = 0x2545_f491_u64;
    let mut random = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut all = bodies.clone();
    for _ in 0..40 {
        let len = (random() % 200) as usize;
        let alphabet = b"{}[]\":,0aZ\\ \x00\xff";
        all.push(
            (0..len)
                .map(|_| alphabet[(random() % alphabet.len() as u64) as usize])
                .collect(),
        );
    }
    for path in paths {
        for body in &all {
            let res = s
                .post(path)
                .header(
                    "x-forwarded-for",
                    format!("10.9.{}.{}", random() % 250, random() % 250),
                )
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert!(
                res.status().as_u16() < 500,
                "{path} answered {} to {:?}",
                res.status(),
                String::from_utf8_lossy(body)
            );
        }
    }
    s.stop().await;
}

async fn shutdown_finishes_in_flight_requests_and_everything_accepted_is_stored(s: Server) {
    let mut sends = Vec::new();
    for i in 0..50 {
        let req = s
            .post("/v1/track")
            .json(&json!({"userId": "drain", "event": "Tick", "messageId": format!("t-{i}")}));
        sends.push(tokio::spawn(
            async move { req.send().await.map(|r| r.status()) },
        ));
    }
    tokio::task::yield_now().await;
    let db = s.stop().await;
    let mut accepted = 0;
    for t in sends {
        if let Ok(Ok(StatusCode::OK)) = t.await {
            accepted += 1;
        }
    }
    let store = pronto_store::connect(&db.url, pronto_store::Options::default())
        .await
        .unwrap();
    let ws = store.default_workspace().await.unwrap().id;
    let stored = match store
        .find_contact(ws, &pronto_domain::Identity::user_id("drain"))
        .await
        .unwrap()
    {
        Some(c) => store.timeline(ws, c, None, 100).await.unwrap().len(),
        None => 0,
    };
    assert_eq!(stored, accepted, "every 200 is stored, and nothing else");
    store.close().await;
}
