//! Flows on durable timers, against SQLite and PostgreSQL alike: triggers, exits (also out of order), the
//! guard at fire time, consent and the frequency cap, the outbox's delivery bookkeeping, and the race between
//! orders and timers at scale. Time is injected: the tests pass `now` to the store instead of sleeping.

use chrono::{DateTime, Duration, Utc};
use pronto_domain::event::parse_message;
use pronto_domain::flow::FlowConfig;
use pronto_domain::program::{MessageSettings, Program};
use pronto_domain::suppression::{Medium, Reason, Suppression, Verdict};
use pronto_domain::template::TemplateConfig;
use pronto_domain::{EventType, NewEvent, ParseOptions, WorkspaceId};
use pronto_store::testing::TestDb;
use pronto_store::{connect, Bounce, Delivery, Options, Store, SuppressionQuery};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

const CONFIG: &str = r#"
[[flow]]
id = "checkout-recovery"
trigger = { event = "Checkout Started" }
key = "properties.checkout_id"
exit = [{ event = "Order Completed", same = "key" }, { event = "Order Completed", same = "contact" }]
[[flow.step]]
wait = { by = "properties.value", tiers = [[0, "10m"], [50, "1h"], [500, "4h"]] }
[[flow.step]]
send = { channel = "email", template = "reminder" }

[[template]]
name = "reminder"
subject = "{{ contact.first_name or 'Hi' }}, your cart"
text = "{% for p in cart.products %}{{ p.name }} ({{ p.variant }}) x {{ p.quantity }}: {{ p.line_total | money(cart.currency) }}\n{% endfor %}Total {{ cart.total | money(cart.currency) }}\n{{ cart.restore_url }}"
html = "<p>Hi {{ contact.first_name }}</p>"
"#;

fn program(cap: Option<u32>) -> Arc<Program> {
    #[derive(Deserialize)]
    struct File {
        flow: Vec<FlowConfig>,
        template: Vec<TemplateConfig>,
    }
    let f: File = toml::from_str(CONFIG).unwrap();
    let settings = MessageSettings {
        from: "Shop <shop@example.com>".into(),
        reply_to: Some("help@example.com".into()),
        email_cap: cap.map(|n| (n, std::time::Duration::from_secs(86_400))),
        public_url: "https://pronto.example".into(),
        link_secret: b"secret".to_vec(),
        sms: false,
        track_clicks: true,
        soft_bounces: Default::default(),
    };
    Arc::new(Program::build(&f.flow, &f.template, settings).unwrap())
}

struct Env {
    store: Arc<dyn Store>,
    ws: WorkspaceId,
    _db: TestDb,
}

async fn env(backend: &str) -> Env {
    let db = TestDb::of(backend).await;
    let store = connect(&db.url, Options::default()).await.unwrap();
    store.shared().set_program(program(None));
    let ws = store.default_workspace().await.unwrap().id;
    Env { store, ws, _db: db }
}

fn track(v: Value) -> NewEvent {
    parse_message(v, Some(EventType::Track), None, ParseOptions::default()).unwrap()
}

fn checkout(id: &str, who: &str, value: f64, at: DateTime<Utc>) -> NewEvent {
    track(json!({
        "userId": who, "event": "Checkout Started", "timestamp": at.to_rfc3339(),
        "context": {"traits": {"email": format!("{who}@example.com")}},
        "properties": {"checkout_id": id, "value": value, "currency": "EUR",
            "checkout_url": format!("https://shop.example/c/{id}"),
            "products": [{"product_id": "p1", "name": "Mug", "variant": "blue", "price": value / 2.0, "quantity": 2}]}
    }))
}

fn order(checkout: &str, who: &str, at: DateTime<Utc>) -> NewEvent {
    track(
        json!({"userId": who, "event": "Order Completed", "timestamp": at.to_rfc3339(),
                 "properties": {"checkout_id": checkout, "order_id": format!("o-{checkout}"), "total": 10}}),
    )
}

fn identify(who: &str, traits: Value) -> NewEvent {
    parse_message(
        json!({"userId": who, "traits": traits}),
        Some(EventType::Identify),
        None,
        ParseOptions::default(),
    )
    .unwrap()
}

impl Env {
    async fn send(&self, events: Vec<NewEvent>, at: DateTime<Utc>) {
        self.store
            .ingest(self.ws, events.into_iter().map(Into::into).collect(), at)
            .await
            .unwrap();
    }

    async fn fire_all(&self, now: DateTime<Utc>) -> usize {
        let mut n = 0;
        loop {
            let f = self.store.fire_due(now, 500).await.unwrap();
            n += f.messages;
            if f.runs == 0 {
                return n;
            }
        }
    }
}

pronto_store::for_each_backend!(env;
    a_checkout_waits_by_cart_value_and_its_timer_writes_exactly_one_message_with_the_cart,
    an_order_for_the_same_checkout_cancels_the_timer_and_the_reason_is_recorded,
    an_order_that_arrived_before_its_checkout_still_wins,
    an_order_by_the_same_contact_after_the_checkout_ends_the_run_but_last_years_does_not,
    a_cart_update_refreshes_the_snapshot_and_pushes_the_timer_out,
    unsubscribed_and_do_not_contact_people_get_nothing_and_the_cap_skips_with_its_reason,
    delivery_bookkeeping_leases_retries_and_never_resends_a_sent_message,
    a_hard_bounce_lists_the_address_and_its_queued_messages_are_suppressed_not_claimed,
    the_third_soft_bounce_within_the_window_lists_the_address_for_a_while,
    admins_list_filter_and_remove_entries_and_a_lasting_entry_is_not_shortened,
    ten_thousand_carts_racing_their_orders_get_zero_mails_if_the_order_was_committed_first_and_one_otherwise,
);

async fn a_checkout_waits_by_cart_value_and_its_timer_writes_exactly_one_message_with_the_cart(
    e: Env,
) {
    e.send(vec![identify("ann", json!({"first_name": "Ann"}))], t0())
        .await;
    e.send(vec![checkout("c1", "ann", 120.0, t0())], t0()).await;
    // 120 is in the 50-500 tier: one hour.
    assert_eq!(
        e.store.next_due().await.unwrap(),
        Some(t0() + Duration::hours(1))
    );
    assert_eq!(e.fire_all(t0() + Duration::minutes(59)).await, 0);
    assert_eq!(e.fire_all(t0() + Duration::hours(1)).await, 1);
    assert_eq!(e.fire_all(t0() + Duration::hours(2)).await, 0, "fires once");
    assert_eq!(e.store.next_due().await.unwrap(), None);

    let m = e.store.messages(e.ws, 10).await.unwrap();
    assert_eq!(m.len(), 1);
    let m = &m[0];
    assert_eq!(m.to, "ann@example.com");
    assert_eq!(m.subject, "Ann, your cart");
    assert_eq!(m.reply_to.as_deref(), Some("help@example.com"));
    assert!(m.text.contains("Mug (blue) x 2: €120.00"), "{}", m.text);
    assert!(m.text.contains("Total €120.00"), "{}", m.text);
    assert_eq!(m.idempotency_key, format!("{}.1", m.run_id.unwrap()));
    // The restore link goes through the tracked redirect, signed for this message and this address.
    let tracked = format!("https://pronto.example/r/{}/{}/", e.ws, m.idempotency_key);
    assert!(m.text.contains(&tracked), "{}", m.text);
    assert!(
        m.text.contains("?to=https%3A%2F%2Fshop.example%2Fc%2Fc1%3Futm_source%3Dpronto%26utm_medium%3Demail%26utm_campaign%3Dcheckout-recovery%26pronto_message%3D"),
        "{}",
        m.text
    );
    assert_eq!(m.state, "queued");

    let run = e.store.run(e.ws, m.run_id.unwrap()).await.unwrap().unwrap();
    assert_eq!(run.state, "finished");
    let kinds: Vec<&str> = run.log.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(kinds, ["started", "waiting", "sent", "finished"]);
    let stats = e.store.flow_stats(e.ws).await.unwrap();
    assert_eq!(stats[0].finished, 1);
    assert_eq!(stats[0].messages.get("queued"), Some(&1));
}

async fn an_order_for_the_same_checkout_cancels_the_timer_and_the_reason_is_recorded(e: Env) {
    e.send(vec![checkout("c1", "ann", 20.0, t0())], t0()).await;
    let later = t0() + Duration::minutes(3);
    // A guest order (another contact) for the same checkout id: the key rule.
    e.send(vec![order("c1", "guest", later)], later).await;
    assert_eq!(e.store.next_due().await.unwrap(), None, "timer cancelled");
    assert_eq!(e.fire_all(t0() + Duration::hours(5)).await, 0);
    let stats = e.store.flow_stats(e.ws).await.unwrap();
    assert_eq!(
        stats[0]
            .exited
            .get("Order Completed for the same checkout_id"),
        Some(&1),
        "{stats:?}"
    );
    let contact = e
        .store
        .find_contact(e.ws, &pronto_domain::Identity::user_id("ann"))
        .await
        .unwrap()
        .unwrap();
    let runs = e.store.contact_runs(e.ws, contact).await.unwrap();
    let exit = runs[0].log.iter().find(|l| l.kind == "exited").unwrap();
    assert_eq!(
        exit.detail,
        "Order Completed at 2026-11-24T12:03:00Z for the same checkout_id"
    );
}

async fn an_order_that_arrived_before_its_checkout_still_wins(e: Env) {
    // The order is delivered first and even timestamped before the checkout.
    e.send(vec![order("c1", "ann", t0() - Duration::minutes(1))], t0())
        .await;
    e.send(vec![checkout("c1", "ann", 20.0, t0())], t0()).await;
    assert_eq!(e.fire_all(t0() + Duration::hours(5)).await, 0);
    let stats = e.store.flow_stats(e.ws).await.unwrap();
    assert_eq!(stats[0].active, 0);
    assert_eq!(stats[0].exited.values().sum::<i64>(), 1);
}

async fn an_order_by_the_same_contact_after_the_checkout_ends_the_run_but_last_years_does_not(
    e: Env,
) {
    e.send(vec![order("old", "bob", t0() - Duration::days(365))], t0())
        .await;
    e.send(
        vec![
            checkout("c1", "ann", 20.0, t0()),
            checkout("c2", "bob", 20.0, t0()),
        ],
        t0(),
    )
    .await;
    // Ann buys through another checkout five minutes later: the contact rule.
    e.send(
        vec![order("other", "ann", t0() + Duration::minutes(5))],
        t0() + Duration::minutes(5),
    )
    .await;
    assert_eq!(e.fire_all(t0() + Duration::hours(1)).await, 1);
    let m = e.store.messages(e.ws, 10).await.unwrap();
    assert_eq!(m[0].to, "bob@example.com");
}

async fn a_cart_update_refreshes_the_snapshot_and_pushes_the_timer_out(e: Env) {
    e.send(vec![checkout("c1", "ann", 20.0, t0())], t0()).await;
    let later = t0() + Duration::minutes(8);
    e.send(vec![checkout("c1", "ann", 70.0, later)], later)
        .await;
    // Now a 70 cart, idle since minute 8: due at 1:08, not 0:10.
    assert_eq!(
        e.store.next_due().await.unwrap(),
        Some(later + Duration::hours(1))
    );
    assert_eq!(e.fire_all(t0() + Duration::minutes(30)).await, 0);
    assert_eq!(e.fire_all(later + Duration::hours(1)).await, 1);
    let m = e.store.messages(e.ws, 10).await.unwrap();
    assert!(m[0].text.contains("Total €70.00"), "{}", m[0].text);
    let stats = e.store.flow_stats(e.ws).await.unwrap();
    assert_eq!(stats[0].finished, 1, "one run, refreshed, not two");
}

async fn unsubscribed_and_do_not_contact_people_get_nothing_and_the_cap_skips_with_its_reason(
    e: Env,
) {
    e.store.shared().set_program(program(Some(1)));
    e.send(
        vec![
            identify("ann", json!({"unsubscribed": true})),
            identify("bob", json!({"do_not_contact": true})),
        ],
        t0(),
    )
    .await;
    e.send(
        vec![
            checkout("a1", "ann", 20.0, t0()),
            checkout("b1", "bob", 20.0, t0()),
            checkout("c1", "cat", 20.0, t0()),
            checkout("c2", "cat", 20.0, t0()),
        ],
        t0(),
    )
    .await;
    assert_eq!(e.fire_all(t0() + Duration::hours(1)).await, 1);
    let m = e.store.messages(e.ws, 10).await.unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].to, "cat@example.com");
    let stats = &e.store.flow_stats(e.ws).await.unwrap()[0];
    assert_eq!(stats.exited.get("unsubscribed"), Some(&1), "{stats:?}");
    assert_eq!(stats.exited.get("do not contact"), Some(&1), "{stats:?}");
    assert_eq!(stats.skipped.get("frequency cap"), Some(&1), "{stats:?}");
}

async fn delivery_bookkeeping_leases_retries_and_never_resends_a_sent_message(e: Env) {
    e.send(
        vec![
            checkout("c1", "ann", 20.0, t0()),
            checkout("c2", "bob", 20.0, t0()),
        ],
        t0(),
    )
    .await;
    let due = t0() + Duration::minutes(10);
    assert_eq!(e.fire_all(due).await, 2);
    let lease = due + Duration::minutes(5);
    let got = e.store.claim_messages(due, 10, lease).await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|m| m.attempts == 1));
    assert!(
        e.store
            .claim_messages(due, 10, lease)
            .await
            .unwrap()
            .is_empty(),
        "leased messages are not claimed twice"
    );
    let (a, b) = (&got[0], &got[1]);
    e.store
        .record_deliveries(&[(a.id, Delivery::Sent { transport: "smtp" })], due)
        .await
        .unwrap();
    e.store
        .record_deliveries(
            &[(
                b.id,
                Delivery::Retry {
                    at: due + Duration::minutes(1),
                    error: "451 try later".into(),
                },
            )],
            due,
        )
        .await
        .unwrap();
    let again = e
        .store
        .claim_messages(due + Duration::minutes(1), 10, lease)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, b.id);
    assert_eq!(again[0].attempts, 2);
    // A late "failed" for a sent message (a stale worker) changes nothing.
    e.store
        .record_deliveries(
            &[(
                a.id,
                Delivery::Failed {
                    error: "late".into(),
                    bounce: None,
                },
            )],
            due,
        )
        .await
        .unwrap();
    e.store
        .record_deliveries(
            &[(
                b.id,
                Delivery::Failed {
                    error: "550 no such user".into(),
                    bounce: None,
                },
            )],
            due,
        )
        .await
        .unwrap();
    let views: HashMap<_, _> = e
        .store
        .messages(e.ws, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    assert_eq!(views[&a.id].state, "sent");
    assert_eq!(views[&a.id].transport.as_deref(), Some("smtp"));
    assert_eq!(views[&b.id].state, "failed");
    assert_eq!(views[&b.id].last_error.as_deref(), Some("550 no such user"));
    assert!(e
        .store
        .claim_messages(due + Duration::days(1), 10, lease)
        .await
        .unwrap()
        .is_empty());
}

/// 10,000 carts, due at the same instant. Orders: committed well before the due time, racing the timers
/// (sent while batches fire, on PostgreSQL through two writers), delivered before their checkout, timestamped
/// before it, and after everything fired. The rule checked for every cart: an order whose commit was
/// acknowledged before a timer batch began means that batch sent that cart nothing; every cart without such an
/// order gets exactly one message.
async fn ten_thousand_carts_racing_their_orders_get_zero_mails_if_the_order_was_committed_first_and_one_otherwise(
    e: Env,
) {
    const N: usize = 10_000;
    let id = |i: usize| format!("k{i}");
    let who = |i: usize| format!("p{i}");
    // Group by i % 5: 0 ordered before due; 1 races the timers; 2 ordered before its checkout was sent
    // (delivered first); 3 ordered after everything fired; 4 never orders.
    let early: Vec<NewEvent> = (0..N)
        .filter(|i| i % 5 == 2)
        .map(|i| order(&id(i), &who(i), t0() - Duration::seconds(30)))
        .collect();
    for chunk in early.chunks(500) {
        e.send(chunk.to_vec(), t0()).await;
    }
    let carts: Vec<NewEvent> = (0..N)
        .map(|i| checkout(&id(i), &who(i), 20.0, t0()))
        .collect();
    for chunk in carts.chunks(500) {
        e.send(chunk.to_vec(), t0()).await;
    }
    let before: Vec<NewEvent> = (0..N)
        .filter(|i| i % 5 == 0)
        .map(|i| order(&id(i), &who(i), t0() + Duration::minutes(5)))
        .collect();
    for chunk in before.chunks(500) {
        e.send(chunk.to_vec(), t0()).await;
    }

    let due = t0() + Duration::minutes(10);
    let acked: Arc<std::sync::Mutex<HashMap<String, std::time::Instant>>> = Default::default();
    let racer = {
        let store = e.store.clone();
        let ws = e.ws;
        let acked = acked.clone();
        tokio::spawn(async move {
            let racing: Vec<usize> = (0..N).filter(|i| i % 5 == 1).collect();
            for chunk in racing.chunks(20) {
                let events: Vec<_> = chunk
                    .iter()
                    .map(|&i| order(&id(i), &who(i), due).into())
                    .collect();
                store.ingest(ws, events, due).await.unwrap();
                let now = std::time::Instant::now();
                let mut a = acked.lock().unwrap();
                for &i in chunk {
                    a.insert(id(i), now);
                }
            }
        })
    };
    let mut batches: Vec<(std::time::Instant, Vec<String>)> = Vec::new();
    loop {
        let began = std::time::Instant::now();
        let f = e.store.fire_due(due, 100).await.unwrap();
        if f.runs == 0 && racer.is_finished() {
            break;
        }
        batches.push((began, f.sent_keys));
    }
    racer.await.unwrap();
    let after: Vec<NewEvent> = (0..N)
        .filter(|i| i % 5 == 3)
        .map(|i| order(&id(i), &who(i), due + Duration::minutes(1)))
        .collect();
    for chunk in after.chunks(500) {
        e.send(chunk.to_vec(), due).await;
    }

    let acked = acked.lock().unwrap().clone();
    let mut mailed: HashSet<String> = HashSet::new();
    for (began, keys) in &batches {
        for k in keys {
            assert!(mailed.insert(k.clone()), "{k} mailed twice");
            if let Some(ack) = acked.get(k) {
                assert!(
                    ack > began,
                    "{k}: its order was committed before the batch that mailed it began"
                );
            }
        }
    }
    for i in 0..N {
        let got = mailed.contains(&id(i));
        match i % 5 {
            0 | 2 => assert!(!got, "cart {i} (order committed before due) was mailed"),
            3 | 4 => assert!(got, "cart {i} (no order before the timer) was not mailed"),
            _ => {}
        }
    }
    let stored = e.store.messages(e.ws, (N + 1) as u32).await.unwrap();
    assert_eq!(
        stored.len(),
        mailed.len(),
        "the outbox holds exactly what the batches reported"
    );
}

fn bounce(e: &Env, address: &str, verdict: Verdict) -> Option<Bounce> {
    Some(Bounce {
        workspace: e.ws,
        medium: Medium::Email,
        address: address.into(),
        verdict,
        source: "smtp",
        message: None,
    })
}

async fn a_hard_bounce_lists_the_address_and_its_queued_messages_are_suppressed_not_claimed(
    e: Env,
) {
    e.send(
        vec![
            checkout("c1", "gone", 20.0, t0()),
            checkout("c2", "gone", 20.0, t0()),
            checkout("c3", "ann", 20.0, t0()),
        ],
        t0(),
    )
    .await;
    let due = t0() + Duration::minutes(10);
    assert_eq!(e.fire_all(due).await, 3);
    let lease = due + Duration::minutes(5);
    let first = e.store.claim_messages(due, 1, lease).await.unwrap();
    assert_eq!(first.len(), 1);
    let gone = first
        .iter()
        .find(|m| m.to == "gone@example.com")
        .cloned()
        .unwrap_or_else(|| panic!("the first due is one of gone's: {first:?}"));
    assert_eq!(gone.workspace, e.ws);
    let refusal = "permanent error (550): 5.1.1 no such user";
    e.store
        .record_deliveries(
            &[(
                gone.id,
                Delivery::Failed {
                    error: refusal.into(),
                    bounce: bounce(
                        &e,
                        "gone@example.com",
                        Verdict::Suppress {
                            reason: Reason::HardBounce,
                            detail: refusal.into(),
                        },
                    ),
                },
            )],
            due,
        )
        .await
        .unwrap();
    let listed = e
        .store
        .suppressions(e.ws, &SuppressionQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (
            listed[0].address.as_str(),
            listed[0].reason,
            listed[0].source.as_str(),
            listed[0].since,
            listed[0].until
        ),
        ("gone@example.com", Reason::HardBounce, "smtp", due, None)
    );
    // The rest: gone's second message is suppressed in the claim, ann's is sent.
    let rest = e.store.claim_messages(due, 10, lease).await.unwrap();
    assert_eq!(
        rest.iter().map(|m| m.to.as_str()).collect::<Vec<_>>(),
        ["ann@example.com"]
    );
    let views = e.store.messages(e.ws, 10).await.unwrap();
    let suppressed: Vec<_> = views.iter().filter(|m| m.state == "suppressed").collect();
    assert_eq!(suppressed.len(), 1, "{views:?}");
    let s = suppressed[0];
    assert_eq!(
        (s.to.as_str(), s.attempts),
        ("gone@example.com", 0),
        "never attempted"
    );
    let why = s.last_error.as_deref().unwrap_or("");
    assert!(
        why.starts_with("suppressed: hard bounce") && why.contains("5.1.1 no such user"),
        "{why}"
    );
    e.store
        .record_deliveries(&[(rest[0].id, Delivery::Sent { transport: "smtp" })], due)
        .await
        .unwrap();
    assert!(
        e.store
            .claim_messages(due + Duration::days(1), 10, lease + Duration::days(1))
            .await
            .unwrap()
            .is_empty(),
        "a suppressed message is never claimed again"
    );
    let stats = e.store.flow_stats(e.ws).await.unwrap();
    assert_eq!(stats[0].messages.get("suppressed"), Some(&1));
}

async fn the_third_soft_bounce_within_the_window_lists_the_address_for_a_while(e: Env) {
    let soft = |e: &Env, at: DateTime<Utc>| {
        let outcome = Delivery::Failed {
            error: "552 5.2.2 mailbox full".into(),
            bounce: bounce(
                e,
                "full@example.com",
                Verdict::SoftBounce {
                    detail: "552 5.2.2 mailbox full".into(),
                },
            ),
        };
        let store = e.store.clone();
        async move {
            store
                .record_deliveries(&[(pronto_domain::MessageId::new(), outcome)], at)
                .await
                .unwrap()
        }
    };
    let listed = |e: &Env| {
        let store = e.store.clone();
        let ws = e.ws;
        async move {
            store
                .suppressions(ws, &SuppressionQuery::default())
                .await
                .unwrap()
        }
    };
    // Two long ago, outside the 7-day window; then two within it: not yet.
    soft(&e, t0() - Duration::days(20)).await;
    soft(&e, t0() - Duration::days(19)).await;
    soft(&e, t0() - Duration::days(2)).await;
    soft(&e, t0()).await;
    assert!(listed(&e).await.is_empty());
    soft(&e, t0() + Duration::hours(1)).await;
    let l = listed(&e).await;
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].reason, Reason::SoftBounces);
    assert_eq!(l[0].source, "outbox");
    assert_eq!(
        l[0].until,
        Some(t0() + Duration::hours(1) + Duration::days(7))
    );
    assert!(
        l[0].detail
            .as_deref()
            .unwrap_or("")
            .starts_with("3 soft bounces within 168 h"),
        "{l:?}"
    );
}

async fn admins_list_filter_and_remove_entries_and_a_lasting_entry_is_not_shortened(e: Env) {
    let entry = |address: &str, medium, reason, h: i64| Suppression {
        medium,
        address: address.into(),
        reason,
        source: "api".into(),
        detail: None,
        since: t0() + Duration::hours(h),
        until: None,
    };
    let entries = [
        entry("a@example.com", Medium::Email, Reason::Manual, 1),
        entry("b@example.com", Medium::Email, Reason::Complaint, 2),
        entry("+14155552671", Medium::Sms, Reason::Unsubscribed, 3),
    ];
    assert_eq!(e.store.suppress(e.ws, &entries).await.unwrap(), 3);
    assert_eq!(
        e.store.suppress(e.ws, &entries).await.unwrap(),
        0,
        "the same again changes nothing"
    );
    let q = |medium, address: Option<&str>, reason, limit, offset| SuppressionQuery {
        medium,
        address: address.map(str::to_string),
        reason,
        limit,
        offset,
    };
    let cases = [
        (
            "all, newest first",
            q(None, None, None, None, 0),
            vec!["+14155552671", "b@example.com", "a@example.com"],
        ),
        (
            "by medium",
            q(Some(Medium::Email), None, None, None, 0),
            vec!["b@example.com", "a@example.com"],
        ),
        (
            "by address",
            q(Some(Medium::Email), Some("a@example.com"), None, None, 0),
            vec!["a@example.com"],
        ),
        (
            "by reason",
            q(None, None, Some(Reason::Complaint), None, 0),
            vec!["b@example.com"],
        ),
        (
            "a page",
            q(None, None, None, Some(1), 1),
            vec!["b@example.com"],
        ),
    ];
    for (name, query, want) in cases {
        let got: Vec<String> = e
            .store
            .suppressions(e.ws, &query)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.address)
            .collect();
        assert_eq!(got, want, "{name}");
    }
    // Soft bounces do not shorten a lasting entry.
    let temporary = Suppression {
        reason: Reason::SoftBounces,
        until: Some(t0() + Duration::days(7)),
        ..entry("a@example.com", Medium::Email, Reason::SoftBounces, 5)
    };
    assert_eq!(e.store.suppress(e.ws, &[temporary]).await.unwrap(), 0);
    let a = e
        .store
        .suppressions(e.ws, &q(None, Some("a@example.com"), None, None, 0))
        .await
        .unwrap();
    assert_eq!((a[0].reason, a[0].until), (Reason::Manual, None));
    assert!(e
        .store
        .unsuppress(e.ws, Medium::Email, "a@example.com")
        .await
        .unwrap());
    assert!(
        !e.store
            .unsuppress(e.ws, Medium::Email, "a@example.com")
            .await
            .unwrap(),
        "gone already"
    );
    assert!(
        !e.store
            .unsuppress(e.ws, Medium::Sms, "b@example.com")
            .await
            .unwrap(),
        "another medium"
    );
    let other = WorkspaceId(uuid::Uuid::now_v7());
    assert!(
        e.store
            .suppressions(other, &SuppressionQuery::default())
            .await
            .unwrap()
            .is_empty(),
        "lists are per workspace"
    );
}
