//! Sign-in links and sessions on SQLite and PostgreSQL alike: a link signs in once, before it expires;
//! a session lives until it expires or is ended; no token is stored, only its hash.

use chrono::{DateTime, Duration, Utc};
use pronto_domain::WorkspaceId;
use pronto_store::testing::TestDb;
use pronto_store::{connect, NewSession, Options, Store};
use std::sync::Arc;

struct Env {
    store: Arc<dyn Store>,
    ws: WorkspaceId,
    _db: TestDb,
}

async fn env(backend: &str) -> Env {
    let db = TestDb::of(backend).await;
    let store = connect(&db.url, Options::default()).await.unwrap();
    let ws = store.default_workspace().await.unwrap().id;
    Env { store, ws, _db: db }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn new(token_hash: &str, now: DateTime<Utc>) -> NewSession<'_> {
    NewSession {
        token_hash,
        method: "link",
        agent: Some("test browser"),
        now,
        expires_at: now + Duration::days(30),
    }
}

pronto_store::for_each_backend!(env;
    a_sign_in_link_opens_one_session_once_and_only_before_it_expires,
    a_session_lives_until_it_expires_or_is_ended,
    the_lead_mark_moves_when_a_lead_arrives,
);

async fn a_sign_in_link_opens_one_session_once_and_only_before_it_expires(e: Env) {
    let s = &e.store;
    s.add_sign_in(
        e.ws,
        "ann@example.com",
        "link-hash-1",
        t0(),
        t0() + Duration::minutes(15),
    )
    .await
    .unwrap();
    assert_eq!(
        s.sign_in_user("link-hash-1", t0()).await.unwrap(),
        Some((e.ws, "ann@example.com".to_string())),
        "looking at a link does not use it"
    );
    assert_eq!(
        s.sign_in_user("link-hash-1", t0())
            .await
            .unwrap()
            .map(|u| u.1)
            .as_deref(),
        Some("ann@example.com")
    );
    assert_eq!(s.sign_in_user("unknown", t0()).await.unwrap(), None);

    // Two browsers race with the same link: exactly one gets a session.
    let (a, b) = tokio::join!(
        s.redeem_sign_in("link-hash-1", new("session-a", t0() + Duration::minutes(1))),
        s.redeem_sign_in("link-hash-1", new("session-b", t0() + Duration::minutes(1))),
    );
    let opened: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0].user, "ann@example.com");
    assert_eq!(opened[0].workspace_id, e.ws);
    assert_eq!(
        s.sign_in_user("link-hash-1", t0()).await.unwrap(),
        None,
        "a used link is gone"
    );

    s.add_sign_in(
        e.ws,
        "bo@example.com",
        "link-hash-2",
        t0(),
        t0() + Duration::minutes(15),
    )
    .await
    .unwrap();
    let late = t0() + Duration::minutes(15);
    assert_eq!(s.sign_in_user("link-hash-2", late).await.unwrap(), None);
    assert_eq!(
        s.redeem_sign_in("link-hash-2", new("session-c", late))
            .await
            .unwrap(),
        None
    );
}

async fn a_session_lives_until_it_expires_or_is_ended(e: Env) {
    let s = &e.store;
    let opened = s
        .start_session(
            e.ws,
            "admin-key",
            NewSession {
                method: "admin-key",
                ..new("0123456789abcdef-session", t0())
            },
        )
        .await
        .unwrap();
    assert_eq!(
        opened.id, "0123456789abcdef",
        "the id is the hash's first 16 characters"
    );
    assert_eq!(
        (opened.method.as_str(), opened.agent.as_deref()),
        ("admin-key", Some("test browser"))
    );
    let other = s
        .start_session(
            e.ws,
            "ann@example.com",
            new("fedcba9876543210-session", t0()),
        )
        .await
        .unwrap();

    let found = s
        .session("0123456789abcdef-session", t0() + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&opened));
    assert_eq!(
        s.session("0123456789abcdef-session", t0() + Duration::days(30))
            .await
            .unwrap(),
        None,
        "expired"
    );
    let listed: Vec<String> = s
        .sessions(e.ws, t0())
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&other.id));

    let ended = s
        .end_session(e.ws, &other.id, t0() + Duration::hours(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.revoked_at, Some(t0() + Duration::hours(1)));
    assert_eq!(
        s.session("fedcba9876543210-session", t0() + Duration::hours(2))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.sessions(e.ws, t0() + Duration::hours(2))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.end_session(e.ws, "no-such-session", t0()).await.unwrap(),
        None
    );
    let again = s
        .end_session(e.ws, &other.id, t0() + Duration::hours(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.revoked_at,
        Some(t0() + Duration::hours(1)),
        "ending twice keeps the first time"
    );
    assert_eq!(
        s.end_session(WorkspaceId(uuid::Uuid::from_u128(9)), &opened.id, t0())
            .await
            .unwrap(),
        None,
        "another workspace cannot end it"
    );
}

async fn the_lead_mark_moves_when_a_lead_arrives(e: Env) {
    let s = &e.store;
    let before = s.lead_mark(e.ws).await.unwrap();
    assert_eq!(before, pronto_store::LeadMark::default());
    let body = serde_json::json!({"email": "lead@example.com", "message": "call me"});
    let lead = pronto_domain::Lead::parse(body.as_object().unwrap(), Default::default()).unwrap();
    let item = pronto_store::IngestItem {
        event: lead.to_event(None),
        lead: Some(lead),
        action: None,
    };
    s.ingest(e.ws, vec![item], t0()).await.unwrap();
    let after = s.lead_mark(e.ws).await.unwrap();
    assert_ne!(after, before);
    assert!(after.newest_lead.is_some());
    assert_eq!(
        s.lead_mark(e.ws).await.unwrap(),
        after,
        "nothing changed, the mark stays"
    );
}
