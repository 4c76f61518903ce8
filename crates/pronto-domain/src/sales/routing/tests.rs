//! Table tests for a batch's routing book: what it asks the store to load, and how each pick moves the
//! counters the next lead of the batch is routed on.

use super::*;
use crate::ContactId;
use chrono::TimeZone;

const CONFIG: &str = r#"
[[rep]]
id = "ann"
name = "Ann Lee"
email = "ann@shop.example"
[[rep]]
id = "bob"
name = "Bob Ray"
email = "bob@shop.example"
[[rep]]
id = "cy"
name = "Cy Ng"
email = "cy@shop.example"
away = true
[[team]]
id = "sales"
members = ["ann", "bob", "cy"]
[[route]]
id = "all"
team = "sales"
keep_owner = true
"#;

fn sales() -> Sales {
    crate::sales::from_toml(CONFIG)
}

const WS: WorkspaceId = WorkspaceId(uuid::Uuid::from_u128(1));

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

fn lead(n: u128, owner: Option<&str>) -> LeadState {
    let l = crate::Lead::bare(n, None, None);
    let mut s = LeadState::arrived(&l, l.id, WS, ContactId(uuid::Uuid::from_u128(n)), now());
    s.owner = owner.map(str::to_string);
    s
}

fn members() -> Vec<String> {
    vec!["ann".into(), "bob".into(), "cy".into()]
}

/// A book as the store leaves it after loading for the first lead: no API away flags, the team's rows
/// (ann assigned 4 times, last at seq 9), and open counts.
fn loaded(open: &[(&str, i64)]) -> Book {
    let mut b = Book::default();
    b.set_away(WS, []);
    b.set_team(WS, "sales", [("ann".to_string(), 4, 9)]);
    let counts = open.iter().map(|(r, n)| (r.to_string(), *n));
    b.set_open(WS, "sales", &members(), counts);
    b
}

#[test]
fn a_book_asks_for_each_thing_once_and_for_counts_again_after_a_lead_action() {
    let s = sales();
    let l = lead(1, None);
    let mut b = Book::default();
    assert_eq!(
        b.needs(&s, &l),
        Needs {
            away: true,
            lock: Some(("sales".into(), members())),
            count: Some(("sales".into(), members())),
            earlier_owner: true,
            rule: Some(0),
        }
    );
    b = loaded(&[]);
    assert_eq!(
        b.needs(&s, &l),
        Needs {
            earlier_owner: true,
            rule: Some(0),
            ..Needs::default()
        }
    );
    b.forget_open(WS);
    assert_eq!(b.needs(&s, &l).count, Some(("sales".into(), members())));
    assert_eq!(b.needs(&s, &l).lock, None, "the team stays locked");
}

#[test]
fn a_batch_routes_in_turn_skips_the_away_and_writes_back_what_it_changed() {
    let s = sales();
    let mut b = loaded(&[]);
    let picks: Vec<Option<String>> = (1..=4)
        .map(|n| {
            let l = lead(n, None);
            let needs = b.needs(&s, &l);
            b.route(&s, &l, &needs, None, Scope::default(), now())
                .decision
                .rep
        })
        .collect();
    // bob and cy were never assigned, so bob goes first; cy is away; ann (assigned at seq 9) after bob.
    let want: Vec<Option<String>> = ["bob", "ann", "bob", "ann"]
        .iter()
        .map(|r| Some(r.to_string()))
        .collect();
    assert_eq!(picks, want);
    let mut changed = b.changed();
    changed.sort();
    assert_eq!(
        changed,
        vec![(WS, "sales", "ann", 6, 13), (WS, "sales", "bob", 2, 12)]
    );
}

#[test]
fn each_pick_moves_the_open_counts_the_next_lead_sees() {
    let s = sales();
    // (case, the lead's owner before, the earlier owner, reps excluded, now only, the pick, open counts after)
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Vec<String>,
        bool,
        &'static str,
        Vec<(&'static str, i64)>,
    );
    let cases: Vec<Case> = vec![
        (
            "a new lead counts for the rep it goes to",
            None,
            None,
            vec![],
            false,
            "bob",
            vec![("ann", 1), ("bob", 1)],
        ),
        (
            "a contact's earlier owner keeps them",
            None,
            Some("ann"),
            vec![],
            false,
            "ann",
            vec![("ann", 2), ("bob", 0)],
        ),
        (
            "a reassignment moves the count from the old owner to the new",
            Some("ann"),
            None,
            vec!["ann".into()],
            true,
            "bob",
            vec![("ann", 0), ("bob", 1)],
        ),
    ];
    for (name, owner, earlier, exclude, now_only, pick, open) in cases {
        let mut b = loaded(&[("ann", 1)]);
        let l = lead(1, owner);
        let needs = b.needs(&s, &l);
        let scope = Scope {
            exclude: &exclude,
            now_only,
        };
        let r = b.route(&s, &l, &needs, earlier, scope, now());
        assert_eq!(r.decision.rep.as_deref(), Some(pick), "{name}");
        assert_eq!(
            (r.team.as_deref(), r.route.as_deref()),
            (Some("sales"), Some("all")),
            "{name}"
        );
        let got: Vec<(&str, i64)> = open
            .iter()
            .map(|(rep, _)| (*rep, b.open[&WS].get(*rep).copied().unwrap_or(0)))
            .collect();
        assert_eq!(got, open, "{name}");
    }
}
