//! Offer pools against SQLite and PostgreSQL alike: each message gets its own code in the transaction that
//! writes it, an empty pool follows its fallback, and two processes firing at once on one database never give
//! a code twice.

use chrono::{DateTime, Duration, Utc};
use pronto_domain::event::parse_message;
use pronto_domain::flow::FlowConfig;
use pronto_domain::offer::{OfferConfig, Offers};
use pronto_domain::program::{MessageSettings, Program};
use pronto_domain::template::TemplateConfig;
use pronto_domain::{EventType, NewEvent, ParseOptions, WorkspaceId};
use pronto_store::testing::TestDb;
use pronto_store::{connect, Options, Store};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashSet;
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
[[flow.step]]
wait = "10m"
[[flow.step]]
send = { channel = "email", template = "offer", offer = "ten" }

[[template]]
name = "offer"
subject = "10% off your cart"
text = "Your code: {{ offer.code }}."

[[offer]]
id = "ten"
"#;

fn program() -> Arc<Program> {
    #[derive(Deserialize)]
    struct File {
        flow: Vec<FlowConfig>,
        template: Vec<TemplateConfig>,
        offer: Vec<OfferConfig>,
    }
    let f: File = toml::from_str(CONFIG).unwrap();
    let settings = MessageSettings {
        link_secret: b"secret".to_vec(),
        ..MessageSettings::default()
    };
    let mut p = Program::build(&f.flow, &f.template, settings).unwrap();
    p.offers = Offers::check(&f.offer).unwrap();
    Arc::new(p)
}

struct Env {
    store: Arc<dyn Store>,
    ws: WorkspaceId,
    db: TestDb,
}

async fn env(backend: &str) -> Env {
    let db = TestDb::of(backend).await;
    let store = connect(&db.url, Options::default()).await.unwrap();
    store.shared().set_program(program());
    let ws = store.default_workspace().await.unwrap().id;
    Env { store, ws, db }
}

fn checkout(i: usize) -> NewEvent {
    parse_message(
        json!({"userId": format!("u{i}"), "event": "Checkout Started",
               "context": {"traits": {"email": format!("u{i}@example.com")}},
               "properties": {"checkout_id": format!("c{i}"), "value": 20}}),
        Some(EventType::Track),
        None,
        ParseOptions::default(),
    )
    .unwrap()
}

/// Fires everything due at `now`; answers the messages written.
async fn fire_all(store: &dyn Store, now: DateTime<Utc>) -> usize {
    let mut n = 0;
    loop {
        let f = store.fire_due(now, 50).await.unwrap();
        n += f.messages;
        if f.runs == 0 {
            return n;
        }
    }
}

/// The code each message shows.
async fn codes_sent(e: &Env) -> Vec<String> {
    e.store
        .messages(e.ws, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|m| {
            m.text
                .strip_prefix("Your code: ")
                .and_then(|t| t.strip_suffix('.'))
                .unwrap_or_else(|| panic!("{}", m.text))
                .to_string()
        })
        .collect()
}

fn codes(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

pronto_store::for_each_backend!(env;
    each_message_gets_its_own_code_and_an_empty_pool_skips_the_step_with_the_reason,
    two_processes_firing_at_once_on_one_database_never_give_a_code_twice,
);

async fn each_message_gets_its_own_code_and_an_empty_pool_skips_the_step_with_the_reason(e: Env) {
    let added = e
        .store
        .add_offer_codes(e.ws, "ten", &codes("TEN", 3), t0())
        .await
        .unwrap();
    assert_eq!(added, 3);
    let again = e
        .store
        .add_offer_codes(e.ws, "ten", &codes("TEN", 3), t0())
        .await
        .unwrap();
    assert_eq!(again, 0, "a code already in the pool is left as it is");
    let carts: Vec<_> = (0..5).map(|i| checkout(i).into()).collect();
    e.store.ingest(e.ws, carts, t0()).await.unwrap();
    assert_eq!(fire_all(&*e.store, t0() + Duration::minutes(10)).await, 3);

    let mut sent = codes_sent(&e).await;
    sent.sort();
    assert_eq!(
        sent,
        codes("TEN", 3),
        "three messages, three different codes"
    );
    let stock = e.store.offer_stock(e.ws).await.unwrap();
    assert_eq!((stock[0].unused, stock[0].used), (0, 3));
    // The two runs the pool could not serve say why.
    let mut skipped = 0;
    for i in 3..5 {
        let c = e
            .store
            .find_contact(e.ws, &pronto_domain::Identity::user_id(format!("u{i}")))
            .await
            .unwrap();
        let runs = e.store.contact_runs(e.ws, c.unwrap()).await.unwrap();
        skipped += runs[0]
            .log
            .iter()
            .filter(|l| l.kind == "skipped" && l.detail == "offer `ten` has no unused code left")
            .count();
    }
    assert_eq!(skipped, 2);
}

async fn two_processes_firing_at_once_on_one_database_never_give_a_code_twice(e: Env) {
    let (carts, pool) = (400, 300);
    e.store
        .add_offer_codes(e.ws, "ten", &codes("TEN", pool), t0())
        .await
        .unwrap();
    for chunk in (0..carts).collect::<Vec<_>>().chunks(100) {
        let events = chunk.iter().map(|i| checkout(*i).into()).collect();
        e.store.ingest(e.ws, events, t0()).await.unwrap();
    }
    // A second process: its own connections to the same database.
    let other = connect(&e.db.url, Options::default()).await.unwrap();
    other.shared().set_program(program());
    let now = t0() + Duration::minutes(10);
    let (a, b) = tokio::join!(fire_all(&*e.store, now), fire_all(&*other, now));
    assert_eq!(a + b, pool, "{a} + {b}: every code given, no more");
    let sent = codes_sent(&e).await;
    let distinct: HashSet<&String> = sent.iter().collect();
    assert_eq!(sent.len(), pool);
    assert_eq!(distinct.len(), pool, "no code was shown to two people");
    let stock = e.store.offer_stock(e.ws).await.unwrap();
    assert_eq!((stock[0].unused, stock[0].used), (0, pool as u64));
    other.close().await;
}
