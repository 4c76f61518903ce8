//! The one conformance suite: every case runs against SQLite and against PostgreSQL, so the two
//! implementations of `Store` cannot drift apart.

use chrono::{DateTime, Duration, Utc};
use pronto_domain::catalog::{recommend, Change, Product};
use pronto_domain::event::parse_message;
use pronto_domain::{
    ContactId, EventType, Identity, Lead, NewEvent, ParseOptions, Region, WorkspaceId,
};
use pronto_store::testing::TestDb;
use pronto_store::{connect, IngestItem, KeyKind, KeyOrigin, Options, Store};
use serde_json::{json, Value};
use std::sync::Arc;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn msg(kind: EventType, v: Value) -> NewEvent {
    parse_message(v, Some(kind), None, ParseOptions::default()).expect("valid test message")
}

struct Env {
    store: Arc<dyn Store>,
    ws: WorkspaceId,
    db: TestDb,
}

async fn env(backend: &str) -> Env {
    let db = TestDb::of(backend).await;
    let store = connect(&db.url, Options::default())
        .await
        .expect("open store");
    let ws = store.default_workspace().await.unwrap().id;
    Env { store, ws, db }
}

impl Env {
    async fn one(&self, ev: NewEvent) -> pronto_store::Ingested {
        self.store
            .ingest(self.ws, vec![ev.into()], t0())
            .await
            .unwrap()
            .remove(0)
    }
}

pronto_store::for_each_backend!(env;
    events_get_increasing_sequence_numbers_and_are_read_back_as_sent,
    a_retry_with_the_same_message_id_is_a_no_op_that_answers_the_first_delivery,
    an_anonymous_cart_later_identified_by_email_merges_into_that_contact_with_its_history,
    two_different_user_ids_never_merge,
    identify_traits_merge_newer_wins_and_null_unsets,
    the_timeline_is_newest_first_and_pages_with_before,
    a_lead_is_stored_with_its_event_and_a_retried_lead_answers_the_same_ids,
    keys_belong_to_one_workspace_and_one_kind,
    the_default_workspace_is_created_once,
    concurrent_first_events_of_one_person_end_in_one_contact,
    accepted_events_survive_closing_and_reopening_the_store,
    one_request_resolves_its_events_in_order_including_a_merge_inside_it,
    an_unmapped_shop_delivery_is_kept_once_as_received,
    the_catalog_keeps_the_newest_product_and_orders_teach_what_is_bought_together,
);

async fn events_get_increasing_sequence_numbers_and_are_read_back_as_sent(e: Env) {
    let sent = json!({"anonymousId": "a1", "event": "Product Added", "messageId": "m1",
                      "timestamp": "2026-11-24T11:59:00Z",
                      "properties": {"cart_id": "c1", "price": 9.5, "name": "Mug", "odd": {"x": [1, null]}}});
    let first = e.one(msg(EventType::Track, sent.clone())).await;
    let second = e
        .one(msg(
            EventType::Page,
            json!({"anonymousId": "a1", "name": "Home"}),
        ))
        .await;
    assert!(second.seq > first.seq);
    assert_eq!(first.contact_id, second.contact_id);
    assert!(!first.duplicate);
    let timeline = e
        .store
        .timeline(e.ws, first.contact_id, None, 10)
        .await
        .unwrap();
    let track = timeline.iter().find(|ev| ev.id == first.event_id).unwrap();
    assert_eq!(track.payload, sent);
    assert_eq!(track.kind, "track");
    assert_eq!(track.name.as_deref(), Some("Product Added"));
    assert_eq!(track.message_id.as_deref(), Some("m1"));
    assert_eq!(track.timestamp, Some(t0() - Duration::minutes(1)));
    assert_eq!(track.received_at, t0());
}

async fn a_retry_with_the_same_message_id_is_a_no_op_that_answers_the_first_delivery(e: Env) {
    let ev = msg(
        EventType::Track,
        json!({"userId": "u1", "event": "Signed Up", "messageId": "dup-1"}),
    );
    let first = e.one(ev.clone()).await;
    let again = e.one(ev.clone()).await;
    assert!(again.duplicate);
    assert_eq!(
        (again.event_id, again.seq, again.contact_id),
        (first.event_id, first.seq, first.contact_id)
    );
    // A retry inside one request is recognised too.
    let both = e
        .store
        .ingest(e.ws, vec![ev.clone().into(), ev.into()], t0())
        .await
        .unwrap();
    assert!(both
        .iter()
        .all(|i| i.duplicate && i.event_id == first.event_id));
    assert_eq!(
        e.store
            .timeline(e.ws, first.contact_id, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn an_anonymous_cart_later_identified_by_email_merges_into_that_contact_with_its_history(
    e: Env,
) {
    let cart = e
        .one(msg(
            EventType::Track,
            json!({"anonymousId": "anon-7", "event": "Checkout Started",
                                          "properties": {"checkout_id": "k1", "value": 40}}),
        ))
        .await;
    let known = e
        .one(msg(
            EventType::Identify,
            json!({"userId": "cust-1", "traits": {"email": "ann@shop.example", "name": "Ann"}}),
        ))
        .await;
    assert_ne!(cart.contact_id, known.contact_id);
    let link = e
        .one(msg(
            EventType::Track,
            json!({"anonymousId": "anon-7", "event": "Email Captured",
                                          "context": {"traits": {"email": "ANN@shop.example"}}}),
        ))
        .await;
    assert_eq!(
        link.contact_id, known.contact_id,
        "the user's contact survives"
    );

    let contact = e
        .store
        .contact(e.ws, known.contact_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contact.merged_from, vec![cart.contact_id]);
    assert!(contact
        .identities
        .contains(&Identity::anonymous_id("anon-7")));
    assert!(contact.identities.contains(&Identity::user_id("cust-1")));
    assert_eq!(contact.traits["name"], "Ann");
    let names: Vec<_> = e
        .store
        .timeline(e.ws, known.contact_id, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|ev| ev.name.unwrap_or_default())
        .collect();
    assert_eq!(names, vec!["Email Captured", "", "Checkout Started"]);
    // The merged contact's id still answers, as the contact it became.
    let old = e
        .store
        .contact(e.ws, cart.contact_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.id, known.contact_id);
    assert_eq!(
        e.store
            .find_contact(e.ws, &Identity::anonymous_id("anon-7"))
            .await
            .unwrap(),
        Some(known.contact_id)
    );
}

async fn two_different_user_ids_never_merge(e: Env) {
    let a = e
        .one(msg(
            EventType::Identify,
            json!({"userId": "A", "traits": {"email": "shared@x.io"}}),
        ))
        .await;
    let b = e
        .one(msg(
            EventType::Identify,
            json!({"userId": "B", "traits": {"email": "shared@x.io"}}),
        ))
        .await;
    assert_ne!(a.contact_id, b.contact_id);
    let email = Identity {
        kind: pronto_domain::IdentityKind::Email,
        value: "shared@x.io".into(),
    };
    assert_eq!(
        e.store.find_contact(e.ws, &email).await.unwrap(),
        Some(a.contact_id)
    );
    assert!(e
        .store
        .contact(e.ws, b.contact_id)
        .await
        .unwrap()
        .unwrap()
        .merged_from
        .is_empty());
}

async fn identify_traits_merge_newer_wins_and_null_unsets(e: Env) {
    let first = e
        .one(msg(
            EventType::Identify,
            json!({"userId": "u", "traits": {"name": "Ann", "plan": "free", "city": "Oslo"}}),
        ))
        .await;
    e.one(msg(
        EventType::Identify,
        json!({"userId": "u", "traits": {"plan": "pro", "city": null}}),
    ))
    .await;
    let c = e
        .store
        .contact(e.ws, first.contact_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Value::Object(c.traits),
        json!({"name": "Ann", "plan": "pro"})
    );
}

async fn the_timeline_is_newest_first_and_pages_with_before(e: Env) {
    let items: Vec<IngestItem> = (0..7)
        .map(|i| {
            msg(
                EventType::Track,
                json!({"userId": "u", "event": format!("E{i}")}),
            )
            .into()
        })
        .collect();
    let done = e.store.ingest(e.ws, items, t0()).await.unwrap();
    let c = done[0].contact_id;
    let page1 = e.store.timeline(e.ws, c, None, 3).await.unwrap();
    let page2 = e
        .store
        .timeline(e.ws, c, Some(page1.last().unwrap().seq), 3)
        .await
        .unwrap();
    let page3 = e
        .store
        .timeline(e.ws, c, Some(page2.last().unwrap().seq), 3)
        .await
        .unwrap();
    let names: Vec<String> = [page1, page2, page3]
        .concat()
        .into_iter()
        .filter_map(|ev| ev.name)
        .collect();
    assert_eq!(names, vec!["E6", "E5", "E4", "E3", "E2", "E1", "E0"]);
    assert!(e
        .store
        .timeline(e.ws, ContactId::new(), None, 3)
        .await
        .unwrap()
        .is_empty());
}

async fn a_lead_is_stored_with_its_event_and_a_retried_lead_answers_the_same_ids(e: Env) {
    let body =
        json!({"name": "Bo", "email": "bo@x.io", "phone": "+1 415 555 2671", "budget": 5000});
    let lead = Lead::parse(body.as_object().unwrap(), Region::default()).unwrap();
    let item = IngestItem {
        event: lead.to_event(Some("lead-key-1".into())),
        lead: Some(lead),
        action: None,
    };
    let first = e
        .store
        .ingest(e.ws, vec![item.clone()], t0())
        .await
        .unwrap()
        .remove(0);
    let again = e
        .store
        .ingest(e.ws, vec![item], t0())
        .await
        .unwrap()
        .remove(0);
    assert!(first.lead_id.is_some());
    assert_eq!(
        (again.lead_id, again.event_id, again.duplicate),
        (first.lead_id, first.event_id, true)
    );
    let c = e
        .store
        .contact(e.ws, first.contact_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.traits["phone"], "+14155552671");
    assert!(c.identities.contains(&Identity {
        kind: pronto_domain::IdentityKind::Phone,
        value: "+14155552671".into()
    }));
    let tl = e.store.timeline(e.ws, c.id, None, 5).await.unwrap();
    assert_eq!(tl[0].name.as_deref(), Some("Lead Submitted"));
    assert_eq!(tl[0].payload["properties"]["fields"]["budget"], 5000);
}

async fn keys_belong_to_one_workspace_and_one_kind(e: Env) {
    assert!(!e.store.has_key(e.ws, KeyKind::Write).await.unwrap());
    e.store
        .add_keys(e.ws, &[(KeyKind::Write, "hash-w")], KeyOrigin::Api, None)
        .await
        .unwrap();
    e.store
        .add_keys(e.ws, &[(KeyKind::Write, "hash-w")], KeyOrigin::Api, None)
        .await
        .unwrap();
    assert!(e.store.has_key(e.ws, KeyKind::Write).await.unwrap());
    assert!(!e.store.has_key(e.ws, KeyKind::Admin).await.unwrap());
    assert_eq!(
        e.store
            .key_workspace(KeyKind::Write, "hash-w")
            .await
            .unwrap(),
        Some(e.ws)
    );
    assert_eq!(
        e.store
            .key_workspace(KeyKind::Admin, "hash-w")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        e.store
            .key_workspace(KeyKind::Write, "other")
            .await
            .unwrap(),
        None
    );
}

async fn the_default_workspace_is_created_once(e: Env) {
    let again = e.store.default_workspace().await.unwrap();
    assert_eq!(again.id, e.ws);
    assert!(!again.created);
}

async fn concurrent_first_events_of_one_person_end_in_one_contact(e: Env) {
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = e.store.clone();
        let ws = e.ws;
        tasks.push(tokio::spawn(async move {
            let ev = msg(
                EventType::Track,
                json!({"anonymousId": format!("device-{}", i % 4), "event": "Cart Viewed",
                                                 "properties": {"email": "same@person.io"}}),
            );
            store
                .ingest(ws, vec![ev.into()], t0())
                .await
                .unwrap()
                .remove(0)
                .contact_id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    let live: std::collections::HashSet<ContactId> = {
        let mut s = std::collections::HashSet::new();
        for id in ids {
            s.insert(e.store.contact(e.ws, id).await.unwrap().unwrap().id);
        }
        s
    };
    assert_eq!(live.len(), 1, "one person, one contact: {live:?}");
    let c = live.into_iter().next().unwrap();
    assert_eq!(
        e.store.timeline(e.ws, c, None, 100).await.unwrap().len(),
        40
    );
}

async fn accepted_events_survive_closing_and_reopening_the_store(e: Env) {
    let done = e
        .one(msg(
            EventType::Track,
            json!({"userId": "u", "event": "Order Completed", "messageId": "o-1"}),
        ))
        .await;
    e.store.close().await;
    let reopened = connect(&e.db.url, Options::default()).await.unwrap();
    let tl = reopened
        .timeline(e.ws, done.contact_id, None, 5)
        .await
        .unwrap();
    assert_eq!(tl.len(), 1);
    assert_eq!(tl[0].id, done.event_id);
    reopened.close().await;
}

async fn one_request_resolves_its_events_in_order_including_a_merge_inside_it(e: Env) {
    let items: Vec<IngestItem> = vec![
        msg(EventType::Track, json!({"anonymousId": "in-1", "event": "Cart Viewed"})).into(),
        msg(EventType::Identify, json!({"userId": "in-user", "traits": {"email": "in@x.io", "name": "In"}})).into(),
        msg(EventType::Track, json!({"anonymousId": "in-1", "event": "Signed In", "context": {"traits": {"email": "in@x.io"}}})).into(),
        msg(EventType::Identify, json!({"userId": "in-user", "traits": {"plan": "pro"}})).into(),
    ];
    let done = e.store.ingest(e.ws, items, t0()).await.unwrap();
    let survivor = done[1].contact_id;
    assert!(
        done.iter().all(|d| d.contact_id == survivor),
        "every answer names the surviving contact: {done:?}"
    );
    let c = e.store.contact(e.ws, survivor).await.unwrap().unwrap();
    assert_eq!(c.merged_from.len(), 1);
    assert_eq!(
        Value::Object(c.traits),
        json!({"email": "in@x.io", "name": "In", "plan": "pro"})
    );
    let names: Vec<String> = e
        .store
        .timeline(e.ws, survivor, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|ev| ev.kind + ":" + &ev.name.unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        vec![
            "identify:",
            "track:Signed In",
            "identify:",
            "track:Cart Viewed"
        ]
    );
    assert_eq!(
        e.store
            .contact(e.ws, done[0].contact_id)
            .await
            .unwrap()
            .unwrap()
            .id,
        survivor
    );
}

async fn an_unmapped_shop_delivery_is_kept_once_as_received(e: Env) {
    let d = pronto_store::UnmappedDelivery {
        platform: "shopify".into(),
        shop: "example.myshopify.com".into(),
        delivery_id: "checkouts/create:59d6".into(),
        topic: "checkouts/create".into(),
        reason: "the checkout has no `token`".into(),
        body: "{\"email\": \"a@b.example\",  \"note\": \"caf\u{e9}\"}".into(),
        received_at: t0(),
    };
    assert!(e.store.keep_unmapped(e.ws, &d).await.unwrap(), "kept");
    assert!(
        !e.store.keep_unmapped(e.ws, &d).await.unwrap(),
        "a redelivery is kept once"
    );
    let other = pronto_store::UnmappedDelivery {
        delivery_id: "checkouts/create:7a11".into(),
        received_at: t0() + chrono::Duration::seconds(1),
        ..d.clone()
    };
    assert!(e.store.keep_unmapped(e.ws, &other).await.unwrap());
    assert_eq!(
        e.store.unmapped(e.ws).await.unwrap(),
        vec![other, d],
        "newest first, byte for byte"
    );
    assert!(e
        .store
        .unmapped(pronto_domain::WorkspaceId::new())
        .await
        .unwrap()
        .is_empty());
}

fn catalog_product(id: &str, kind: &str, tags: &[&str], available: bool) -> Product {
    Product {
        key: format!("k{id}"),
        product_id: Some(id.into()),
        skus: vec![format!("SKU-{id}")],
        title: format!("Product {id}"),
        url: Some(format!("https://shop.example/p/{id}")),
        image_url: Some(format!("https://shop.example/p/{id}.png")),
        price: Some(9.5),
        available,
        kind: Some(kind.into()),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        collections: vec!["Home".into()],
        updated_at: Some(t0()),
    }
}

async fn the_catalog_keeps_the_newest_product_and_orders_teach_what_is_bought_together(e: Env) {
    let products = [
        catalog_product("1", "Kitchen", &["blue"], true),
        catalog_product("2", "Kitchen", &[], true),
        catalog_product("3", "Kitchen", &["Blue"], true),
        catalog_product("4", "Cutlery", &[], true),
        catalog_product("5", "Kitchen", &["blue"], false),
    ];
    let upserts: Vec<Change> = products.iter().cloned().map(Change::Upsert).collect();
    let done = e.store.apply_catalog(e.ws, "", &upserts).await.unwrap();
    assert_eq!((done.upserted, done.deleted, done.stale), (5, 0, 0));

    // A late delivery of an older version is not applied; a newer one is, whole (terms included).
    let mut older = products[0].clone();
    older.updated_at = Some(t0() - Duration::minutes(1));
    older.title = "stale".into();
    let done = e
        .store
        .apply_catalog(e.ws, "", &[Change::Upsert(older)])
        .await
        .unwrap();
    assert_eq!((done.upserted, done.stale), (0, 1));
    let mut newer = products[0].clone();
    newer.updated_at = Some(t0() + Duration::minutes(1));
    newer.title = "Blue mug".into();
    e.store
        .apply_catalog(e.ws, "", &[Change::Upsert(newer.clone())])
        .await
        .unwrap();

    // Orders from the Segment API (the default catalog, shop ""): 1+4 twice, 1+2 once; a repeat of an
    // order, by message id or by order id, counts once.
    let order = |mid: &str, order: &str, items: &[&str]| {
        let products: Vec<Value> = items.iter().map(|i| json!({"product_id": i})).collect();
        msg(
            EventType::Track,
            json!({"userId": "buyer", "event": "Order Completed", "messageId": mid,
                   "properties": {"order_id": order, "products": products}}),
        )
    };
    for (mid, o, items) in [
        ("m1", "o1", &["1", "4"][..]),
        ("m2", "o2", &["1", "4"]),
        ("m3", "o3", &["1", "2"]),
        ("m1", "o1", &["1", "4"]),
        ("m4", "o3", &["1", "2"]),
    ] {
        e.one(order(mid, o, items)).await;
    }

    let items = vec!["id:1".to_string()];
    let related = e.store.related_products(e.ws, "", &items).await.unwrap();
    let together: Vec<(&str, &str, i64)> = related
        .together
        .iter()
        .map(|(a, b, n)| (a.as_str(), b.as_str(), *n))
        .collect();
    assert_eq!(together, vec![("id:1", "id:4", 2), ("id:1", "id:2", 1)]);
    let cart_product = related.products.iter().find(|p| p.key == "k1").unwrap();
    assert_eq!(cart_product, &newer, "read back whole, the newer version");
    let picked = |r: &pronto_domain::catalog::Related| -> Vec<String> {
        recommend(r, &items, 4)
            .into_iter()
            .map(|p| p.key.clone())
            .collect()
    };
    assert_eq!(
        picked(&related),
        ["k4", "k2", "k3"],
        "bought together first, then sharing kitchen and blue; k5 is unavailable"
    );

    // Deleted by product id (Shopify's products/delete names only that): gone with its terms.
    let done = e
        .store
        .apply_catalog(
            e.ws,
            "",
            &[Change::Delete {
                key: None,
                product_id: Some("4".into()),
            }],
        )
        .await
        .unwrap();
    assert_eq!(done.deleted, 1);
    let related = e.store.related_products(e.ws, "", &items).await.unwrap();
    assert_eq!(picked(&related), ["k2", "k3"]);

    // Another shop's catalog, another workspace's: nothing.
    for (ws, shop) in [(e.ws, "other.myshopify.com"), (WorkspaceId::new(), "")] {
        let r = e.store.related_products(ws, shop, &items).await.unwrap();
        assert!(r.products.is_empty() && r.together.is_empty(), "{shop}");
    }
}
