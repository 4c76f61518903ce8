//! Speed to lead in the store, against SQLite and PostgreSQL alike: routing stays fair when leads arrive
//! concurrently (on PostgreSQL also from two store instances, as two processes would), and the SLA chain
//! runs each step once, on time, to the end. Time is injected: the tests pass `now` instead of sleeping.

use chrono::{DateTime, Duration, Utc};
use pronto_domain::flow::FlowConfig;
use pronto_domain::program::{MessageSettings, Program};
use pronto_domain::sales::{LeadsConfig, RepConfig, RouteConfig, Sales, TeamConfig};
use pronto_domain::template::TemplateConfig;
use pronto_domain::{Lead, Region, WorkspaceId};
use pronto_store::testing::TestDb;
use pronto_store::{connect, IngestItem, Options, Store};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

const CONFIG: &str = r#"
[[rep]]
id = "ann"
name = "Ann"
email = "ann@shop.example"
[[rep]]
id = "bo"
name = "Bo"
email = "bo@shop.example"
[[rep]]
id = "cy"
name = "Cy"
email = "cy@shop.example"
[[rep]]
id = "dee"
name = "Dee"
email = "dee@shop.example"
[[rep]]
id = "max"
name = "Max"
email = "max@shop.example"

[[team]]
id = "sales"
members = ["ann", "bo", "cy", "dee"]
manager = "max"

[[route]]
team = "sales"

[leads.sla]
within = "5m"
clock = "wall"
escalate = [
  { after = "5m", do = "realert" },
  { after = "10m", do = "reassign" },
  { after = "20m", do = "manager" },
]
"#;

/// A cadence whose first step opens a call task on each new lead (as the example config's does).
const CADENCE: &str = r#"
[[flow]]
id = "lead-cadence"
trigger = { event = "Lead Submitted" }
key = "properties.lead_id"
[[flow.step]]
call = { script = "call-first" }

[[template]]
name = "call-first"
subject = "Call {{ lead.name }} now"
text = "Phone: {{ lead.phone or 'none given; email them' }}"
"#;

fn program() -> Arc<Program> {
    program_with("")
}

/// The speed-to-lead config above, with the flows and templates of `flows` (TOML).
fn program_with(flows: &str) -> Arc<Program> {
    #[derive(serde::Deserialize)]
    struct File {
        rep: Vec<RepConfig>,
        team: Vec<TeamConfig>,
        route: Vec<RouteConfig>,
        leads: LeadsConfig,
        #[serde(default)]
        flow: Vec<FlowConfig>,
        #[serde(default)]
        template: Vec<TemplateConfig>,
    }
    let f: File = toml::from_str(&format!("{CONFIG}\n{flows}")).unwrap();
    let settings = MessageSettings {
        link_secret: b"secret".to_vec(),
        ..Default::default()
    };
    let mut p = Program::build(&f.flow, &f.template, settings).unwrap();
    let names = p.templates.names();
    p.sales = Sales::check(&f.rep, &f.team, &f.route, &f.leads, &names).unwrap();
    Arc::new(p)
}

async fn store(url: &str) -> Arc<dyn Store> {
    let s = connect(url, Options::default()).await.unwrap();
    s.shared().set_program(program());
    s
}

fn lead(n: usize) -> IngestItem {
    let body = json!({"name": format!("Lead {n}"), "email": format!("lead{n}@client.example")});
    let lead = Lead::parse(body.as_object().unwrap(), Region::default()).unwrap();
    IngestItem {
        event: lead.to_event(None),
        lead: Some(lead),
        action: None,
    }
}

fn lead_from(n: usize, email: &str) -> IngestItem {
    let body = json!({"name": format!("Lead {n}"), "email": email});
    let lead = Lead::parse(body.as_object().unwrap(), Region::default()).unwrap();
    IngestItem {
        event: lead.to_event(None),
        lead: Some(lead),
        action: None,
    }
}

async fn owners(s: &dyn Store, ws: WorkspaceId) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for l in s
        .leads_between(ws, t0() - Duration::days(1), t0() + Duration::days(1))
        .await
        .unwrap()
    {
        *out.entry(l.owner.unwrap_or_default()).or_default() += 1;
    }
    out
}

/// The cases open their own stores (two on one database, for the concurrency case): they take the backend.
async fn backend(name: &'static str) -> &'static str {
    name
}

pronto_store::for_each_backend!(backend;
    round_robin_stays_exact_when_leads_arrive_concurrently,
    the_sla_chain_realerts_reassigns_and_tells_the_manager_each_once_on_time,
    acknowledgements_to_one_address_stop_at_three_a_day_counted_from_what_was_sent,
    ownership_read_by_key_is_the_same_history_as_read_by_period,
    open_leads_per_rep_are_kept_as_leads_are_routed_handed_over_and_closed,
    a_reps_open_tasks_follow_their_leads_as_they_are_handed_over_and_closed,
);

async fn round_robin_stays_exact_when_leads_arrive_concurrently(backend: &str) {
    let db = TestDb::of(backend).await;
    // PostgreSQL: two store instances on one database, as two `pronto serve` processes.
    let stores: Vec<Arc<dyn Store>> = if backend == "postgres" {
        vec![store(&db.url).await, store(&db.url).await]
    } else {
        vec![store(&db.url).await]
    };
    let ws = stores[0].default_workspace().await.unwrap().id;
    let n = 400;
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = stores[i % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            s.ingest(ws, vec![lead(i)], t0()).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = owners(&*stores[0], ws).await;
    // 400 leads over 4 reps in turn: exactly 100 each. A slot taken twice (two leads reading the same state)
    // would leave one rep above and another below.
    let want: HashMap<String, usize> = ["ann", "bo", "cy", "dee"]
        .iter()
        .map(|r| (r.to_string(), 100))
        .collect();
    assert_eq!(got, want);
}

async fn the_sla_chain_realerts_reassigns_and_tells_the_manager_each_once_on_time(backend: &str) {
    let db = TestDb::of(backend).await;
    let s = store(&db.url).await;
    let ws = s.default_workspace().await.unwrap().id;
    let id = s.ingest(ws, vec![lead(1)], t0()).await.unwrap()[0]
        .lead_id
        .unwrap();
    let at = |m: i64| t0() + Duration::minutes(m);
    let kinds = |v: &pronto_store::LeadView| -> Vec<String> {
        v.log
            .iter()
            .map(|l| format!("{}:{}", l.kind, l.rep.clone().unwrap_or_default()))
            .collect()
    };
    // Each step fires at its time, once, whatever the number of scheduler rounds.
    let cases: [(i64, &[&str]); 5] = [
        (4, &["routed:ann", "alerted:ann", "acknowledged:"]),
        (
            5,
            &[
                "routed:ann",
                "alerted:ann",
                "acknowledged:",
                "escalated:ann",
                "alerted:ann",
            ],
        ),
        (
            9,
            &[
                "routed:ann",
                "alerted:ann",
                "acknowledged:",
                "escalated:ann",
                "alerted:ann",
            ],
        ),
        (
            10,
            &[
                "routed:ann",
                "alerted:ann",
                "acknowledged:",
                "escalated:ann",
                "alerted:ann",
                "reassigned:bo",
                "alerted:bo",
            ],
        ),
        (
            20,
            &[
                "routed:ann",
                "alerted:ann",
                "acknowledged:",
                "escalated:ann",
                "alerted:ann",
                "reassigned:bo",
                "alerted:bo",
                "escalated:max",
            ],
        ),
    ];
    for (minute, want) in cases {
        for _ in 0..2 {
            s.fire_due(at(minute), 100).await.unwrap();
        }
        let v = s.lead(ws, id).await.unwrap().unwrap();
        assert_eq!(kinds(&v), *want, "at minute {minute}");
    }
    let v = s.lead(ws, id).await.unwrap().unwrap();
    assert_eq!(
        (v.lead.owner.as_deref(), v.lead.due_at),
        (Some("bo"), None),
        "the chain has ended"
    );
    assert_eq!(v.lead.tried, ["ann", "bo"]);
    let to: Vec<String> = s
        .messages(ws, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.to)
        .collect();
    let mut to_sorted = to.clone();
    to_sorted.sort();
    assert_eq!(
        to_sorted,
        [
            "ann@shop.example",
            "ann@shop.example",
            "bo@shop.example",
            "lead1@client.example",
            "max@shop.example"
        ]
    );
    assert!(
        s.next_due().await.unwrap().is_none(),
        "no timer is left behind"
    );
}

async fn acknowledgements_to_one_address_stop_at_three_a_day_counted_from_what_was_sent(
    backend: &str,
) {
    let db = TestDb::of(backend).await;
    let s = store(&db.url).await;
    let ws = s.default_workspace().await.unwrap().id;
    let same = "same@client.example";
    // One lead per group: the count comes from the stored messages, not from the group's own.
    let sent = [
        (0, same),
        (1, same),
        (2, same),
        (3, same),
        (4, same),
        (5, "other@client.example"),
        // A day after the second: only the second and third are within the last 24 hours.
        (24 * 60 + 1, same),
    ];
    for (n, (minute, email)) in sent.iter().enumerate() {
        s.ingest(
            ws,
            vec![lead_from(n, email)],
            t0() + Duration::minutes(*minute),
        )
        .await
        .unwrap();
    }
    let mut acks: HashMap<String, usize> = HashMap::new();
    for m in s.messages(ws, 100).await.unwrap() {
        if m.to.ends_with("@client.example") {
            *acks.entry(m.to).or_default() += 1;
        }
    }
    let want: HashMap<String, usize> = [(same.to_string(), 4), ("other@client.example".into(), 1)]
        .into_iter()
        .collect();
    assert_eq!(acks, want);
}

/// `ownership_of` (what the kept report reads for the leads that changed) answers the asked leads' rows of
/// `ownership_between`, in the same order, and nothing for another workspace.
async fn ownership_read_by_key_is_the_same_history_as_read_by_period(backend: &str) {
    let db = TestDb::of(backend).await;
    let s = store(&db.url).await;
    let ws = s.default_workspace().await.unwrap().id;
    s.ingest(ws, (0..6).map(lead).collect(), t0())
        .await
        .unwrap();
    let (from, to) = (t0() - Duration::days(1), t0() + Duration::days(1));
    let leads = s.leads_between(ws, from, to).await.unwrap();
    assert_eq!(leads.len(), 6);
    let asked: Vec<_> = leads.iter().step_by(2).map(|l| l.id).collect();
    let want: Vec<_> = s
        .ownership_between(ws, from, to)
        .await
        .unwrap()
        .into_iter()
        .filter(|(l, _, _)| asked.contains(l))
        .collect();
    assert_eq!(want.len(), 3, "each lead was routed once: {want:?}");
    assert_eq!(s.ownership_of(ws, &asked).await.unwrap(), want);
    assert!(s
        .ownership_of(WorkspaceId::new(), &asked)
        .await
        .unwrap()
        .is_empty());
    assert!(s.ownership_of(ws, &[]).await.unwrap().is_empty());
}

/// The open leads per rep that routing by capacity and the board read (`rep_open`, kept by triggers) equal a
/// count of the leads, whatever changed them: arrival, an escalation that hands a lead over, a claim, a win.
async fn open_leads_per_rep_are_kept_as_leads_are_routed_handed_over_and_closed(backend: &str) {
    let db = TestDb::of(backend).await;
    let s = store(&db.url).await;
    let ws = s.default_workspace().await.unwrap().id;
    let reps: Vec<String> = ["ann", "bo", "cy", "dee"].map(String::from).to_vec();
    let counted = || async {
        let mut out: Vec<(String, i64)> = s
            .leads_between(ws, t0() - Duration::days(1), t0() + Duration::days(30))
            .await
            .unwrap()
            .into_iter()
            .filter(|l| l.status.is_open())
            .filter_map(|l| l.owner)
            .fold(HashMap::new(), |mut m: HashMap<String, i64>, o| {
                *m.entry(o).or_default() += 1;
                m
            })
            .into_iter()
            .collect();
        out.sort();
        out
    };
    let kept = || async {
        let mut out: Vec<(String, i64)> = s
            .rep_status(ws, &reps)
            .await
            .unwrap()
            .open
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        out.sort();
        out
    };
    s.ingest(ws, (0..8).map(lead).collect(), t0())
        .await
        .unwrap();
    assert_eq!(kept().await, counted().await, "routed");
    assert_eq!(kept().await.iter().map(|(_, n)| n).sum::<i64>(), 8);
    // The SLA chain hands unclaimed leads over (see the chain test): owners change.
    let mut at = t0();
    for _ in 0..4 {
        at += Duration::minutes(10);
        while s.fire_due(at, 500).await.unwrap().leads > 0 {}
    }
    assert_eq!(kept().await, counted().await, "handed over by escalations");
    let lead = s
        .leads_between(ws, t0() - Duration::days(1), t0() + Duration::days(1))
        .await
        .unwrap()
        .remove(0);
    s.ingest(ws, vec![won(&lead, at)], at).await.unwrap();
    assert_eq!(kept().await, counted().await, "a win closes one");
    assert_eq!(kept().await.iter().map(|(_, n)| n).sum::<i64>(), 7);
}

/// A rep's open tasks (the inbox's queue, read by owner from `tasks_open_by_owner`) are exactly the open tasks
/// of the leads the rep owns now, in due order, whatever changed the owner: routing, an escalation's
/// hand-over, a claim; a win closes its lead's task. The list of all tasks (done ones too) agrees.
async fn a_reps_open_tasks_follow_their_leads_as_they_are_handed_over_and_closed(backend: &str) {
    let db = TestDb::of(backend).await;
    let s = connect(&db.url, Options::default()).await.unwrap();
    s.shared().set_program(program_with(CADENCE));
    let ws = s.default_workspace().await.unwrap().id;
    let reps = ["ann", "bo", "cy", "dee", "max"];
    // Per rep: the leads whose open task the queue shows, in its order; and the leads the rep owns.
    let check = |why: &'static str| {
        let s = s.clone();
        async move {
            let leads = s
                .leads_between(ws, t0() - Duration::days(1), t0() + Duration::days(30))
                .await
                .unwrap();
            let all = s.tasks(ws, None, false).await.unwrap();
            let mut shown = 0;
            for rep in reps {
                let queue = s.tasks(ws, Some(rep), true).await.unwrap();
                let mut owned: Vec<_> = leads
                    .iter()
                    .filter(|l| l.owner.as_deref() == Some(rep) && l.status.is_open())
                    .map(|l| l.id)
                    .collect();
                let mut queued: Vec<_> = queue.iter().map(|t| t.lead.id).collect();
                assert!(
                    queue
                        .windows(2)
                        .all(|w| (w[0].due_at, w[0].id.0) <= (w[1].due_at, w[1].id.0)),
                    "{why}: {rep}'s queue is in due order"
                );
                assert!(
                    queue
                        .iter()
                        .all(|t| t.done_at.is_none() && t.rep.as_deref() == Some(rep)),
                    "{why}: {rep}'s queue holds only open tasks of leads they own: {queue:?}"
                );
                owned.sort();
                queued.sort();
                assert_eq!(queued, owned, "{why}: {rep}'s queue is their open leads'");
                let listed = all
                    .iter()
                    .filter(|t| t.rep.as_deref() == Some(rep) && t.done_at.is_none())
                    .count();
                assert_eq!(listed, queue.len(), "{why}: the full list agrees for {rep}");
                shown += queue.len();
            }
            shown
        }
    };
    s.ingest(ws, (0..8).map(lead).collect(), t0())
        .await
        .unwrap();
    while s.fire_due(t0(), 500).await.unwrap().runs > 0 {}
    assert_eq!(check("routed").await, 8, "every lead has its call task");
    // The SLA chain hands unclaimed leads over (see the chain test), then tells the manager.
    let mut at = t0();
    for _ in 0..4 {
        at += Duration::minutes(10);
        while s.fire_due(at, 500).await.unwrap().leads > 0 {}
    }
    assert_eq!(check("handed over by escalations").await, 8);
    let leads = s
        .leads_between(ws, t0() - Duration::days(1), t0() + Duration::days(1))
        .await
        .unwrap();
    let handed = leads
        .iter()
        .find(|l| l.owner.as_deref() != Some("cy"))
        .unwrap();
    let reassign = pronto_store::LeadAction::Reassign {
        lead: handed.id,
        rep: "cy".into(),
        by: "max@shop.example".into(),
    };
    s.ingest(ws, vec![acted(handed, "Lead Reassigned", reassign)], at)
        .await
        .unwrap();
    assert_eq!(check("handed over by a manager").await, 8);
    let taken = leads
        .iter()
        .find(|l| l.id != handed.id && l.owner.as_deref() != Some("dee") && l.claimed_at.is_none())
        .unwrap();
    let claim = pronto_store::LeadAction::Claim {
        lead: taken.id,
        rep: "dee".into(),
    };
    s.ingest(ws, vec![acted(taken, "Lead Claimed", claim)], at)
        .await
        .unwrap();
    assert_eq!(check("taken over by a claim").await, 8);
    let claimed = s.lead(ws, taken.id).await.unwrap().unwrap().lead;
    assert_eq!(claimed.owner.as_deref(), Some("dee"));
    s.ingest(ws, vec![won(&claimed, at)], at).await.unwrap();
    assert_eq!(check("a win closes its task").await, 7);
}

/// A won call on `l` by its owner, as the server records it: a `Lead Won` event with the action attached.
fn won(l: &pronto_store::LeadState, at: DateTime<Utc>) -> IngestItem {
    acted(
        l,
        "Lead Won",
        pronto_store::LeadAction::Attempt {
            lead: l.id,
            rep: l.owner.clone(),
            channel: "call".into(),
            outcome: pronto_domain::sales::Outcome::Won,
            note: None,
            at,
        },
    )
}

/// The event `name` recording `action` on `l`, as the server records a rep's or a manager's action.
fn acted(l: &pronto_store::LeadState, name: &str, action: pronto_store::LeadAction) -> IngestItem {
    let email = pronto_domain::Email::parse(l.email.as_deref().unwrap()).unwrap();
    IngestItem {
        event: pronto_domain::NewEvent {
            message_id: None,
            dedupe_scope: None,
            request_hash: None,
            kind: pronto_domain::EventType::Track,
            name: Some(name.into()),
            user_id: None,
            anonymous_id: None,
            identities: vec![pronto_domain::Identity::email(&email)],
            traits: serde_json::Map::new(),
            payload: json!({"type": "track", "event": name}),
            properties: serde_json::Map::new(),
            timestamp: None,
        },
        lead: None,
        action: Some(action),
    }
}
