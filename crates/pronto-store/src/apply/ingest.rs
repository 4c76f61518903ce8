//! The ingestion algorithm, written once for both backends, set-based.
//!
//! A group commit holds many requests. Issuing a few statements per event would make the statement round
//! trips, not the commit, the cost: measured here, sqlx's SQLite worker-thread hop and PostgreSQL's network
//! round trip each cost tens of microseconds under load, several per event. So a group is ingested with a fixed
//! number of statements whatever its size:
//! 1. one query finds the message ids already stored (retries answer as their first delivery);
//! 2. one query loads every live contact owning any identity in the group;
//! 3. each event is resolved in memory, in order, by [`pronto_domain::resolve::resolve`], against those
//!    contacts plus what earlier events of the group created, attached or merged;
//! 4. bulk inserts write the new contacts, identities and events; merges (rare) follow one statement each;
//!    orders' items are recorded (what is bought together, `crate::catalog`); the traits of every contact
//!    touched are read once, updated in memory and written once;
//! 5. flows see the events; 6. new leads are routed in memory and inserted whole, in one statement, with
//!    their messages and logs ([`crate::sales::Work::flush`]).
//!
//! Races between writers (several PostgreSQL writers or processes) surface as a row a bulk insert did not
//! write (a unique key taken by the other writer); the group is rolled back to its savepoint and redone, when
//! the other writer's rows are visible. A group is all or nothing.

use crate::contacts::{merge, merge_traits, EventRow, IngestTx};
use crate::tx::{ItemError, Job, Touched};
use crate::{Ingested, LeadRow, StoreError};
use chrono::{DateTime, Utc};
use pronto_domain::catalog;
use pronto_domain::engine::group::{self, Seen};
use pronto_domain::program::Program;
use pronto_domain::resolve::{resolve, Known};
use pronto_domain::{ContactId, EventId, Identity, NewEvent, WorkspaceId};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// What a retry of this event is recognised by: its dedupe scope (`""` for the Segment `messageId`) and id.
fn dedupe_key(e: &NewEvent) -> Option<(&str, &str)> {
    let id = e.message_id.as_deref()?;
    Some((e.dedupe_scope.as_deref().unwrap_or(""), id))
}

#[derive(Default)]
struct Picture {
    identities: HashMap<ContactId, Vec<Identity>>,
    owner: HashMap<Identity, ContactId>,
    /// Contacts merged during this group → the contact they went into.
    merged: HashMap<ContactId, ContactId>,
}

impl Picture {
    fn live(&self, mut c: ContactId) -> ContactId {
        while let Some(next) = self.merged.get(&c) {
            c = *next;
        }
        c
    }

    fn known(&self, incoming: &[Identity]) -> Vec<Known> {
        let mut ids: Vec<ContactId> = incoming
            .iter()
            .filter_map(|i| self.owner.get(i))
            .copied()
            .collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .map(|id| Known {
                id,
                identities: self.identities.get(&id).cloned().unwrap_or_default(),
            })
            .collect()
    }
}

/// Lead work of a group, in the order of its events.
enum SalesItem<'a> {
    /// A new lead: its index in the group's leads.
    Lead(usize),
    Action(&'a crate::LeadAction, ContactId, DateTime<Utc>),
}

/// Where one answer comes from: stored before, or written by this group.
enum Answer {
    Stored(Ingested),
    Written {
        event: EventId,
        contact: ContactId,
        lead: Option<pronto_domain::LeadId>,
    },
    /// A repeat, inside this group, of the message id of an earlier item of it.
    Repeat(usize),
}

const MAX_ATTEMPTS: usize = 5;

/// Ingests every job of a group inside the open transaction: all or nothing, redone on a conflict with a
/// concurrent writer. The answer has one list per job, in order.
pub(crate) async fn ingest_group<T: IngestTx + ?Sized>(
    tx: &mut T,
    jobs: &[Job],
    program: &Program,
) -> Result<(Vec<Vec<Ingested>>, Touched), StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        tx.exec("SAVEPOINT grp").await?;
        tx.bad_rows().clear();
        let now = jobs.first().map(|j| j.received_at).unwrap_or_else(Utc::now);
        let once = match ingest_once(tx, jobs, program).await {
            Ok(answers) => tx.flush_quarantine(now).await.map(|()| answers),
            Err(e) => Err(e),
        };
        match once {
            Ok(answers) => {
                tx.exec("RELEASE SAVEPOINT grp").await?;
                return Ok(answers);
            }
            Err(ItemError::Conflict) if attempt < MAX_ATTEMPTS => {
                tx.exec("ROLLBACK TO SAVEPOINT grp").await?;
                tx.exec("RELEASE SAVEPOINT grp").await?;
            }
            Err(ItemError::Conflict) => {
                return Err(StoreError::Unavailable(
                    "write conflicts persisted; retry".into(),
                ))
            }
            Err(ItemError::Store(e)) => return Err(e),
        }
    }
}

async fn ingest_once<T: IngestTx + ?Sized>(
    tx: &mut T,
    jobs: &[Job],
    program: &Program,
) -> Result<(Vec<Vec<Ingested>>, Touched), ItemError> {
    let mut touched = Touched::default();
    let mut answers: Vec<Vec<Ingested>> = jobs
        .iter()
        .map(|j| Vec::with_capacity(j.items.len()))
        .collect();
    let mut workspaces: Vec<WorkspaceId> = jobs.iter().map(|j| j.workspace).collect();
    workspaces.sort();
    workspaces.dedup();
    for ws in workspaces {
        let mine: Vec<usize> = (0..jobs.len())
            .filter(|&i| jobs[i].workspace == ws)
            .collect();
        let (done, t) = ingest_workspace(tx, ws, jobs, &mine, program).await?;
        touched = touched.and(t);
        for (job, list) in mine.into_iter().zip(done) {
            answers[job] = list;
        }
    }
    Ok((answers, touched))
}

async fn ingest_workspace<T: IngestTx + ?Sized>(
    tx: &mut T,
    ws: WorkspaceId,
    jobs: &[Job],
    mine: &[usize],
    program: &Program,
) -> Result<(Vec<Vec<Ingested>>, Touched), ItemError> {
    let items: Vec<(usize, &crate::IngestItem, DateTime<Utc>)> = mine
        .iter()
        .flat_map(|&j| {
            jobs[j]
                .items
                .iter()
                .map(move |it| (j, it, jobs[j].received_at))
        })
        .collect();

    // 1. Retries of stored messages.
    let mut mids: Vec<(&str, &str)> = items
        .iter()
        .filter_map(|(_, it, _)| dedupe_key(&it.event))
        .collect();
    mids.sort_unstable();
    mids.dedup();
    let stored: HashMap<(String, String), Ingested> = if mids.is_empty() {
        HashMap::new()
    } else {
        tx.find_events(ws, &mids).await?.into_iter().collect()
    };

    // 2. The contacts the group's identities belong to.
    let mut wanted: Vec<&Identity> = items
        .iter()
        .flat_map(|(_, it, _)| it.event.identities.iter())
        .collect();
    wanted.sort();
    wanted.dedup();
    let mut pic = Picture::default();
    if !wanted.is_empty() {
        for k in tx.owners(ws, &wanted).await? {
            for i in &k.identities {
                pic.owner.insert(i.clone(), k.id);
            }
            pic.identities.insert(k.id, k.identities);
        }
    }

    // 3. Resolve each event in order against the picture.
    let mut new_contacts: Vec<ContactId> = Vec::new();
    let mut new_identities: Vec<(ContactId, Identity)> = Vec::new();
    let mut merges: Vec<(ContactId, ContactId, EventId, DateTime<Utc>)> = Vec::new();
    let mut rows: Vec<EventRow<'_>> = Vec::new();
    let mut leads: Vec<(LeadRow<'_>, ContactId, EventId, DateTime<Utc>)> = Vec::new();
    let mut trait_updates: Vec<(ContactId, &NewEvent, DateTime<Utc>)> = Vec::new();
    let mut first_in_group: HashMap<(&str, &str), usize> = HashMap::new();
    let mut sales_work: Vec<SalesItem<'_>> = Vec::new();
    let mut plan: Vec<(usize, Answer)> = Vec::with_capacity(items.len());
    for (n, (job, item, received_at)) in items.iter().enumerate() {
        let ev = &item.event;
        if let Some(mid) = dedupe_key(ev) {
            if let Some(first) = stored.get(&(mid.0.to_string(), mid.1.to_string())) {
                plan.push((*job, Answer::Stored(first.clone())));
                continue;
            }
            if let Some(&first) = first_in_group.get(&mid) {
                plan.push((*job, Answer::Repeat(first)));
                continue;
            }
            first_in_group.insert(mid, n);
        }
        let event_id = EventId::new();
        let decision = resolve(&ev.identities, &pic.known(&ev.identities));
        let contact = decision.contact.unwrap_or_else(|| {
            let c = ContactId::new();
            new_contacts.push(c);
            pic.identities.insert(c, Vec::new());
            c
        });
        for from in decision.merge {
            let moved = pic.identities.remove(&from).unwrap_or_default();
            for i in &moved {
                pic.owner.insert(i.clone(), contact);
            }
            pic.identities.entry(contact).or_default().extend(moved);
            pic.merged.insert(from, contact);
            merges.push((from, contact, event_id, *received_at));
        }
        for i in decision.attach {
            pic.owner.insert(i.clone(), contact);
            pic.identities.entry(contact).or_default().push(i.clone());
            new_identities.push((contact, i));
        }
        rows.push(EventRow {
            id: event_id,
            contact,
            event: ev,
            received_at: *received_at,
        });
        if !ev.traits.is_empty() {
            trait_updates.push((contact, ev, *received_at));
        }
        let lead = item.lead.as_ref().map(|l| {
            let row = LeadRow::new(l);
            let id = row.id;
            sales_work.push(SalesItem::Lead(leads.len()));
            leads.push((row, contact, event_id, *received_at));
            id
        });
        if let Some(a) = &item.action {
            sales_work.push(SalesItem::Action(a, contact, *received_at));
        }
        plan.push((
            *job,
            Answer::Written {
                event: event_id,
                contact,
                lead,
            },
        ));
    }

    // 4. Write. Rows carry the contact as resolved at their event; the merges, applied last and in order,
    //    move them to the surviving contact, exactly as they move older rows.
    let now = items.first().map(|(_, _, t)| *t).unwrap_or_else(Utc::now);
    if !new_contacts.is_empty() {
        tx.insert_contacts(ws, &new_contacts, now).await?;
    }
    if !new_identities.is_empty() {
        let refs: Vec<(ContactId, &Identity)> =
            new_identities.iter().map(|(c, i)| (*c, i)).collect();
        if tx.insert_identities(ws, &refs, now).await? != refs.len() as u64 {
            return Err(ItemError::Conflict);
        }
    }
    let mut seqs: HashMap<EventId, i64> = HashMap::new();
    if !rows.is_empty() {
        seqs = tx.insert_events(ws, &rows).await?.into_iter().collect();
        if seqs.len() != rows.len() {
            return Err(ItemError::Conflict);
        }
    }
    for (from, into, event, at) in &merges {
        merge(tx, ws, *from, *into, *event, *at).await?;
    }
    // What orders bought together, for recommendations: committed with the orders themselves.
    let orders: Vec<catalog::Bought> = rows
        .iter()
        .filter_map(|r| catalog::bought(r.event.name.as_deref(), &r.event.payload))
        .collect();
    if !orders.is_empty() {
        tx.insert_order_items(ws, &orders).await?;
    }
    // Traits: read once for every contact the group updates or routes a lead for, merged in memory in the
    // events' order, written once.
    let mut need: Vec<ContactId> = trait_updates.iter().map(|(c, _, _)| pic.live(*c)).collect();
    if !program.sales.is_empty() {
        need.extend(leads.iter().map(|(_, c, _, _)| pic.live(*c)));
    }
    need.sort();
    need.dedup();
    let mut traits: HashMap<ContactId, Map<String, Value>> = if need.is_empty() {
        HashMap::new()
    } else {
        tx.traits_of(&need).await?.into_iter().collect()
    };
    // Each updated contact, as of its latest update in the group.
    let mut updated: HashMap<ContactId, DateTime<Utc>> = HashMap::new();
    for (contact, ev, at) in trait_updates {
        let live = pic.live(contact);
        let old = traits.remove(&live).unwrap_or_default();
        // Consent changes are recorded on the contact with their source (only looked at when the update
        // names a consent trait: most identifies do not).
        let before = pronto_domain::consent::KEYS
            .iter()
            .any(|k| ev.traits.contains_key(*k))
            .then(|| pronto_domain::consent::snapshot(&old));
        let mut merged = merge_traits(old, &ev.traits);
        if let Some(before) = before {
            let source = pronto_domain::consent::source_of(ev);
            pronto_domain::consent::record_changes(&before, &mut merged, &source, at);
        }
        traits.insert(live, merged);
        updated.insert(live, at);
    }
    if !updated.is_empty() {
        let rows: Vec<(ContactId, &Map<String, Value>, DateTime<Utc>)> = updated
            .iter()
            .filter_map(|(c, at)| traits.get(c).map(|t| (*c, t, *at)))
            .collect();
        tx.set_traits_of(&rows).await?;
    }
    // 5. Flows: exits and triggers, in the events' order, each with its contact as it is after the merges.
    let touched = if program.flows.is_empty() {
        Touched::default()
    } else {
        let seen: Vec<Seen<'_>> = rows
            .iter()
            .map(|r| Seen {
                id: r.id,
                contact: pic.live(r.contact),
                name: r.event.name.as_deref(),
                payload: &r.event.payload,
                timestamp: r.event.timestamp,
                received_at: r.received_at,
            })
            .collect();
        on_events(tx, program, ws, &seen).await?
    };
    // 6. Speed to lead: new leads routed, alerted and acknowledged; actions on leads applied; in order.
    let mut touched = touched;
    if !sales_work.is_empty() {
        let mut work = crate::sales::Work::default();
        if !program.sales.is_empty() && program.sales.ack.enabled {
            let mut to: Vec<&str> = leads
                .iter()
                .flat_map(|(row, _, _, _)| {
                    let l = row.lead;
                    l.email
                        .iter()
                        .map(|e| e.as_str())
                        .chain(l.phone.iter().map(|p| p.as_str()))
                })
                .collect();
            to.sort_unstable();
            to.dedup();
            work.count_acks(tx, ws, &to, now).await?;
        }
        for w in &sales_work {
            match w {
                SalesItem::Lead(i) => {
                    let (row, contact, event, at) = &leads[*i];
                    let live = pic.live(*contact);
                    let none = Map::new();
                    let traits = traits.get(&live).unwrap_or(&none);
                    let state = row.state(ws, live, *at);
                    crate::sales::on_new_lead(tx, program, &mut work, state, *event, traits, *at)
                        .await?;
                }
                SalesItem::Action(a, contact, at) => {
                    crate::sales::on_action(tx, program, &mut work, ws, pic.live(*contact), a, *at)
                        .await?;
                }
            }
        }
        let t = work.flush(tx).await?;
        touched = touched.and(t);
    }

    // Answers, in the jobs' order.
    let mut out: Vec<Vec<Ingested>> = vec![Vec::new(); mine.len()];
    let slot = |job: usize| mine.iter().position(|&j| j == job).unwrap_or(0);
    let mut written: Vec<Option<Ingested>> = Vec::with_capacity(plan.len());
    for (job, answer) in &plan {
        let done = match answer {
            Answer::Stored(first) => first.clone(),
            Answer::Written {
                event,
                contact,
                lead,
            } => Ingested {
                event_id: *event,
                seq: seqs[event],
                contact_id: pic.live(*contact),
                lead_id: *lead,
                duplicate: false,
                request_hash: None,
            },
            Answer::Repeat(first) => {
                let mut again = written[*first]
                    .clone()
                    .ok_or(StoreError::Corrupt("repeat before first".into()))?;
                again.duplicate = true;
                again
            }
        };
        written.push(Some(done.clone()));
        out[slot(*job)].push(done);
    }
    Ok((out, touched))
}

/// Applies a group's events to the flows: loads what [`group::wanted`] names in a fixed number of
/// statements, lets [`group::on_events`] decide, and writes the effects in bulk.
async fn on_events<T: IngestTx + ?Sized>(
    tx: &mut T,
    program: &Program,
    ws: WorkspaceId,
    seen: &[Seen<'_>],
) -> Result<Touched, ItemError> {
    let need = group::traits_wanted(program, seen);
    let traits: HashMap<ContactId, Map<String, Value>> = if need.is_empty() {
        HashMap::new()
    } else {
        tx.traits_of(&need).await?.into_iter().collect()
    };
    let want = group::wanted(program, seen, &traits);
    let runs = if want.keys.is_empty() && want.contacts.is_empty() {
        Vec::new()
    } else {
        tx.live_runs(ws, &want.keys, &want.contacts).await?
    };
    let marks = if want.marks.is_empty() {
        Vec::new()
    } else {
        tx.stopping_marks(ws, &want.marks).await?
    };
    let fx = group::on_events(program, seen, runs, marks, &traits);
    if !fx.marks.is_empty() {
        tx.insert_marks(ws, &fx.marks).await?;
    }
    if !fx.inserts.is_empty() {
        tx.insert_runs(ws, &fx.inserts).await?;
    }
    if !fx.updates.is_empty() {
        tx.write_runs(&fx.updates).await?;
    }
    if !fx.logs.is_empty() {
        tx.insert_logs(&fx.logs).await?;
    }
    // The earliest timer the group set (runs it started or refreshed).
    let earliest = fx
        .inserts
        .iter()
        .chain(&fx.updates)
        .filter_map(|r| r.due)
        .min();
    if let Some(at) = earliest {
        tx.notify("pronto_timers", &crate::tx::timers_payload(at))
            .await?;
    }
    Ok(Touched {
        timers: earliest,
        outbox: false,
    })
}
