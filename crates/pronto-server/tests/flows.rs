//! The shipped flows end to end, over HTTP, on SQLite and PostgreSQL, with emails delivered over a real SMTP
//! conversation ([`SmtpSink`]). Time is a [`ManualClock`], and no background worker runs: a test moves the
//! clock past a wait, then runs the scheduler's and the delivery worker's steps until both are idle
//! ([`Server::settle`]), so "nothing was sent" is checked after the workers had every chance, not after a sleep.

use chrono::{DateTime, Duration, Utc};
use pronto_server::config::EXAMPLE_CONFIG;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

mod common;
use common::Server;

/// An experiment as a flow's config writes it, checked (to know which group a key lands in).
fn experiment(id: &str, holdout: &str, variants: &[&str]) -> pronto_domain::experiment::Experiment {
    use pronto_domain::experiment::{Experiment, ExperimentConfig, VariantConfig};
    Experiment::check(&ExperimentConfig {
        id: id.into(),
        holdout: holdout.into(),
        variants: variants
            .iter()
            .map(|id| VariantConfig {
                id: (*id).into(),
                weight: None,
            })
            .collect(),
        auto_promote: None,
    })
    .unwrap()
}

async fn start(backend: &str, smtp: bool) -> Server {
    common::start_stepped(backend, smtp, EXAMPLE_CONFIG, t0()).await
}

async fn with_smtp(backend: &str) -> Server {
    start(backend, true).await
}

async fn without_smtp(backend: &str) -> Server {
    start(backend, false).await
}

fn checkout(id: &str, who: &str, first_name: &str) -> Value {
    json!({
        "userId": who, "event": "Checkout Started", "timestamp": t0().to_rfc3339(),
        "properties": {
            "checkout_id": id, "value": 54.5, "currency": "EUR",
            "checkout_url": format!("https://shop.example/checkout/{id}"),
            "products": [
                {"product_id": "p1", "name": "Mug", "variant": "blue", "price": 12.25, "quantity": 2,
                 "image_url": "https://shop.example/mug.png"},
                {"product_id": "p2", "name": "Tea <Earl Grey>", "price": 30, "quantity": 1}
            ]
        },
        "context": {"traits": {"first_name": first_name}}
    })
}

mod over_smtp {
    use super::*;
    pronto_store::for_each_backend!(with_smtp;
        a_checkout_gets_its_recovery_email_with_the_exact_cart_and_a_buyer_gets_nothing,
        an_smtp_server_that_refuses_for_a_while_gets_every_message_once,
        the_unsubscribe_link_stops_further_flows,
        a_mailbox_that_does_not_exist_is_tried_once_then_skipped_for_flows_and_acknowledgements,
        an_export_holds_everything_kept_on_the_person_and_nothing_of_anyone_else,
    );
}

/// The shipped config signing with an Ed25519 and an RSA key for the From domain (the channel's tests check
/// these signatures with dkimpy; here, that every email the server sends carries them).
async fn with_dkim(backend: &str) -> Server {
    let key = |f: &str| {
        format!(
            "{}/../pronto-channels/tests/fixtures/dkim/{f}",
            env!("CARGO_MANIFEST_DIR")
        )
    };
    let config = format!(
        "{EXAMPLE_CONFIG}\n[[smtp.dkim]]\ndomain = \"example.com\"\nselector = \"ed\"\nkey_file = \"{}\"\n\
         [[smtp.dkim]]\ndomain = \"example.com\"\nselector = \"rsa\"\nkey_file = \"{}\"\n",
        key("ed25519.pem"),
        key("rsa-pkcs8.pem")
    );
    common::start_stepped(backend, true, &config, t0()).await
}

mod signed {
    use super::*;
    pronto_store::for_each_backend!(with_dkim;
        a_recovery_email_carries_a_signature_from_each_configured_key,
    );
}

async fn a_recovery_email_carries_a_signature_from_each_configured_key(s: Server) {
    s.identify(json!({"userId": "ann", "traits": {"email": "ann@example.com"}}))
        .await;
    s.track(checkout("chk-1", "ann", "Ann")).await;
    s.advance_and_settle(Duration::minutes(60)).await;
    s.messages_until("the reminder is sent", |m| {
        m.iter().any(|x| x["state"] == "sent")
    })
    .await;
    let mails = s.sink.as_ref().unwrap().received();
    assert_eq!(mails.len(), 1);
    let headers = &mails[0][..mails[0].find("\n\n").unwrap()];
    let signatures: Vec<String> = headers
        .replace("\n ", " ")
        .lines()
        .filter(|l| l.starts_with("DKIM-Signature:"))
        .map(str::to_string)
        .collect();
    assert_eq!(signatures.len(), 2, "{headers}");
    for (sig, want) in signatures.iter().zip([
        "a=ed25519-sha256; d=example.com; s=ed;",
        "a=rsa-sha256; d=example.com; s=rsa;",
    ]) {
        assert!(sig.contains(want), "{sig}");
        assert!(sig.contains("list-unsubscribe-post"), "{sig}");
    }
}

/// The shipped config with an inbound-mail secret, which bounces and complaints are posted with.
async fn with_inbound(backend: &str) -> Server {
    let config = format!("{EXAMPLE_CONFIG}\n[inbound]\nemail_secret = \"{INBOUND_SECRET}\"\n");
    common::start_stepped(backend, false, &config, t0()).await
}

const INBOUND_SECRET: &str = "bounces-forwarder-secret-0001";

mod by_mail {
    use super::*;
    pronto_store::for_each_backend!(with_inbound;
        bounces_and_complaints_posted_by_a_forwarder_list_their_addresses_and_a_complaint_unsubscribes,
    );
}

/// The shipped config taking SendGrid's and Mailgun's event webhooks, with the keys of their SDKs' published
/// test vectors (tests/fixtures/providers).
async fn with_providers(backend: &str) -> Server {
    let sendgrid = provider_fixture_json("sendgrid/signed-vector.json");
    let mailgun = provider_fixture_json("mailgun/signature-vector.json");
    let config = format!(
        "{EXAMPLE_CONFIG}\n[inbound]\nsendgrid_public_key = \"{}\"\nmailgun_signing_key = \"{}\"\n",
        sendgrid["public_key"].as_str().unwrap(),
        mailgun["signing_key"].as_str().unwrap()
    );
    common::start_stepped(backend, false, &config, t0()).await
}

fn provider_fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/fixtures/providers/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn provider_fixture_json(name: &str) -> Value {
    serde_json::from_slice(&provider_fixture(name)).unwrap()
}

mod providers {
    use super::*;
    pronto_store::for_each_backend!(with_providers;
        sendgrid_and_mailgun_events_are_checked_by_their_signatures_then_list_and_unsubscribe,
    );
}

async fn sendgrid_and_mailgun_events_are_checked_by_their_signatures_then_list_and_unsubscribe(
    s: Server,
) {
    // SendGrid's published vector: `dropped` for hello@world.com, an address SendGrid saw bounce.
    let vector = provider_fixture_json("sendgrid/signed-vector.json");
    let body = provider_fixture("sendgrid/signed-vector.payload.bin");
    let sendgrid = |body: Vec<u8>, signature: &str| {
        s.http
            .post(format!("{}/v1/inbound/events/sendgrid", s.base))
            .header("content-type", "application/json")
            .header(
                "X-Twilio-Email-Event-Webhook-Timestamp",
                vector["timestamp"].as_str().unwrap(),
            )
            .header("X-Twilio-Email-Event-Webhook-Signature", signature)
            .body(body)
            .send()
    };
    let signature = vector["signature"].as_str().unwrap();
    let forged = String::from_utf8(body.clone())
        .unwrap()
        .replace("hello@world.com", "ann@example.com");
    for (body, sig) in [
        (forged.into_bytes(), signature),
        (
            body.clone(),
            vector["negative"]["bad_signature"].as_str().unwrap(),
        ),
    ] {
        let r = sendgrid(body, sig).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let err: Value = r.json().await.unwrap();
        assert_eq!(err["errors"][0]["field"], "sendgrid signature", "{err}");
    }
    assert_eq!(s.admin("/v1/suppressions").await["suppressions"], json!([]));
    let r = sendgrid(body, signature).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["events"], 1, "{got}");
    assert_eq!(got["listed"], json!(["hello@world.com"]), "{got}");
    assert_eq!(
        got["matched"],
        json!([]),
        "SendGrid's own message is not one of ours"
    );

    // Mailgun signs the timestamp and token, not the event: the SDK's published signature opens the door
    // for the documented events. A permanent failure of a recovery email pronto sent to Ann is matched back
    // to the flow and step that sent it by its Message-ID.
    s.identify(json!({"userId": "ann", "traits": {"email": "ann@example.com"}}))
        .await;
    s.identify(json!({"userId": "foo", "traits": {"email": "foo@example.com"}}))
        .await;
    s.track(checkout("chk-1", "ann", "Ann")).await;
    s.advance_and_settle(Duration::minutes(60)).await;
    let sent = s
        .messages_until("the reminder is in the dev mailbox", |m| {
            m.iter().any(|x| x["state"] == "sent")
        })
        .await;
    let key = sent[0]["idempotency_key"].as_str().unwrap().to_string();
    // The SDK's published signature (2014) is stale now; later requests are signed as Mailgun documents it
    // (hex HMAC-SHA256 of timestamp + token under the signing key), at the server's now.
    let sig = provider_fixture_json("mailgun/signature-vector.json");
    let published = |event: Value| {
        json!({
            "signature": {"timestamp": sig["timestamp"], "token": sig["token"], "signature": sig["signature"]},
            "event-data": event,
        })
    };
    let tokens = std::sync::atomic::AtomicUsize::new(0);
    let signed = |event: Value| {
        use hmac::Mac;
        let timestamp = pronto_domain::Clock::now(&*s.clock).timestamp().to_string();
        let token = format!(
            "pronto-test-token-{}",
            tokens.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(
            sig["signing_key"].as_str().unwrap().as_bytes(),
        )
        .unwrap();
        mac.update(format!("{timestamp}{token}").as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        json!({
            "signature": {"timestamp": timestamp, "token": token, "signature": hex},
            "event-data": event,
        })
    };
    let mut failed = provider_fixture_json("mailgun/failed-permanent.json");
    failed["recipient"] = json!("ann@example.com");
    failed["message"]["headers"]["message-id"] = json!(format!("{key}@example.com"));
    let complained: Value = serde_json::from_str(
        &String::from_utf8(provider_fixture("mailgun/complained.rst-snippet.txt"))
            .unwrap()
            .replace("},\n    }", "}\n    }"),
    )
    .unwrap();
    let mailgun = |body: Value| {
        s.http
            .post(format!("{}/v1/inbound/events/mailgun", s.base))
            .json(&body)
            .send()
    };
    let mut wrong = signed(failed.clone());
    wrong["signature"]["token"] = sig["negative"]["token"].clone();
    let stale = published(failed.clone());
    for (body, why) in [(wrong, "does not match"), (stale, "more than 15 minutes")] {
        let r = mailgun(body).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let err: Value = r.json().await.unwrap();
        assert!(
            err["errors"][0]["message"].as_str().unwrap().contains(why),
            "{err}"
        );
    }
    let once = signed(failed);
    let r = mailgun(once.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["listed"], json!(["ann@example.com"]), "{got}");
    assert_eq!(got["matched"][0]["flow"], "checkout-recovery", "{got}");
    assert_eq!(got["matched"][0]["id"], sent[0]["id"], "{got}");
    assert_eq!(got["matched"][0]["step"], sent[0]["step"], "{got}");
    // The same signature again is a replay (Mailgun signs no body: a signature seen once could carry any).
    let r = mailgun(once).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = mailgun(signed(complained)).await.unwrap();
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["listed"], json!(["foo@example.com"]), "{got}");
    assert_eq!(got["unsubscribed"], 1, "{got}");
    let complainer = s.admin("/v1/contacts?email=foo@example.com").await;
    assert_eq!(complainer["traits"]["unsubscribed"], true, "{complainer}");
    // The documented temporary failure (Mailgun retries it) changes nothing.
    let r = mailgun(signed(provider_fixture_json(
        "mailgun/failed-temporary.json",
    )))
    .await
    .unwrap();
    let got: Value = r.json().await.unwrap();
    assert_eq!(
        (got["events"].clone(), got["listed"].clone()),
        (json!(0), json!([])),
        "{got}"
    );
    // A signed event without its recipient is a 400 naming the field.
    let r = mailgun(signed(json!({"event": "complained"})))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["errors"][0]["field"], "event-data.recipient", "{err}");
    let list = s.admin("/v1/suppressions").await;
    let mut entries: Vec<(String, String, String)> = list["suppressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["address"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
                e["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    entries.sort();
    // The flows report's deliverability: Ann's recovery email was sent, then bounced (matched to the flow
    // by its Message-ID); the other reports were not about mail of ours.
    let report = s
        .admin("/v1/reports/flows?from=2026-11-24&to=2026-11-25")
        .await;
    let d = &report["deliverability"];
    let recovery = d["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["flow"] == "checkout-recovery")
        .unwrap_or_else(|| panic!("{d}"));
    assert_eq!(
        (
            recovery["sent"].clone(),
            recovery["hard_bounces"].clone(),
            recovery["bounce_rate"].clone()
        ),
        (json!(1), json!(1), json!(0.5)),
        "{d}"
    );
    assert_eq!(
        (
            d["total"]["hard_bounces"].clone(),
            d["total"]["complaints"].clone()
        ),
        (json!(2), json!(1)),
        "{d}"
    );
    assert!(
        d["warning"]
            .as_str()
            .unwrap_or_default()
            .contains("complaints over 0.1%"),
        "{d}"
    );
    assert_eq!(
        entries,
        [
            (
                "ann@example.com".into(),
                "hard_bounce".into(),
                "mailgun".into()
            ),
            (
                "foo@example.com".into(),
                "complaint".into(),
                "mailgun".into()
            ),
            (
                "hello@world.com".into(),
                "hard_bounce".into(),
                "sendgrid".into()
            ),
        ]
    );
}

/// The shipped config with a `List-Unsubscribe` mailbox (its mail reaches pronto as inbound email).
async fn with_unsubscribe_mailbox(backend: &str) -> Server {
    let config = format!(
        "{EXAMPLE_CONFIG}\n[inbound]\nemail_secret = \"{INBOUND_SECRET}\"\nunsubscribe_address = \"unsubscribe@in.example.com\"\n"
    );
    common::start_stepped(backend, true, &config, t0()).await
}

mod unsubscribe_by_mail {
    use super::*;
    pronto_store::for_each_backend!(with_unsubscribe_mailbox;
        an_email_to_the_list_unsubscribe_mailbox_unsubscribes_as_the_link_does,
    );
}

async fn an_email_to_the_list_unsubscribe_mailbox_unsubscribes_as_the_link_does(s: Server) {
    s.identify(json!({"userId": "ann", "traits": {"email": "ann@example.com"}}))
        .await;
    s.track(checkout("chk-1", "ann", "Ann")).await;
    s.advance_and_settle(Duration::minutes(60)).await;
    s.messages_until("the reminder is sent", |m| {
        m.iter().any(|x| x["state"] == "sent")
    })
    .await;
    let mail = s.sink.as_ref().unwrap().received().pop().unwrap();
    let header = mail
        .replace("\n ", " ")
        .lines()
        .find(|l| l.starts_with("List-Unsubscribe:"))
        .unwrap()
        .to_string();
    assert!(header.contains("<http://127.0.0.1:"), "{header}");
    let mailto = header
        .split("<mailto:unsubscribe@in.example.com?subject=")
        .nth(1)
        .and_then(|r| r.split('>').next())
        .unwrap_or_else(|| panic!("no mailto in {header}"));
    // What the person's mail client sends: the subject decoded, perhaps with a prefix.
    let subject = format!("Re: {}", mailto.replace("%20", " ").replace("%2F", "/"));
    let post = |subject: String| {
        s.http
            .post(format!("{}/v1/inbound/email", s.base))
            .basic_auth("forwarder", Some(INBOUND_SECRET))
            .json(&json!({"from": "Ann <ann@example.com>", "subject": subject, "text": ""}))
            .send()
    };
    let forged = subject.replace("unsubscribe ", "unsubscribe x");
    assert_eq!(post(forged).await.unwrap().status(), StatusCode::ACCEPTED);
    let ann = s.admin("/v1/contacts?email=ann@example.com").await;
    assert_ne!(
        ann["traits"]["unsubscribed"], true,
        "a forged token is a reply, not an unsubscribe"
    );
    assert_eq!(post(subject).await.unwrap().status(), StatusCode::ACCEPTED);
    let ann = s.admin("/v1/contacts?email=ann@example.com").await;
    assert_eq!(ann["traits"]["unsubscribed"], true, "{ann}");
    // The change is on the contact, with where it came from and when.
    let history = &ann["traits"]["consent_history"];
    assert_eq!(history[0]["trait"], "unsubscribed", "{ann}");
    assert_eq!(history[0]["value"], true, "{ann}");
    assert_eq!(history[0]["source"], "unsubscribe email", "{ann}");
    assert_eq!(history[0]["at"], "2026-11-24T13:00:00Z", "{ann}");
}

/// The shipped config with EU opt-in consent and a send window on the checkout flow's emails.
async fn with_consent_rules(backend: &str) -> Server {
    let config = EXAMPLE_CONFIG.replacen(
        "id = \"checkout-recovery\"",
        "id = \"checkout-recovery\"\nemail_send_window = \"08:00-21:00\"",
        1,
    ) + "\n[consent]\nopt_in = [\"EU\"]\nunknown_country = \"opt_out\"\n";
    common::start_stepped(backend, false, &config, t0()).await
}

mod consent {
    use super::*;
    pronto_store::for_each_backend!(with_consent_rules;
        marketing_waits_for_the_send_window_in_the_persons_zone_and_needs_consent_where_the_rule_says,
    );
}

async fn marketing_waits_for_the_send_window_in_the_persons_zone_and_needs_consent_where_the_rule_says(
    s: Server,
) {
    for (who, traits) in [
        (
            "ann",
            json!({"email": "ann@example.com", "country": "DE", "accepts_marketing": true, "timezone": "Asia/Tokyo"}),
        ),
        ("bo", json!({"email": "bo@example.com", "country": "DE"})),
        (
            "cy",
            json!({"email": "cy@example.com", "phone": "+14155550101"}),
        ),
    ] {
        s.identify(json!({"userId": who, "traits": traits})).await;
        s.track(checkout(&format!("chk-{who}"), who, who)).await;
    }
    // 13:00 UTC: Cy (a US number, opt-out) is mailed; Bo (Germany, no consent) is not; for Ann (Germany,
    // consent) it is 22:00 in Tokyo, so her email waits for 08:00 there.
    s.advance_and_settle(Duration::minutes(60)).await;
    let to = |m: &[Value]| -> Vec<String> {
        m.iter()
            .filter(|x| x["flow"] == "checkout-recovery" && x["state"] == "sent")
            .map(|x| x["to"].as_str().unwrap().to_string())
            .collect()
    };
    let sent = s
        .messages_until("Cy's reminder", |m| !to(m).is_empty())
        .await;
    assert_eq!(to(&sent), ["cy@example.com"]);
    let flow = s.flow("checkout-recovery").await;
    assert_eq!(flow["exited"]["no marketing consent"], 1, "{flow}");
    let ann = s.admin("/v1/contacts?email=ann@example.com").await;
    assert_eq!(
        ann["traits"]["consent_history"],
        json!([{"trait": "accepts_marketing", "value": true, "source": "identify", "at": "2026-11-24T12:00:00Z"}]),
        "{ann}"
    );
    assert_eq!(flow["purpose"], "marketing", "{flow}");
    assert_eq!(flow["email_send_window"], "08:00-21:00", "{flow}");
    // 22:59 UTC is 07:59 in Tokyo: still held. 23:00 UTC is 08:00: sent.
    s.advance_and_settle(Duration::minutes(9 * 60 + 59)).await;
    assert_eq!(
        to(&s.admin("/v1/messages").await["messages"]
            .as_array()
            .unwrap()
            .clone())
        .len(),
        1
    );
    s.advance_and_settle(Duration::minutes(1)).await;
    let sent = s
        .messages_until("Ann's reminder at 08:00 in Tokyo", |m| to(m).len() == 2)
        .await;
    let mut got = to(&sent);
    got.sort();
    assert_eq!(got, ["ann@example.com", "cy@example.com"]);
}

/// The shipped config pacing gmail.com to two emails a minute.
async fn with_pace(backend: &str) -> Server {
    let config = EXAMPLE_CONFIG.replacen(
        "[smtp]\n",
        "[smtp]\nper_domain_per_minute = { \"gmail.com\" = 2 }\n",
        1,
    );
    assert_ne!(config, EXAMPLE_CONFIG);
    common::start_stepped(backend, true, &config, t0()).await
}

mod paced {
    use super::*;
    pronto_store::for_each_backend!(with_pace;
        a_burst_to_one_domain_is_spread_over_minutes_and_every_message_goes_once,
    );
}

async fn a_burst_to_one_domain_is_spread_over_minutes_and_every_message_goes_once(s: Server) {
    let people = ["a", "b", "c", "d", "e"];
    for who in people {
        s.identify(json!({"userId": who, "traits": {"email": format!("{who}@gmail.com")}}))
            .await;
        s.track(checkout(&format!("chk-{who}"), who, who)).await;
    }
    s.identify(json!({"userId": "x", "traits": {"email": "x@example.com"}}))
        .await;
    s.track(checkout("chk-x", "x", "x")).await;
    let sink = s.sink.as_ref().unwrap();
    let to_gmail = || {
        sink.received()
            .iter()
            .filter(|m| m.contains("@gmail.com\n"))
            .count()
    };
    // 13:00: two to gmail.com, and example.com's at once; the other three wait for 13:01 and 13:02.
    s.advance_and_settle(Duration::minutes(60)).await;
    assert_eq!((to_gmail(), sink.received().len()), (2, 3));
    let held = s.admin("/v1/messages?state=queued").await;
    let held = held["messages"].as_array().unwrap();
    assert_eq!(held.len(), 3, "{held:?}");
    assert!(
        held.iter()
            .all(|m| m["attempts"] == 0 && m["last_error"].is_null()),
        "{held:?}"
    );
    s.advance_and_settle(Duration::minutes(1)).await;
    assert_eq!(to_gmail(), 4);
    s.advance_and_settle(Duration::minutes(1)).await;
    assert_eq!(to_gmail(), 5);
    let mut rcpts: Vec<String> = sink
        .received()
        .iter()
        .filter_map(|m| {
            m.lines()
                .find(|l| l.starts_with("To: "))
                .map(str::to_string)
        })
        .collect();
    rcpts.sort();
    rcpts.dedup();
    assert_eq!(rcpts.len(), 6, "each exactly once: {rcpts:?}");
    assert_eq!(sink.received().len(), 6);
}

/// The shipped config keeping events and messages for 30 days.
async fn with_retention(backend: &str) -> Server {
    let config = format!("{EXAMPLE_CONFIG}\n[retention]\nevents = \"30d\"\nmessages = \"30d\"\n");
    common::start_stepped(backend, false, &config, t0()).await
}

mod retention {
    use super::*;
    pronto_store::for_each_backend!(with_retention;
        events_and_messages_older_than_the_retention_are_deleted_and_a_leads_event_and_newer_rows_stay,
    );
}

async fn events_and_messages_older_than_the_retention_are_deleted_and_a_leads_event_and_newer_rows_stay(
    s: Server,
) {
    // 24 November: Ann identifies, checks out (mailed an hour later) and sends a lead.
    s.identify(json!({"userId": "ann", "traits": {"email": "ann@example.com"}}))
        .await;
    s.track(checkout("chk-old", "ann", "Ann")).await;
    let lead = s
        .http
        .post(format!("{}/v1/leads", s.base))
        .basic_auth(common::WRITE, Some(""))
        .json(&json!({"email": "ann@example.com", "name": "Ann", "message": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(lead.status(), StatusCode::CREATED);
    s.advance_and_settle(Duration::minutes(60)).await;
    // 31 days later: another checkout, mailed too.
    s.advance_and_settle(Duration::days(31)).await;
    s.track(checkout("chk-new", "ann", "Ann")).await;
    s.advance_and_settle(Duration::minutes(60)).await;
    let id = s.admin("/v1/contacts?email=ann@example.com").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let timeline = |body: Value| -> Vec<String> {
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["name"]
                    .as_str()
                    .unwrap_or(e["type"].as_str().unwrap())
                    .to_string()
            })
            .collect()
    };
    let before = timeline(s.admin(&format!("/v1/contacts/{id}?limit=500")).await);
    let messages_before = s.admin("/v1/messages").await["messages"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        before.len() >= 4 && messages_before >= 3,
        "{before:?} {messages_before}"
    );

    let (events, messages) = s.stepper.prune().await.unwrap();
    let after = timeline(s.admin(&format!("/v1/contacts/{id}?limit=500")).await);
    // The old identify and checkout are gone; the lead's event stays (the lead points at it), and the
    // new checkout stays.
    assert_eq!(
        after,
        ["Checkout Started", "Lead Submitted"],
        "before: {before:?}"
    );
    assert_eq!(events as usize, before.len() - after.len());
    let kept: Vec<Value> = s.admin("/v1/messages").await["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(messages as usize, messages_before - kept.len());
    assert!(!kept.is_empty());
    assert!(
        kept.iter()
            .all(|m| m["created_at"].as_str().unwrap() >= "2026-12-25"),
        "only the newer messages: {kept:?}"
    );
    // A second round finds nothing more.
    assert_eq!(s.stepper.prune().await.unwrap(), (0, 0));
}

mod erasure {
    use super::*;
    pronto_store::for_each_backend!(without_smtp;
        an_erased_person_is_in_no_column_of_any_table_and_the_reports_add_up_as_before,
    );
}

async fn an_erased_person_is_in_no_column_of_any_table_and_the_reports_add_up_as_before(s: Server) {
    let (email, phone) = ("annika.erase@example.com", "+14155550101");
    s.identify(
        json!({"userId": "u-annika", "traits": {"email": email, "phone": phone,
                      "first_name": "Annika", "last_name": "Zyxwort"}}),
    )
    .await;
    s.identify(json!({"userId": "u-bob", "traits": {"email": "bob.keep@example.com", "first_name": "Bobby"}}))
        .await;
    let lead = |body: Value| {
        s.http
            .post(format!("{}/v1/leads", s.base))
            .basic_auth(common::WRITE, Some(""))
            .json(&body)
            .send()
    };
    for body in [
        json!({"name": "Annika Zyxwort", "email": email, "phone": phone,
               "message": "Please ask for Annika Zyxwort, or text 14155550101."}),
        json!({"name": "Bobby Keep", "email": "bob.keep@example.com", "message": "Bobby here."}),
    ] {
        assert_eq!(lead(body).await.unwrap().status(), StatusCode::CREATED);
    }
    s.track(checkout("chk-a", "u-annika", "Annika")).await;
    s.track(checkout("chk-b", "u-bob", "Bobby")).await;
    s.advance_and_settle(Duration::minutes(60)).await;
    s.messages_until("both reminders are in the dev mailbox", |m| {
        m.iter()
            .filter(|x| x["flow"] == "checkout-recovery" && x["state"] == "sent")
            .count()
            == 2
    })
    .await;
    let r = s
        .http
        .post(format!("{}/v1/suppressions", s.base))
        .bearer_auth(common::ADMIN)
        .json(&json!({"address": email, "reason": "manual", "detail": "asked by Annika Zyxwort"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let reports = || async {
        (
            s.admin("/v1/reports/flows").await,
            s.admin("/v1/reports/speed-to-lead").await,
        )
    };
    let before = reports().await;
    let needles = [email, "14155550101", "Annika", "Zyxwort"];
    assert!(
        !pronto_store::testing::columns_containing(&s.db_url, &needles)
            .await
            .is_empty()
    );

    let id = s.admin(&format!("/v1/contacts?email={email}")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .delete(format!("{}/v1/contacts/{id}", s.base))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let erased: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["contact"], id.as_str(), "{erased}");
    for table in [
        "events",
        "leads",
        "messages",
        "runs",
        "identities",
        "contacts",
        "suppressions",
    ] {
        assert!(
            erased["rows"][table].as_u64().unwrap_or(0) > 0,
            "{table}: {erased}"
        );
    }
    assert_eq!(
        erased["listed"].as_array().unwrap().len(),
        2,
        "email and phone: {erased}"
    );

    // Not in any text of any column of any table (the search reads every column as text).
    let left = pronto_store::testing::columns_containing(&s.db_url, &needles).await;
    assert_eq!(left, Vec::<String>::new());
    // Bob is untouched.
    let bob =
        pronto_store::testing::columns_containing(&s.db_url, &["bob.keep@example.com", "Bobby"])
            .await;
    for column in [
        "identities.value (bob.keep@example.com)",
        "leads.message (Bobby)",
        "events.payload (Bobby)",
    ] {
        assert!(bob.iter().any(|c| c == column), "{column} in {bob:?}");
    }
    // The reports count the same.
    assert_eq!(reports().await, before);
    // The audit log says who erased whom and when, and nothing personal.
    let log = s.admin("/v1/erasures").await;
    assert_eq!(log[0]["contact"], id.as_str(), "{log}");
    assert_eq!(log[0]["by"], "admin key", "{log}");
    // The address stays listed, as its hash: a new lead from it is stored, its acknowledgement not sent.
    let list = s.admin("/v1/suppressions").await;
    assert!(
        list["suppressions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["address"] != email),
        "{list}"
    );
    assert!(lead(json!({"name": "A. Z.", "email": email}))
        .await
        .unwrap()
        .status()
        .is_success());
    s.settle().await;
    let messages = s.admin(&format!("/v1/messages?to={email}")).await;
    let states: Vec<&Value> = messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["state"])
        .collect();
    assert!(
        !states.is_empty() && states.iter().all(|s| *s == "suppressed"),
        "{messages}"
    );
    // A second erasure of a contact that is not there is a 404.
    let r = s
        .http
        .delete(format!("{}/v1/contacts/{}", s.base, uuid_like()))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

fn uuid_like() -> &'static str {
    "0193a4a0-0000-7000-8000-000000000000"
}

/// The shipped config with a 50% holdout on the checkout flow.
async fn with_holdout(backend: &str) -> Server {
    let config = EXAMPLE_CONFIG.replacen(
        "id = \"checkout-recovery\"",
        "id = \"checkout-recovery\"\nexperiment = { id = \"recovery-test\", holdout = \"50%\" }",
        1,
    );
    assert_ne!(config, EXAMPLE_CONFIG);
    common::start_stepped(backend, true, &config, t0()).await
}

mod holdout {
    use super::*;
    pronto_store::for_each_backend!(with_holdout;
        a_held_out_checkout_gets_no_email_but_is_tracked_and_ended_by_its_order_like_the_others,
    );
}

/// The shipped config with two variants and a rule to promote the better one by itself.
const AUTO_PROMOTE: &str = "experiment = { id = \"subject\", holdout = \"10%\", \
     variants = [{ id = \"plain\" }, { id = \"warm\" }], \
     auto_promote = { probability = \"95%\", min_runs = 100 } }";

async fn with_auto_promote(backend: &str) -> Server {
    let config = EXAMPLE_CONFIG.replacen(
        "id = \"checkout-recovery\"",
        &format!("id = \"checkout-recovery\"\n{AUTO_PROMOTE}"),
        1,
    );
    common::start_stepped(backend, false, &config, t0()).await
}

mod auto_promote {
    use super::*;
    pronto_store::for_each_backend!(with_auto_promote;
        the_clearly_better_variant_is_promoted_by_itself_and_another_process_takes_it_up,
    );
}

async fn the_clearly_better_variant_is_promoted_by_itself_and_another_process_takes_it_up(
    s: Server,
) {
    use pronto_domain::experiment::{assign, Arm};
    let e = experiment("subject", "10%", &["plain", "warm"]);
    // A second process on the same database, started before anything is promoted.
    let config = EXAMPLE_CONFIG.replacen(
        "id = \"checkout-recovery\"",
        &format!("id = \"checkout-recovery\"\n{AUTO_PROMOTE}"),
        1,
    );
    let other = common::start_stepped_on(&s.db_url, false, &config, t0()).await;
    let carts: Vec<String> = (0..1_500).map(|i| format!("chk_{i}")).collect();
    let events: Vec<Value> = carts
        .iter()
        .map(|c| json!({"userId": format!("u-{c}"), "event": "Checkout Started", "timestamp": t0().to_rfc3339(),
                        "properties": {"checkout_id": c, "value": 20, "currency": "EUR"}}))
        .collect();
    s.track_all(events).await;
    s.advance(Duration::hours(1));
    assert_eq!(
        s.stepper.promote().await.unwrap(),
        vec![],
        "no orders yet: nothing to choose"
    );

    // Warm converts half its carts; plain and the holdout one in twenty.
    let buys = |c: &String, i: usize| match assign("checkout-recovery", &e, c) {
        Arm::Variant(v) if v == "warm" => i.is_multiple_of(2),
        _ => i.is_multiple_of(20),
    };
    let orders: Vec<Value> = carts
        .iter()
        .enumerate()
        .filter(|(i, c)| buys(c, *i))
        .map(|(_, c)| json!({"userId": format!("u-{c}"), "event": "Order Completed",
                             "timestamp": (t0() + Duration::minutes(30)).to_rfc3339(),
                             "properties": {"order_id": format!("o-{c}"), "checkout_id": c, "total": 20, "currency": "EUR"}}))
        .collect();
    s.track_all(orders).await;
    let made = s.stepper.promote().await.unwrap();
    assert_eq!(
        made.iter()
            .map(|p| (p.experiment.as_str(), p.variant.as_str(), p.source.as_str()))
            .collect::<Vec<_>>(),
        [("subject", "warm", "auto")]
    );
    assert_eq!(s.stepper.promote().await.unwrap(), vec![], "promoted once");
    let report = s.admin("/v1/reports/flows").await;
    assert_eq!(
        report["experiments"][0]["promoted"]["source"], "auto",
        "{report}"
    );

    // The other process takes the promotion up at its next look: a new cart there, not held out, gets warm.
    assert_eq!(other.stepper.promote().await.unwrap(), vec![]);
    let fresh = (1_500..)
        .map(|i| format!("chk_{i}"))
        .find(|k| assign("checkout-recovery", &e, k) == Arm::Variant("plain".into()))
        .unwrap();
    other.track(json!({"userId": "late", "event": "Checkout Started", "properties": {"checkout_id": fresh}}))
        .await;
    let runs = other.admin("/v1/contacts?user_id=late").await;
    assert_eq!(runs["runs"][0]["arm"], "warm", "{runs}");
    other.stop().await;
    s.stop().await;
}

/// The shipped config with a holdout and a one-hour conversion window on the checkout flow.
async fn with_short_conversion(backend: &str) -> Server {
    let config = EXAMPLE_CONFIG.replacen(
        "id = \"checkout-recovery\"",
        "id = \"checkout-recovery\"\nexperiment = { id = \"window\", holdout = \"50%\" }\n\
         conversion = { event = \"Order Completed\", within = \"1h\" }",
        1,
    );
    common::start_stepped(backend, true, &config, t0()).await
}

mod conversion {
    use super::*;
    pronto_store::for_each_backend!(with_short_conversion;
        a_flows_own_conversion_window_decides_which_orders_count,
    );
}

async fn a_flows_own_conversion_window_decides_which_orders_count(s: Server) {
    for (who, chk) in [("ann", "chk-a"), ("bo", "chk-b")] {
        s.identify(json!({"userId": who, "traits": {"email": format!("{who}@example.com")}}))
            .await;
        s.track(checkout(chk, who, who)).await;
    }
    // Ann buys within the hour; Bo two hours on.
    s.advance_and_settle(Duration::minutes(30)).await;
    s.track(json!({"userId": "ann", "event": "Order Completed",
                   "properties": {"order_id": "o-a", "checkout_id": "chk-a", "total": 10, "currency": "EUR"}}))
        .await;
    s.advance_and_settle(Duration::minutes(90)).await;
    s.track(json!({"userId": "bo", "event": "Order Completed",
                   "properties": {"order_id": "o-b", "checkout_id": "chk-b", "total": 20, "currency": "EUR"}}))
        .await;
    let report = s.admin("/v1/reports/flows").await;
    let x = &report["experiments"][0];
    assert_eq!(x["conversion_window_hours"], 1, "{report}");
    assert_eq!(
        x["conversion_events"],
        json!(["Order Completed"]),
        "{report}"
    );
    let converted: u64 = x["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["converted"].as_u64().unwrap())
        .sum();
    let revenue: f64 = x["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["revenue"]["EUR"].as_f64())
        .sum();
    assert_eq!(
        (converted, revenue),
        (1, 10.0),
        "only Ann's order, inside the hour: {report}"
    );
    s.stop().await;
}

/// The shipped config with a holdout and two timing variants on the checkout flow: its first wait as
/// written (by cart value) or ten minutes for everyone.
async fn with_variants(backend: &str) -> Server {
    let config = EXAMPLE_CONFIG
        .replacen(
            "id = \"checkout-recovery\"",
            "id = \"checkout-recovery\"\nexperiment = { id = \"timing\", holdout = \"20%\", \
             variants = [{ id = \"tiers\" }, { id = \"ten-min\" }] }",
            1,
        )
        .replacen(
            "wait = { by = \"properties.value\", tiers = [[0, \"10m\"], [50, \"1h\"], [500, \"4h\"]] }",
            "wait = { by = \"properties.value\", tiers = [[0, \"10m\"], [50, \"1h\"], [500, \"4h\"]] }\n\
             variants = { ten-min = { wait = \"10m\" } }",
            1,
        );
    assert_eq!(
        config.matches("ten-min").count(),
        EXAMPLE_CONFIG.matches("ten-min").count() + 2,
        "both edits apply"
    );
    common::start_stepped(backend, true, &config, t0()).await
}

mod variants {
    use super::*;
    pronto_store::for_each_backend!(with_variants;
        each_variant_waits_its_own_time_and_a_click_on_its_tracked_link_is_credited_to_its_step,
    );
}

mod dev_mailbox {
    use super::*;
    pronto_store::for_each_backend!(without_smtp;
        without_smtp_emails_land_in_the_dev_mailbox,
        admins_keep_the_suppression_list_over_the_api_and_as_csv,
    );
}

async fn a_checkout_gets_its_recovery_email_with_the_exact_cart_and_a_buyer_gets_nothing(
    s: Server,
) {
    s.identify(json!({"userId": "ann", "traits": {"email": "ann@example.com", "first_name": "<script>alert(1)</script>"}}))
        .await;
    s.identify(json!({"userId": "bob", "traits": {"email": "bob@example.com"}}))
        .await;
    s.track(checkout("chk-1", "ann", "Ann")).await;
    s.track(checkout("chk-2", "bob", "Bob")).await;
    s.track(json!({"userId": "bob", "event": "Order Completed", "timestamp": (t0() + Duration::minutes(20)).to_rfc3339(),
                   "properties": {"checkout_id": "chk-2", "order_id": "o-2", "total": 54.5, "currency": "EUR"}}))
        .await;

    // 54.50 is in the 50-500 tier: one hour. Nothing before.
    s.advance_and_settle(Duration::minutes(59)).await;
    assert!(s.sink.as_ref().unwrap().received().is_empty());
    s.advance_and_settle(Duration::minutes(1)).await;
    s.messages_until("the reminder is sent", |m| {
        m.iter().any(|x| x["state"] == "sent")
    })
    .await;
    let mails = s.sink.as_ref().unwrap().received();
    assert_eq!(mails.len(), 1, "exactly one email: Ann's; Bob bought");
    let mail = &mails[0];
    for needle in [
        "To: ann@example.com",
        "From: \"Example Shop\" <shop@example.com>",
        "Reply-To: \"Sam at Example Shop\" <sam@example.com>",
        "List-Unsubscribe: <http://127.0.0.1:",
        "Mug (blue) x 2: =E2=82=AC24.50",
        "Tea <Earl Grey> x 1: =E2=82=AC30.00",
        "Total: =E2=82=AC54.50",
        "&lt;script&gt;alert(1)&lt;&#x2f;script&gt;",
        "Tea &lt;Earl Grey&gt;",
        "https:&#x2f;&#x2f;shop.example&#x2f;mug.png",
    ] {
        let flat = mail.replace("=\n", "");
        assert!(flat.contains(needle), "missing {needle:?} in\n{mail}");
    }
    let html = &mail[mail.find("text/html").unwrap()..];
    assert!(!html.contains("<script>"), "HTML is escaped:\n{mail}");
    // The restore link, in the text and the HTML part, goes through the tracked redirect to the cart.
    let restore = "https://shop.example/checkout/chk-1?utm_source=pronto&utm_medium=email&utm_campaign=checkout-recovery&pronto_message=";
    let targets = common::link_targets(mail);
    assert_eq!(
        targets.iter().filter(|t| t.starts_with(restore)).count(),
        2,
        "{targets:?}\n{mail}"
    );

    let flow = s.flow("checkout-recovery").await;
    assert_eq!(
        flow["active"], 1,
        "Ann's run waits for the offer step: {flow}"
    );
    assert_eq!(
        flow["exited"]["Order Completed for the same checkout_id"], 1,
        "{flow}"
    );
    assert_eq!(flow["messages"]["sent"], 1, "{flow}");
    // The run shows each step and why.
    let msgs = s.admin("/v1/messages").await;
    let run_id = msgs["messages"][0]["run_id"].as_str().unwrap().to_string();
    let run = s.admin(&format!("/v1/runs/{run_id}")).await;
    let kinds: Vec<&str> = run["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["started", "waiting", "sent", "waiting"], "{run}");
    // Bob's contact shows his run ended by his order.
    let bob = s.admin("/v1/contacts?user_id=bob").await;
    assert_eq!(
        bob["runs"][0]["outcome"], "Order Completed for the same checkout_id",
        "{bob}"
    );
    s.stop().await;
}

async fn an_smtp_server_that_refuses_for_a_while_gets_every_message_once(s: Server) {
    let sink = s.sink.clone().unwrap();
    sink.refuse(&["451 4.7.1 try again later"; 6]);
    for i in 0..3 {
        s.identify(
            json!({"userId": format!("p{i}"), "traits": {"email": format!("p{i}@example.com")}}),
        )
        .await;
        s.track(checkout(&format!("c{i}"), &format!("p{i}"), "P"))
            .await;
    }
    s.advance_and_settle(Duration::hours(1)).await;
    let mut rounds = 0;
    while sink.received().len() < 3 {
        rounds += 1;
        assert!(
            rounds < 40,
            "not delivered: {:?}",
            s.admin("/v1/messages").await
        );
        // Past any backoff of the first attempts (30 s to 2 min, with jitter).
        s.advance_and_settle(Duration::minutes(3)).await;
    }
    let all = s
        .messages_until("all sent", |m| {
            m.iter().filter(|x| x["state"] == "sent").count() == 3
        })
        .await;
    assert!(
        all.iter().all(|m| m["attempts"].as_i64().unwrap() >= 2),
        "{all:?}"
    );
    assert!(all.iter().all(|m| m["last_error"]
        .as_str()
        .unwrap()
        .contains("try again later")));
    // More time passes: nothing is sent again.
    s.advance_and_settle(Duration::hours(1)).await;
    let ids: std::collections::HashSet<String> = sink
        .received()
        .iter()
        .filter(|m| m.contains("Subject:") && m.contains("order is waiting"))
        .map(|m| {
            m.lines()
                .find(|l| l.starts_with("Message-ID:"))
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 3, "three distinct messages");
    assert_eq!(
        sink.received()
            .iter()
            .filter(|m| m.contains("order is waiting"))
            .count(),
        3,
        "each delivered once"
    );
    s.stop().await;
}

async fn the_unsubscribe_link_stops_further_flows(s: Server) {
    s.identify(json!({"userId": "ann", "traits": {"email": "ann@example.com"}}))
        .await;
    s.track(checkout("c1", "ann", "Ann")).await;
    s.advance_and_settle(Duration::hours(1)).await;
    let m = s
        .messages_until("sent", |m| m.iter().any(|x| x["state"] == "sent"))
        .await;
    let text = m[0]["text"].as_str().unwrap();
    // The link names the configured public URL; this test server listens on a random port.
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("Unsubscribe: "))
        .and_then(|l| l.find("/u/").map(|i| l[i..].to_string()))
        .unwrap();
    let link = format!("{}{path}", s.base);
    // A GET (a mail scanner) changes nothing; the POST unsubscribes.
    let page = s.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let forged = s.http.post(format!("{link}x")).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::NOT_FOUND);
    let done = s.http.post(&link).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    // The next step (the offer a day later) is not sent.
    s.advance_and_settle(Duration::days(1)).await;
    let flow = s.flow("checkout-recovery").await;
    assert_eq!(flow["exited"]["unsubscribed"], 1, "{flow}");
    assert_eq!(s.sink.as_ref().unwrap().received().len(), 1);
    s.stop().await;
}

async fn a_mailbox_that_does_not_exist_is_tried_once_then_skipped_for_flows_and_acknowledgements(
    s: Server,
) {
    let sink = s.sink.clone().unwrap();
    sink.refuse_recipient(
        "gone@example.com",
        "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown",
    );
    for who in ["gone", "ann"] {
        s.identify(json!({"userId": who, "traits": {"email": format!("{who}@example.com")}}))
            .await;
        s.track(checkout(&format!("c-{who}"), who, "Hi")).await;
    }
    s.advance_and_settle(Duration::hours(1)).await;
    let listed = s.admin("/v1/suppressions").await;
    let entries = listed["suppressions"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{listed}");
    assert_eq!(entries[0]["address"], "gone@example.com");
    assert_eq!(entries[0]["medium"], "email");
    assert_eq!(entries[0]["reason"], "hard_bounce");
    assert_eq!(entries[0]["source"], "smtp");
    assert!(
        entries[0]["detail"]
            .as_str()
            .unwrap()
            .contains("User unknown"),
        "{listed}"
    );
    // The flow's next email (the offer a day later) and an acknowledgement of a lead from the same address
    // are skipped with the reason; the rep is still alerted, and Ann gets both of her emails.
    let lead = s
        .http
        .post(format!("{}/v1/leads", s.base))
        .basic_auth(common::WRITE, Some(""))
        .json(
            &json!({"email": "Gone@Example.com", "name": "Gone", "message": "Please call me back"}),
        )
        .send()
        .await
        .unwrap();
    assert!(lead.status().is_success(), "{}", lead.text().await.unwrap());
    s.advance_and_settle(Duration::days(1)).await;
    assert_eq!(
        sink.rcpt_attempts("gone@example.com"),
        1,
        "tried once, never again"
    );
    let all = s.admin("/v1/messages?limit=50").await;
    let all = all["messages"].as_array().unwrap();
    let brief: Vec<(String, String, String)> = all
        .iter()
        .map(|m| {
            (
                m["to"].to_string(),
                m["state"].to_string(),
                m["subject"].to_string(),
            )
        })
        .collect();
    let to_gone: Vec<&Value> = all
        .iter()
        .filter(|m| m["to"] == "gone@example.com")
        .collect();
    // The checkout's first email (refused), then its offer, the lead's acknowledgement and the lead
    // cadence's email (all skipped).
    assert_eq!(to_gone.len(), 4, "{brief:?}");
    let failed: Vec<&&Value> = to_gone.iter().filter(|m| m["state"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{brief:?}");
    assert_eq!(failed[0]["subject"], "Hi, your order is waiting");
    for m in to_gone.iter().filter(|m| m["state"] != "failed") {
        assert_eq!(m["state"], "suppressed", "{brief:?}");
        assert!(
            m["last_error"]
                .as_str()
                .unwrap()
                .starts_with("suppressed: hard bounce"),
            "{}",
            m["last_error"]
        );
        assert_eq!(m["attempts"], 0);
    }
    assert!(
        to_gone.iter().any(|m| m["idempotency_key"]
            .as_str()
            .unwrap()
            .ends_with(".ack.email")),
        "the acknowledgement is among them: {brief:?}"
    );
    let suppressed = s.admin("/v1/messages?state=suppressed").await;
    assert_eq!(
        suppressed["messages"].as_array().unwrap().len(),
        3,
        "{brief:?}"
    );
    assert_eq!(
        sink.rcpt_attempts("ann@example.com"),
        2,
        "Ann's reminder and offer"
    );
    let metrics = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The recorder is the process's: other tests running beside this one count too.
    let hard: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"pronto_bounces_total{medium="email",kind="hard"} "#))
        .unwrap_or_else(|| panic!("no hard bounce count in\n{metrics}"))
        .parse()
        .unwrap();
    assert!(hard >= 1.0, "{metrics}");
    assert!(
        all.iter().any(|m| m["to"] == "bo@example.com"
            && m["subject"] == "New lead: Gone"
            && m["state"] == "sent"),
        "the rep was alerted: {brief:?}"
    );
    s.stop().await;
}

async fn admins_keep_the_suppression_list_over_the_api_and_as_csv(s: Server) {
    let url = |p: &str| format!("{}{p}", s.base);
    let post = |path: &str, body: Value| {
        s.http
            .post(url(path))
            .bearer_auth(common::ADMIN)
            .json(&body)
            .send()
    };
    // Added as given, spelt as the list spells it; the medium follows the address.
    let r = post(
        "/v1/suppressions",
        json!({"address": " Ann@Example.com ", "detail": "asked by phone"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let added: Value = r.json().await.unwrap();
    assert_eq!(added["changed"], true);
    assert_eq!(added["suppression"]["address"], "ann@example.com");
    assert_eq!(added["suppression"]["medium"], "email");
    assert_eq!(added["suppression"]["reason"], "manual");
    assert_eq!(added["suppression"]["source"], "api");
    let r = post(
        "/v1/suppressions",
        json!({"address": "(415) 555-2671", "reason": "complaint"}),
    )
    .await
    .unwrap();
    let phone: Value = r.json().await.unwrap();
    assert_eq!(phone["suppression"]["address"], "+14155552671");
    assert_eq!(phone["suppression"]["medium"], "sms");
    // Bad input is a 400 naming the field; nothing is listed.
    for (body, field) in [
        (json!({"address": "not an address"}), "address"),
        (json!({"address": "a@b.co", "reason": "bounced"}), "body"),
        (json!({"address": "a@b.co", "medium": "sms"}), "address"),
        (
            json!({"address": "a@b.co", "detail": "x".repeat(501)}),
            "detail",
        ),
        (json!({"address": "a@b.co", "extra": 1}), "body"),
    ] {
        let r = post("/v1/suppressions", body.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["errors"][0]["field"], field, "{body}: {e}");
    }
    let list = s.admin("/v1/suppressions?medium=email").await;
    assert_eq!(list["suppressions"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        s.admin("/v1/suppressions?address=ANN@example.com").await["suppressions"][0]["detail"],
        "asked by phone"
    );
    // Exported as CSV, taken off, imported back: the same list.
    let csv = s
        .http
        .get(url("/v1/suppressions?format=csv"))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let before = s.admin("/v1/suppressions").await;
    let delete = |path: &str| s.http.delete(url(path)).bearer_auth(common::ADMIN).send();
    for path in [
        "/v1/suppressions/email/Ann%40Example.com",
        "/v1/suppressions/sms/+14155552671",
    ] {
        let r = delete(path).await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{path}");
        let again = delete(path).await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(s.admin("/v1/suppressions").await["suppressions"], json!([]));
    let import = |body: String| {
        s.http
            .post(url("/v1/suppressions/import"))
            .bearer_auth(common::ADMIN)
            .header("content-type", "text/csv")
            .body(body)
            .send()
    };
    let r = import(csv.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["listed"], 2);
    assert_eq!(s.admin("/v1/suppressions").await, before);
    // A bad row refuses the whole file, naming its line and field.
    let r = import("address,reason\nbob@example.com,manual\ncarol,manual\n".into())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["errors"][0]["field"], "line 3: address", "{e}");
    assert!(
        s.admin("/v1/suppressions?address=bob@example.com").await["suppressions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // A listed address gets nothing from the flows (the dev mailbox shows it skipped).
    s.identify(json!({"userId": "ann", "traits": {"email": "ann@example.com"}}))
        .await;
    s.track(json!({"userId": "ann", "event": "Signup Started"}))
        .await;
    s.advance_and_settle(Duration::minutes(30)).await;
    let m = s.admin("/v1/messages").await;
    assert_eq!(m["messages"][0]["state"], "suppressed", "{m}");
    assert!(m["messages"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("asked by phone"));
    s.stop().await;
}

async fn an_export_holds_everything_kept_on_the_person_and_nothing_of_anyone_else(s: Server) {
    for who in ["ann", "bob"] {
        s.identify(json!({"userId": who, "traits": {"email": format!("{who}@example.com"), "first_name": who}}))
            .await;
        s.track(checkout(&format!("c-{who}"), who, who)).await;
    }
    // More events than one page of the export's reads.
    let ticks: Vec<Value> = (0..1100)
        .map(|i| json!({"userId": "ann", "event": "Viewed Page", "messageId": format!("tick-{i}")}))
        .collect();
    s.track_all(ticks).await;
    let lead: Value = s
        .http
        .post(format!("{}/v1/leads", s.base))
        .basic_auth(common::WRITE, Some(""))
        .json(
            &json!({"email": "ann@example.com", "name": "Ann", "message": "A quote for 40 mugs?"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lead_id = lead["lead_id"].as_str().unwrap().to_string();
    let contact = lead["contact_id"].as_str().unwrap().to_string();
    let attempt = s
        .http
        .post(format!("{}/v1/leads/{lead_id}/attempts", s.base))
        .bearer_auth(common::ADMIN)
        .json(&json!({"rep": "bo", "channel": "call", "outcome": "reached", "note": "wants a quote by Friday"}))
        .send()
        .await
        .unwrap();
    assert!(
        attempt.status().is_success(),
        "{}",
        attempt.text().await.unwrap()
    );
    let listed = s
        .http
        .post(format!("{}/v1/suppressions", s.base))
        .bearer_auth(common::ADMIN)
        .json(&json!({"address": "ann@example.com", "reason": "complaint"}))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    s.advance_and_settle(Duration::hours(1)).await;

    let e = s.admin(&format!("/v1/contacts/{contact}/export")).await;
    assert_eq!(e["contact"]["id"], contact.as_str());
    assert!(e["contact"]["next_before"].is_null());
    let identities: Vec<&str> = e["contact"]["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert!(
        identities.contains(&"ann@example.com") && identities.contains(&"ann"),
        "{identities:?}"
    );
    let events = e["contact"]["events"].as_array().unwrap();
    let ticks = events
        .iter()
        .filter(|ev| ev["name"] == "Viewed Page")
        .count();
    assert_eq!(ticks, 1100, "every event, across pages");
    assert!(events.iter().any(|ev| ev["name"] == "Checkout Started"));
    assert!(events.iter().any(|ev| ev["name"] == "Lead Submitted"));
    assert!(
        events
            .iter()
            .all(|ev| !ev["payload"].to_string().contains("bob")),
        "nothing of anyone else"
    );
    assert!(!e["contact"]["runs"].as_array().unwrap().is_empty());
    let messages = e["messages"].as_array().unwrap();
    assert!(!messages.is_empty());
    assert!(
        messages.iter().all(|m| m["contact_id"] == contact.as_str()),
        "{messages:?}"
    );
    let leads = e["leads"].as_array().unwrap();
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["id"], lead_id.as_str());
    assert_eq!(leads[0]["message"], "A quote for 40 mugs?");
    assert_eq!(leads[0]["attempts"][0]["note"], "wants a quote by Friday");
    assert_eq!(e["suppressions"][0]["reason"], "complaint");
    assert!(e["exported_at"].is_string());
    // A merged-away or unknown contact, and an id that is not one.
    let missing = s
        .http
        .get(format!(
            "{}/v1/contacts/0195f6f0-0000-7000-8000-000000000000/export",
            s.base
        ))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let bad = s
        .http
        .get(format!("{}/v1/contacts/ann/export", s.base))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    s.stop().await;
}

async fn bounces_and_complaints_posted_by_a_forwarder_list_their_addresses_and_a_complaint_unsubscribes(
    s: Server,
) {
    let fixture = |name: &str| {
        std::fs::read(format!(
            "{}/../../tests/fixtures/bounces/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let post = |raw: Vec<u8>, secret: &str| {
        s.http
            .post(format!("{}/v1/inbound/bounces", s.base))
            .basic_auth("forwarder", Some(secret))
            .header("content-type", "message/rfc822")
            .body(raw)
            .send()
    };
    s.identify(json!({"userId": "u1", "traits": {"email": "user@example.com"}}))
        .await;
    let refused = post(fixture("mail-auth-arf-002.eml"), "not the secret")
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.admin("/v1/suppressions").await["suppressions"], json!([]));
    let cases: [(&str, &str, Value, Value, u64); 5] = [
        // RFC 5965's example abuse report: a complaint, the contact unsubscribed from marketing.
        (
            "mail-auth-arf-002.eml",
            "feedback",
            json!(["user@example.com"]),
            json!([]),
            1,
        ),
        // An authentication-failure report is not a complaint.
        ("mail-auth-arf-003.eml", "feedback", json!([]), json!([]), 0),
        // Office 365: 5.1.10, recipient not found.
        (
            "flanker-office365.eml",
            "dsn",
            json!(["noname@example.com"]),
            json!([]),
            0,
        ),
        // A warning (delayed, 4.4.4) is not a bounce.
        ("flanker-no-mx.eml", "dsn", json!([]), json!([]), 0),
        // AOL: 5.2.2, mailbox full, counted.
        (
            "flanker-mailbox-full.eml",
            "dsn",
            json!([]),
            json!(["user@aol.com"]),
            0,
        ),
    ];
    for (name, report, listed, soft, unsubscribed) in cases {
        let r = post(fixture(name), INBOUND_SECRET).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        let got: Value = r.json().await.unwrap();
        assert_eq!(got["report"], report, "{name}: {got}");
        assert_eq!(got["listed"], listed, "{name}: {got}");
        assert_eq!(got["soft_bounces"], soft, "{name}: {got}");
        assert_eq!(got["unsubscribed"], unsubscribed, "{name}: {got}");
    }
    let contact = s.admin("/v1/contacts?email=user@example.com").await;
    assert_eq!(contact["traits"]["unsubscribed"], true, "{contact}");
    let list = s.admin("/v1/suppressions").await;
    let entries: Vec<(String, String, String)> = list["suppressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["address"].to_string(),
                e["reason"].to_string(),
                e["source"].to_string(),
            )
        })
        .collect();
    assert_eq!(entries.len(), 2, "{list}");
    assert!(
        entries.contains(&(
            "\"user@example.com\"".into(),
            "\"complaint\"".into(),
            "\"arf\"".into()
        )),
        "{entries:?}"
    );
    assert!(
        entries.contains(&(
            "\"noname@example.com\"".into(),
            "\"hard_bounce\"".into(),
            "\"dsn\"".into()
        )),
        "{entries:?}"
    );
    // Two more "mailbox full" reports make three within the week: listed for a while.
    for _ in 0..2 {
        post(fixture("flanker-mailbox-full.eml"), INBOUND_SECRET)
            .await
            .unwrap();
    }
    let aol = s.admin("/v1/suppressions?address=user@aol.com").await;
    assert_eq!(aol["suppressions"][0]["reason"], "soft_bounces", "{aol}");
    assert!(aol["suppressions"][0]["until"].is_string(), "{aol}");
    // A message that reports nothing changes nothing.
    let reply = post(
        b"From: a@b.co\r\nSubject: thanks\r\n\r\nSee you soon\r\n".to_vec(),
        INBOUND_SECRET,
    )
    .await
    .unwrap();
    assert_eq!(reply.json::<Value>().await.unwrap()["report"], "none");
    let empty = post(b" \r\n".to_vec(), INBOUND_SECRET).await.unwrap();
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    s.stop().await;
}

async fn without_smtp_emails_land_in_the_dev_mailbox(s: Server) {
    s.identify(json!({"userId": "ann", "traits": {"email": "ann@example.com"}}))
        .await;
    s.track(json!({"userId": "ann", "event": "Signup Started"}))
        .await;
    s.advance_and_settle(Duration::minutes(30)).await;
    let m = s
        .messages_until("in the mailbox", |m| m.iter().any(|x| x["state"] == "sent"))
        .await;
    assert_eq!(m[0]["transport"], "mailbox");
    assert_eq!(m[0]["subject"], "Finish creating your account");
    s.stop().await;
}

async fn a_held_out_checkout_gets_no_email_but_is_tracked_and_ended_by_its_order_like_the_others(
    s: Server,
) {
    use pronto_domain::experiment::{assign, Arm};
    let e = experiment("recovery-test", "50%", &[]);
    // Checkout ids the assignment puts in each group (it is a fixed function of flow, experiment and key).
    let pick = |arm: Arm, skip: usize| {
        (0..)
            .map(|i| format!("chk_{i}"))
            .filter(|k| assign("checkout-recovery", &e, k) == arm)
            .nth(skip)
            .unwrap()
    };
    let (mailed, held, held_buyer) = (
        pick(Arm::Treatment, 0),
        pick(Arm::Holdout, 0),
        pick(Arm::Holdout, 1),
    );
    for who in ["ann", "cy", "di"] {
        s.identify(json!({"userId": who, "traits": {"email": format!("{who}@example.com")}}))
            .await;
    }
    s.track(checkout(&mailed, "ann", "Ann")).await;
    s.track(checkout(&held, "cy", "Cy")).await;
    s.track(checkout(&held_buyer, "di", "Di")).await;
    s.advance_and_settle(Duration::minutes(30)).await;
    // Di buys: her held-out run ends by her order, as a treated one would.
    s.track(json!({"userId": "di", "event": "Order Completed",
                   "properties": {"order_id": "o-di", "checkout_id": held_buyer, "total": 54.5, "currency": "EUR"}}))
        .await;
    s.advance_and_settle(Duration::minutes(31)).await;

    let mails = s.sink.as_ref().unwrap().received();
    assert_eq!(mails.len(), 1, "only the treated checkout is mailed");
    assert!(mails[0].contains("To: ann@example.com"), "{}", mails[0]);

    let run_of = |c: &Value| c["runs"][0].clone();
    let cy = run_of(&s.admin("/v1/contacts?user_id=cy").await);
    assert_eq!(
        (cy["experiment"].as_str(), cy["arm"].as_str()),
        (Some("recovery-test"), Some("holdout")),
        "{cy}"
    );
    assert_eq!(
        cy["state"], "active",
        "tracked: it waits for the next step like the others: {cy}"
    );
    let skipped: Vec<&Value> = cy["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "skipped")
        .collect();
    assert_eq!(skipped.len(), 1, "{cy}");
    assert!(
        skipped[0]["detail"].as_str().unwrap().contains("held out"),
        "{cy}"
    );
    let ann = run_of(&s.admin("/v1/contacts?user_id=ann").await);
    assert_eq!(ann["arm"], "treatment", "{ann}");
    let di = run_of(&s.admin("/v1/contacts?user_id=di").await);
    assert_eq!(
        (di["arm"].as_str(), di["outcome"].as_str()),
        (
            Some("holdout"),
            Some("Order Completed for the same checkout_id")
        ),
        "{di}"
    );
    // A second checkout of Cy's refreshes his run: it keeps its group.
    s.track(checkout(&held, "cy", "Cy")).await;
    let cy = run_of(&s.admin("/v1/contacts?user_id=cy").await);
    assert_eq!(cy["arm"], "holdout", "{cy}");

    // Ann buys after her reminder, in another checkout: a conversion by the same contact.
    s.advance_and_settle(Duration::minutes(30)).await;
    s.track(json!({"userId": "ann", "event": "Order Completed",
                   "properties": {"order_id": "o-ann", "checkout_id": "another", "total": 80, "currency": "EUR"}}))
        .await;
    let report = s.admin("/v1/reports/flows").await;
    let e = &report["experiments"][0];
    assert_eq!(
        (e["flow"].as_str(), e["experiment"].as_str()),
        (Some("checkout-recovery"), Some("recovery-test")),
        "{report}"
    );
    let counts = |g: &Value| {
        (
            g["arm"].as_str().unwrap().to_string(),
            g["entered"].as_u64().unwrap(),
            g["messaged"].as_u64().unwrap(),
            g["converted"].as_u64().unwrap(),
            g["revenue"]["EUR"].as_f64().unwrap_or(0.0),
        )
    };
    assert_eq!(e["control"], "holdout", "{report}");
    assert_eq!(
        counts(&e["groups"][0]),
        ("holdout".into(), 2, 0, 1, 54.5),
        "{report}"
    );
    let treated = &e["groups"][1];
    assert_eq!(
        counts(treated),
        ("treatment".into(), 1, 1, 1, 80.0),
        "{report}"
    );
    assert_eq!(treated["conversion_uplift"]["difference"], 0.5, "{report}");
    assert_eq!(
        treated["incremental_revenue"]["EUR"],
        80.0 - 54.5 / 2.0,
        "{report}"
    );
    // Ann's reminder (the flow's second step) was her last touch before she bought.
    assert_eq!(e["steps"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(
        (
            e["steps"][0]["step"].as_i64(),
            e["steps"][0]["arm"].as_str(),
            e["steps"][0]["messaged"].as_u64(),
            e["steps"][0]["attributed_conversions"].as_u64()
        ),
        (Some(2), Some("treatment"), Some(1), Some(1)),
        "{report}"
    );
    assert_eq!(e["sample_ratio"]["mismatch"], false, "{report}");
    let csv = s
        .http
        .get(format!("{}/v1/reports/flows?format=csv", s.base))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // A period that is not a date or a time is refused, naming the parameter.
    let bad = s.admin("/v1/reports/flows?from=yesterday").await;
    assert_eq!(bad["errors"][0]["field"], "from", "{bad}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        lines[1].starts_with("checkout-recovery,recovery-test,,holdout,2,0,0,1,"),
        "{csv}"
    );
    assert!(
        lines[2].starts_with("checkout-recovery,recovery-test,,treatment,1,1,0,1,"),
        "{csv}"
    );
    assert!(
        lines[3].starts_with("checkout-recovery,recovery-test,2,treatment,,1,0,1,"),
        "{csv}"
    );
    s.stop().await;
}

async fn each_variant_waits_its_own_time_and_a_click_on_its_tracked_link_is_credited_to_its_step(
    s: Server,
) {
    use pronto_domain::experiment::{assign, Arm};
    let e = experiment("timing", "20%", &["tiers", "ten-min"]);
    let pick = |arm: Arm| {
        (0..)
            .map(|i| format!("chk_{i}"))
            .find(|k| assign("checkout-recovery", &e, k) == arm)
            .unwrap()
    };
    let fast = pick(Arm::Variant("ten-min".into()));
    let slow = pick(Arm::Variant("tiers".into()));
    let held = pick(Arm::Holdout);
    for who in ["ann", "bo", "cy"] {
        s.identify(json!({"userId": who, "traits": {"email": format!("{who}@example.com")}}))
            .await;
    }
    // 54.50 a cart: the tiers wait an hour; the ten-min variant ten minutes.
    s.track(checkout(&fast, "ann", "Ann")).await;
    s.track(checkout(&slow, "bo", "Bo")).await;
    s.track(checkout(&held, "cy", "Cy")).await;
    s.advance_and_settle(Duration::minutes(10)).await;
    let mails = s.sink.as_ref().unwrap().received();
    assert_eq!(mails.len(), 1, "only the ten-minute variant is due");
    assert!(mails[0].contains("To: ann@example.com"), "{}", mails[0]);
    let links = common::tracked_links(&mails[0]);
    let (link, to) = links
        .iter()
        .find(|(_, to)| to.starts_with(&format!("https://shop.example/checkout/{fast}?")))
        .unwrap_or_else(|| panic!("the restore link is tracked: {links:?}\n{}", mails[0]))
        .clone();
    assert!(to.contains("utm_campaign=checkout-recovery"), "{to}");

    // The link redirects to the cart, unchanged; pointed elsewhere, it is refused.
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The test server's public URL names port 0; the path and query are the link.
    let u = reqwest::Url::parse(&link).unwrap();
    let link = format!("{}{}?{}", s.base, u.path(), u.query().unwrap());
    let r = raw.get(&link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()["location"].to_str().unwrap(), to);
    let mut forged = reqwest::Url::parse(&link).unwrap();
    forged
        .query_pairs_mut()
        .clear()
        .append_pair("to", "https://evil.example/");
    let r = raw.get(forged.as_str()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "never an open redirect");
    assert!(r.headers().get("location").is_none());
    // A link scanner's HEAD is answered but not counted (the report below counts one click).
    let r = raw.head(&link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);

    s.advance_and_settle(Duration::minutes(50)).await;
    assert_eq!(
        s.sink.as_ref().unwrap().received().len(),
        2,
        "Bo's hour is up; Cy is held out"
    );
    // Ann buys after her click.
    s.advance_and_settle(Duration::minutes(5)).await;
    s.track(json!({"userId": "ann", "event": "Order Completed",
                   "properties": {"order_id": "o-ann", "checkout_id": fast, "total": 54.5, "currency": "EUR"}}))
        .await;

    let report = s.admin("/v1/reports/flows").await;
    let x = &report["experiments"][0];
    let groups: Vec<(&str, u64, u64, u64, u64)> = x["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["arm"].as_str().unwrap(),
                g["entered"].as_u64().unwrap(),
                g["messaged"].as_u64().unwrap(),
                g["clicked"].as_u64().unwrap(),
                g["converted"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("holdout", 1, 0, 0, 0),
            ("tiers", 1, 1, 0, 0),
            ("ten-min", 1, 1, 1, 1)
        ],
        "{report}"
    );
    assert_eq!(x["sample_ratio"]["expected"]["ten-min"], 0.4, "{report}");
    let fast_step = x["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["arm"] == "ten-min")
        .unwrap();
    assert_eq!(
        (
            fast_step["step"].as_i64(),
            fast_step["clicked"].as_u64(),
            fast_step["attributed_conversions"].as_u64(),
            fast_step["attributed_revenue"]["EUR"].as_f64()
        ),
        (Some(2), Some(1), Some(1), Some(54.5)),
        "{report}"
    );
    let table = s
        .http
        .get(format!("{}/v1/reports/flows?format=csv", s.base))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        table.contains("checkout-recovery,timing,2,ten-min,,1,1,1,"),
        "{table}"
    );

    // Promote the winner: every new run not held out takes it; the holdout stays as it was.
    let promote = |body: Value| {
        s.http
            .post(format!("{}/v1/admin/experiments/promote", s.base))
            .bearer_auth(common::ADMIN)
            .json(&body)
            .send()
    };
    let bad =
        promote(json!({"flow": "checkout-recovery", "experiment": "timing", "variant": "fast"}))
            .await
            .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["errors"][0]["field"], "variant", "{bad}");
    let stale =
        promote(json!({"flow": "checkout-recovery", "experiment": "old", "variant": "ten-min"}))
            .await
            .unwrap();
    assert_eq!(stale.status(), StatusCode::BAD_REQUEST);
    let done =
        promote(json!({"flow": "checkout-recovery", "experiment": "timing", "variant": "ten-min"}))
            .await
            .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let done: Value = done.json().await.unwrap();
    assert_eq!(
        (done["variant"].as_str(), done["source"].as_str()),
        (Some("ten-min"), Some("api"))
    );
    let slow2 = (1..)
        .map(|i| format!("chk_{i}"))
        .find(|k| assign("checkout-recovery", &e, k) == Arm::Variant("tiers".into()) && *k != slow)
        .unwrap();
    let held2 = (1..)
        .map(|i| format!("chk_{i}"))
        .find(|k| assign("checkout-recovery", &e, k) == Arm::Holdout && *k != held)
        .unwrap();
    s.identify(json!({"userId": "di", "traits": {"email": "di@example.com"}}))
        .await;
    s.identify(json!({"userId": "ed", "traits": {"email": "ed@example.com"}}))
        .await;
    s.track(checkout(&slow2, "di", "Di")).await;
    s.track(checkout(&held2, "ed", "Ed")).await;
    let arm_of = |c: Value| c["runs"][0]["arm"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        arm_of(s.admin("/v1/contacts?user_id=di").await),
        "ten-min",
        "drawn tiers, promoted"
    );
    assert_eq!(
        arm_of(s.admin("/v1/contacts?user_id=ed").await),
        "holdout",
        "the holdout goes on"
    );
    assert_eq!(
        arm_of(s.admin("/v1/contacts?user_id=bo").await),
        "tiers",
        "runs under way keep their group"
    );
    let report = s.admin("/v1/reports/flows").await;
    let x = &report["experiments"][0];
    assert_eq!(x["promoted"]["variant"], "ten-min", "{report}");
    assert!(
        x["sample_ratio"].is_null(),
        "the split changed within the period: {report}"
    );
    // Three months on, the link still redirects, to the shop's home, and counts nothing.
    s.advance(Duration::days(91));
    let r = raw.get(&link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()["location"], "https://shop.example/");
    s.stop().await;
}
