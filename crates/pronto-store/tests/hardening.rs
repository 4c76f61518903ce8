//! Failures a machine or an attacker brings: a full disk, numbers and characters a backend cannot store,
//! racing first starts. Each case runs where it applies (both backends unless the failure is one backend's).

use chrono::{DateTime, Utc};
use pronto_domain::event::parse_message;
use pronto_domain::{EventType, NewEvent, ParseOptions};
use pronto_store::testing::TestDb;
use pronto_store::{IngestItem, Options, SqliteStore, Store, StoreError};
use serde_json::json;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn event(i: usize) -> NewEvent {
    parse_message(
        json!({"anonymousId": format!("visitor-{i}"), "event": "Page Viewed", "messageId": format!("m-{i}"),
               "properties": {"pad": "x".repeat(2000)}}),
        Some(EventType::Track),
        None,
        ParseOptions::default(),
    )
    .unwrap()
}

/// SQLite refuses to grow the file past `max_page_count` with the same error a full disk gives
/// (SQLITE_FULL, "database or disk is full"): the real failure, without a mock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_group_and_the_next_group_commits_once_space_returns() {
    let db = TestDb::sqlite();
    let store = SqliteStore::open(&db.url, Options::default())
        .await
        .unwrap();
    let ws = store.default_workspace().await.unwrap().id;
    let pages = store.page_count().await.unwrap();
    store.set_max_page_count(pages + 8).await.unwrap();

    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    for i in 0..200 {
        match store
            .ingest(ws, vec![IngestItem::from(event(i))], t0())
            .await
        {
            Ok(done) => acknowledged.push((i, done[0].contact_id)),
            Err(StoreError::Unavailable(_)) => refused.push(i),
            Err(other) => panic!("event {i}: {other}"),
        }
    }
    assert!(
        !acknowledged.is_empty(),
        "some events fit before the disk filled"
    );
    assert!(
        refused.len() > 100,
        "the disk filled: {} refused",
        refused.len()
    );
    // Every later group is refused too while the disk stays full: nothing is acknowledged unstored.
    assert!(
        refused.windows(2).all(|w| w[1] == w[0] + 1),
        "once full, every group is refused"
    );
    assert!(
        store.shared().write_failure().is_some(),
        "the store reports the failing writes"
    );

    store.set_max_page_count(1_000_000).await.unwrap();
    let after = store
        .ingest(ws, vec![IngestItem::from(event(10_000))], t0())
        .await
        .expect("the next group commits once space returns, without a restart");
    assert!(
        store.shared().write_failure().is_none(),
        "a successful commit clears the condition"
    );

    // What was acknowledged is stored; what was refused is not.
    for (i, contact) in acknowledged
        .iter()
        .chain([(10_000, after[0].contact_id)].iter())
    {
        let tl = store.timeline(ws, *contact, None, 5).await.unwrap();
        assert_eq!(tl.len(), 1, "acknowledged event {i} is stored");
    }
    store.close().await;
    let reopened = SqliteStore::open(&db.url, Options::default())
        .await
        .unwrap();
    let n = reopened.count_events().await.unwrap();
    assert_eq!(
        n as usize,
        acknowledged.len() + 1,
        "exactly the acknowledged events survive a restart"
    );
    reopened.close().await;
}

struct Env {
    store: std::sync::Arc<dyn Store>,
    ws: pronto_domain::WorkspaceId,
    db: TestDb,
}

async fn env(backend: &str) -> Env {
    let db = TestDb::of(backend).await;
    let store = pronto_store::connect(&db.url, Options::default())
        .await
        .expect("open store");
    let ws = store.default_workspace().await.unwrap().id;
    Env { store, ws, db }
}

pronto_store::for_each_backend!(env;
    extreme_numbers_are_stored_and_read_back_exactly,
    two_first_starts_racing_store_exactly_one_generated_pair,
    a_revoked_key_opens_nothing_and_stays_listed,
    a_new_env_key_revokes_the_previous_env_key_only,
    a_lead_row_that_cannot_be_read_is_quarantined_once_and_the_scheduler_moves_on,
    a_message_whose_lease_ran_out_is_claimed_again_marked_as_taken_over,
);

const SALES: &str = r#"
[[rep]]
id = "ann"
name = "Ann"
email = "ann@shop.example"
[[team]]
id = "sales"
members = ["ann"]
[[route]]
team = "sales"
[leads.sla]
within = "5m"
clock = "wall"
escalate = [{ after = "5m", do = "realert" }, { after = "10m", do = "realert" }]
"#;

fn sales_program() -> std::sync::Arc<pronto_domain::program::Program> {
    use pronto_domain::sales::{LeadsConfig, RepConfig, RouteConfig, Sales, TeamConfig};
    #[derive(serde::Deserialize)]
    struct File {
        rep: Vec<RepConfig>,
        team: Vec<TeamConfig>,
        route: Vec<RouteConfig>,
        leads: LeadsConfig,
    }
    let f: File = toml::from_str(SALES).unwrap();
    let settings = pronto_domain::program::MessageSettings {
        link_secret: b"secret".to_vec(),
        ..Default::default()
    };
    let mut p = pronto_domain::program::Program::build(&[], &[], settings).unwrap();
    let names = p.templates.names();
    p.sales = Sales::check(&f.rep, &f.team, &f.route, &f.leads, &names).unwrap();
    std::sync::Arc::new(p)
}

/// Writes to the test database behind the store's back, as corruption (or a newer version) would.
async fn corrupt(db: &TestDb, sql: &str) {
    use sqlx::Connection;
    if db.url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
}

/// Every number JSON can carry as an f64 or an integer, at its extremes: PostgreSQL renders jsonb numbers as
/// plain decimals (f64::MAX is 309 digits), which must parse back to the same value.
async fn extreme_numbers_are_stored_and_read_back_exactly(e: Env) {
    let numbers = json!([
        1.7976931348623157e308,
        -1.7976931348623157e308,
        5e-324,
        2.2250738585072014e-308,
        1.7e308,
        3.7e20,
        0.1,
        -0.0,
        9007199254740993u64,
        18446744073709551615u64,
        -9223372036854775808i64
    ]);
    let lead = pronto_domain::Lead::parse(
        json!({"name": "Bo", "email": "bo@example.com", "budget": 1.7976931348623157e308, "numbers": numbers})
            .as_object()
            .unwrap(),
        pronto_domain::Region::default(),
    )
    .unwrap();
    let lead_id = lead.id;
    let item = IngestItem {
        event: lead.to_event(Some("lead-extreme".into())),
        lead: Some(lead),
        action: None,
    };
    let done = e
        .store
        .ingest(e.ws, vec![item], t0())
        .await
        .unwrap()
        .remove(0);
    let view = e
        .store
        .lead(e.ws, lead_id)
        .await
        .unwrap()
        .expect("the lead reads back");
    assert_eq!(view.lead.fields["budget"], json!(1.7976931348623157e308));
    assert_eq!(view.lead.fields["numbers"], numbers);
    let tl = e
        .store
        .timeline(e.ws, done.contact_id, None, 5)
        .await
        .unwrap();
    assert_eq!(tl[0].payload["properties"]["fields"]["numbers"], numbers);

    let track = parse_message(
        json!({"userId": "u-1", "event": "Quote Requested", "properties": {"numbers": numbers},
               "traits": {"score": 1.7976931348623157e308}}),
        Some(EventType::Track),
        None,
        ParseOptions::default(),
    )
    .unwrap();
    let t = e
        .store
        .ingest(e.ws, vec![track.into()], t0())
        .await
        .unwrap()
        .remove(0);
    let tl = e.store.timeline(e.ws, t.contact_id, None, 5).await.unwrap();
    assert_eq!(tl[0].payload["properties"]["numbers"], numbers);
    let identify = parse_message(
        json!({"userId": "u-1", "traits": {"score": 1.7976931348623157e308, "tiny": 5e-324}}),
        Some(EventType::Identify),
        None,
        ParseOptions::default(),
    )
    .unwrap();
    e.store
        .ingest(e.ws, vec![identify.into()], t0())
        .await
        .unwrap();
    let c = e.store.contact(e.ws, t.contact_id).await.unwrap().unwrap();
    assert_eq!(c.traits["score"], json!(1.7976931348623157e308));
    assert_eq!(c.traits["tiny"], json!(5e-324));
}

async fn two_first_starts_racing_store_exactly_one_generated_pair(e: Env) {
    use pronto_store::{KeyKind, KeyOrigin};
    let other = pronto_store::connect(&e.db.url, Options::default())
        .await
        .unwrap();
    let pair = |n: u8| {
        [
            (KeyKind::Write, format!("hash-write-{n}")),
            (KeyKind::Admin, format!("hash-admin-{n}")),
        ]
    };
    let (a, b) = (pair(1), pair(2));
    let rows = |p: &[(KeyKind, String); 2]| -> Vec<(KeyKind, String)> { p.to_vec() };
    let (ra, rb) = (rows(&a), rows(&b));
    let (sa, sb) = (e.store.clone(), other.clone());
    let ws = e.ws;
    let ta = tokio::spawn(async move {
        let r: Vec<(KeyKind, &str)> = ra.iter().map(|(k, h)| (*k, h.as_str())).collect();
        sa.add_keys(ws, &r, KeyOrigin::Generated, None)
            .await
            .unwrap()
    });
    let tb = tokio::spawn(async move {
        let r: Vec<(KeyKind, &str)> = rb.iter().map(|(k, h)| (*k, h.as_str())).collect();
        sb.add_keys(ws, &r, KeyOrigin::Generated, None)
            .await
            .unwrap()
    });
    let (wa, wb) = (ta.await.unwrap(), tb.await.unwrap());
    assert!(wa ^ wb, "exactly one pair is stored (a: {wa}, b: {wb})");
    let winner = if wa { &a } else { &b };
    let loser = if wa { &b } else { &a };
    for (kind, h) in winner {
        assert_eq!(e.store.key_workspace(*kind, h).await.unwrap(), Some(e.ws));
    }
    for (kind, h) in loser {
        assert_eq!(
            e.store.key_workspace(*kind, h).await.unwrap(),
            None,
            "nothing of the losing pair opens"
        );
    }
    assert_eq!(e.store.keys(e.ws).await.unwrap().len(), 2);
    other.close().await;
}

async fn a_revoked_key_opens_nothing_and_stays_listed(e: Env) {
    use pronto_store::{KeyKind, KeyOrigin};
    assert!(e
        .store
        .add_keys(
            e.ws,
            &[(KeyKind::Admin, "hash-admin-a")],
            KeyOrigin::Api,
            Some("ci")
        )
        .await
        .unwrap());
    let listed = e.store.keys(e.ws).await.unwrap();
    assert_eq!(listed.len(), 1);
    let id = listed[0].id.clone();
    assert_eq!(id, pronto_store::key_id("hash-admin-a"));
    assert_eq!(listed[0].label.as_deref(), Some("ci"));
    assert!(e.store.has_key(e.ws, KeyKind::Admin).await.unwrap());
    let revoked = e.store.revoke_key(e.ws, &id, t0()).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(t0()));
    assert_eq!(
        e.store
            .key_workspace(KeyKind::Admin, "hash-admin-a")
            .await
            .unwrap(),
        None
    );
    assert!(!e.store.has_key(e.ws, KeyKind::Admin).await.unwrap());
    // Revoking again keeps the first revocation time; an unknown id is none.
    let again = e
        .store
        .revoke_key(e.ws, &id, t0() + chrono::Duration::hours(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, Some(t0()));
    assert!(e
        .store
        .revoke_key(e.ws, "nope", t0())
        .await
        .unwrap()
        .is_none());
    assert_eq!(e.store.keys(e.ws).await.unwrap()[0].revoked_at, Some(t0()));
}

async fn a_new_env_key_revokes_the_previous_env_key_only(e: Env) {
    use pronto_store::{KeyKind, KeyOrigin};
    for (h, origin) in [
        ("env-1", KeyOrigin::Env),
        ("api-1", KeyOrigin::Api),
        ("env-2", KeyOrigin::Env),
    ] {
        e.store
            .add_keys(e.ws, &[(KeyKind::Write, h)], origin, None)
            .await
            .unwrap();
    }
    e.store
        .add_keys(e.ws, &[(KeyKind::Admin, "env-admin")], KeyOrigin::Env, None)
        .await
        .unwrap();
    let n = e
        .store
        .revoke_env_keys_except(e.ws, KeyKind::Write, "env-2", t0())
        .await
        .unwrap();
    assert_eq!(n, 1);
    let open = |h: &'static str, k: KeyKind| {
        let s = e.store.clone();
        async move { s.key_workspace(k, h).await.unwrap().is_some() }
    };
    assert!(
        !open("env-1", KeyKind::Write).await,
        "the previous env key is revoked"
    );
    assert!(open("env-2", KeyKind::Write).await);
    assert!(
        open("api-1", KeyKind::Write).await,
        "keys made through the API stay"
    );
    assert!(
        open("env-admin", KeyKind::Admin).await,
        "the other kind is untouched"
    );
}

async fn a_lead_row_that_cannot_be_read_is_quarantined_once_and_the_scheduler_moves_on(e: Env) {
    e.store.shared().set_program(sales_program());
    let lead = |n: usize| {
        let l = pronto_domain::Lead::parse(
            json!({"name": format!("Lead {n}"), "email": format!("lead{n}@client.example")})
                .as_object()
                .unwrap(),
            pronto_domain::Region::default(),
        )
        .unwrap();
        (
            l.id,
            IngestItem {
                event: l.to_event(None),
                lead: Some(l),
                action: None,
            },
        )
    };
    let (bad, bad_item) = lead(1);
    let (good, good_item) = lead(2);
    e.store
        .ingest(e.ws, vec![bad_item, good_item], t0())
        .await
        .unwrap();
    // A value the row decoder refuses: `tried` must be a list of rep ids (PostgreSQL), `fields` JSON (SQLite).
    let sql = if e.db.url.starts_with("sqlite") {
        format!("UPDATE leads SET fields = 'not json' WHERE id = '{bad}'")
    } else {
        format!("UPDATE leads SET tried = '[1, 2]'::jsonb WHERE id = '{bad}'")
    };
    corrupt(&e.db, &sql).await;

    let at = t0() + chrono::Duration::minutes(6);
    let fired = e
        .store
        .fire_due(at, 100)
        .await
        .expect("the batch fires despite the bad row");
    assert_eq!(
        (fired.leads, fired.quarantined),
        (1, 1),
        "the good lead escalates, the bad one is set aside"
    );
    let q = e.store.quarantined(e.ws).await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(
        (q[0].kind.as_str(), q[0].id.as_str()),
        ("lead", bad.to_string().as_str())
    );
    assert!(!q[0].reason.is_empty());
    // Its timer is cleared: the next batches do not meet it again.
    let again = e.store.fire_due(at, 100).await.unwrap();
    assert_eq!((again.leads, again.quarantined), (0, 0));
    let next = e
        .store
        .next_due()
        .await
        .unwrap()
        .expect("the good lead's next step");
    assert_eq!(next, t0() + chrono::Duration::minutes(10));
    let later = e
        .store
        .fire_due(t0() + chrono::Duration::minutes(11), 100)
        .await
        .unwrap();
    assert_eq!((later.leads, later.quarantined), (1, 0));
    assert_eq!(
        e.store.quarantined(e.ws).await.unwrap().len(),
        1,
        "quarantined once"
    );
    // Reading it through the API is an error about the row (500), not a retryable outage (503).
    match e.store.lead(e.ws, bad).await {
        Err(StoreError::Corrupt(_)) => {}
        other => panic!("a corrupt lead reads as Corrupt, got {other:?}"),
    }
    assert!(e.store.lead(e.ws, good).await.unwrap().is_some());
}

async fn a_message_whose_lease_ran_out_is_claimed_again_marked_as_taken_over(e: Env) {
    e.store.shared().set_program(sales_program());
    let l = pronto_domain::Lead::parse(
        json!({"name": "Lee", "email": "lee@client.example"})
            .as_object()
            .unwrap(),
        pronto_domain::Region::default(),
    )
    .unwrap();
    e.store
        .ingest(
            e.ws,
            vec![IngestItem {
                event: l.to_event(None),
                lead: Some(l),
                action: None,
            }],
            t0(),
        )
        .await
        .unwrap();
    let lease = chrono::Duration::seconds(60);
    let first = e
        .store
        .claim_messages(t0(), 10, t0() + lease)
        .await
        .unwrap();
    assert!(
        !first.is_empty(),
        "the rep alert and the acknowledgement are queued"
    );
    assert!(
        first.iter().all(|m| !m.taken_over),
        "a first claim takes over nothing"
    );
    // The worker that claimed them went away: nothing is recorded, the lease runs out.
    assert!(e
        .store
        .claim_messages(t0() + chrono::Duration::seconds(30), 10, t0() + lease)
        .await
        .unwrap()
        .is_empty());
    let later = t0() + chrono::Duration::seconds(61);
    let again = e
        .store
        .claim_messages(later, 10, later + lease)
        .await
        .unwrap();
    assert_eq!(again.len(), first.len());
    assert!(again.iter().all(|m| m.taken_over && m.attempts == 2));
}
