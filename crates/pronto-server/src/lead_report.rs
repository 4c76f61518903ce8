//! The speed-to-lead report's leads, kept in memory: each read brings them up to date from the store and
//! then works from memory, so a manager's board over a million stored leads does not read the period's tens
//! of thousands of leads and their ownership history on every view.
//!
//! Per workspace, a [`Window`] holds every lead that arrived since its start, as the report reads it
//! ([`ReportLead`]), with the store's [`LeadMark`] it is current to. A read first compares the mark (two
//! index reads); when it moved, the leads that arrived or changed since are read by key with their ownership
//! history and wins, and replace what was kept. Every write the report depends on moves the mark: a new
//! lead, and a step in its log (routing, reassignment, claim, attempt, win, reply, erasure). So a read sees
//! every write committed before it, on this process or another sharing the database, and the numbers are
//! those a read of the store would give (the same [`pronto_domain::report::build`]). The mark and the leads
//! are read from one source, where the reports read: with a PostgreSQL replica (`DATABASE_READ_URL`), the
//! report is current to the replica, which may lag by its delay.
//!
//! The board's checkouts and orders per hour are kept beside the leads, from their own mark (the `seq` of
//! the last `Checkout Started` or `Order Completed` stored): a read counts the ones stored since, each
//! once, so a view no longer groups the period's tens of thousands of events (180 ms for 30 days at
//! 10,000,000 stored events).
//!
//! Two things are not followed by the marks, and a full reload every [`REFRESH`] (in the background, swapped
//! in when done) bounds how long they can stay: a step whose log id was taken before, but committed after,
//! a later one (concurrent writers on PostgreSQL; the same holds for a checkout's `seq`), and events removed
//! by retention or erasure (`Lead Won`, checkouts, orders).
//!
//! A period starting before the window is read: the window grows back to it, up to [`MAX_DAYS`] before now;
//! a period reaching further back is read from the store for that read alone (seconds at a million leads).
//! Memory: about 500 bytes a lead with its distinct words (a 30-day window of 75,000 leads: about 40 MB;
//! estimated from the types, not measured alone).

use crate::error::ApiError;
use chrono::{DateTime, Duration, DurationRound, Utc};
use pronto_domain::report::ReportLead;
use pronto_domain::{LeadId, WorkspaceId};
use pronto_store::{LeadMark, LeadState, Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::Mutex;

/// The most days before now a kept window reaches back; older periods are read from the store.
pub const MAX_DAYS: i64 = 100;

/// How long a window is used before it is loaded again in full (see the module's doc).
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(600);

/// The most changed leads read at once; past it (an import, a burst after an outage) the window is loaded
/// again instead.
const CHANGES: i64 = 5_000;

/// The report's leads since `from`, current to `mark`, and the checkouts and orders per hour since `from`,
/// current to `commerce_mark`.
struct Window {
    from: DateTime<Utc>,
    mark: LeadMark,
    /// In arrival order, so a period is a range.
    leads: BTreeMap<(DateTime<Utc>, LeadId), ReportLead>,
    /// When each lead arrived: its key in `leads`.
    arrived: HashMap<LeadId, DateTime<Utc>>,
    commerce_mark: i64,
    /// How many `Checkout Started` and `Order Completed` events per hour (of their time) and name.
    commerce: BTreeMap<(DateTime<Utc>, String), u64>,
    loaded: std::time::Instant,
    /// Set while a background reload runs, so only one does.
    reloading: bool,
}

/// The windows of this process, one per workspace that has been reported on.
#[derive(Default)]
pub struct Kept {
    windows: std::sync::Mutex<HashMap<WorkspaceId, Arc<Mutex<Option<Window>>>>>,
}

impl Kept {
    /// Calls `f` with the leads that arrived in `[from, to)`, in arrival order, and the checkouts and
    /// orders per hour in `[from, to)` (`(hour, event name, how many)`, by hour), current to every write
    /// committed before this call.
    pub async fn read<R>(
        &self,
        store: &Arc<dyn Store>,
        ws: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
        f: impl FnOnce(&[&ReportLead], &[(DateTime<Utc>, String, u64)]) -> R,
    ) -> Result<R, ApiError> {
        let oldest = now - Duration::days(MAX_DAYS);
        if from < oldest {
            let leads = load(store, ws, from, to).await?;
            let commerce: Vec<_> = store
                .commerce_by_hour(ws, from, to, i64::MAX)
                .await?
                .into_iter()
                .map(|(hour, name, n)| (hour, name, n.unsigned_abs()))
                .collect();
            return Ok(f(&leads.iter().collect::<Vec<_>>(), &commerce));
        }
        let slot = self.slot(ws);
        let mut window = slot.lock().await;
        let w = match window.take() {
            Some(mut w) if w.from <= from => {
                // Kept as it was when the store cannot be read now: the next read tries again.
                let synced = sync(store, ws, &mut w).await;
                let w = window.insert(w);
                synced?;
                w
            }
            // Grow back to `from` (a little further, so the next period a few minutes earlier fits too).
            _ => window
                .insert(Window::load(store, ws, (from - Duration::days(1)).max(oldest)).await?),
        };
        if w.loaded.elapsed() >= REFRESH && !w.reloading {
            w.reloading = true;
            tokio::spawn(reload(store.clone(), ws, w.from, slot.clone()));
        }
        Ok(f(&w.in_period(from, to), &w.commerce_in(from, to)))
    }

    fn slot(&self, ws: WorkspaceId) -> Arc<Mutex<Option<Window>>> {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(ws)
            .or_default()
            .clone()
    }
}

impl Window {
    /// Every lead since `from`, and the checkouts and orders per hour since `from`, read from the store.
    /// The marks are read first: a lead written while the leads are read is read again by the next sync,
    /// never missed; the checkouts and orders are counted up to their mark, the next sync counts the rest.
    async fn load(
        store: &Arc<dyn Store>,
        ws: WorkspaceId,
        from: DateTime<Utc>,
    ) -> Result<Window, StoreError> {
        let mark = store.lead_mark(ws).await?;
        let commerce_mark = store.commerce_mark(ws).await?;
        // Every lead since `from` (a bound SQLite's text times still compare with).
        let far = chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut w = Window {
            from,
            mark,
            leads: BTreeMap::new(),
            arrived: HashMap::new(),
            commerce_mark,
            commerce: BTreeMap::new(),
            loaded: std::time::Instant::now(),
            reloading: false,
        };
        w.keep(load(store, ws, from, far).await?);
        w.count(store.commerce_by_hour(ws, from, far, commerce_mark).await?);
        Ok(w)
    }

    /// Adds checkouts and orders per hour; hours before the window are not kept.
    fn count(&mut self, hours: Vec<(DateTime<Utc>, String, i64)>) {
        let first = self
            .from
            .duration_trunc(Duration::hours(1))
            .unwrap_or(self.from);
        for (hour, name, n) in hours.into_iter().filter(|(hour, _, _)| *hour >= first) {
            *self.commerce.entry((hour, name)).or_default() += n.unsigned_abs();
        }
    }

    /// The checkouts and orders per hour in `[from, to)`, by hour.
    fn commerce_in(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, String, u64)> {
        if to <= from {
            return Vec::new();
        }
        self.commerce
            .range((from, String::new())..(to, String::new()))
            .map(|((hour, name), n)| (*hour, name.clone(), *n))
            .collect()
    }

    /// Keeps `leads`, each in place of what was kept of it.
    fn keep(&mut self, leads: impl IntoIterator<Item = ReportLead>) {
        for l in leads {
            if let Some(was) = self.arrived.insert(l.id, l.timing.created) {
                self.leads.remove(&(was, l.id));
            }
            self.leads.insert((l.timing.created, l.id), l);
        }
    }

    /// The leads that arrived in `[from, to)`, in arrival order.
    fn in_period(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<&ReportLead> {
        if to <= from {
            return Vec::new();
        }
        let first = (from, LeadId(uuid::Uuid::nil()));
        let past = (to, LeadId(uuid::Uuid::nil()));
        self.leads.range(first..past).map(|(_, l)| l).collect()
    }
}

/// Loads the window again in full and swaps it in, unless it was replaced meanwhile.
async fn reload(
    store: Arc<dyn Store>,
    ws: WorkspaceId,
    from: DateTime<Utc>,
    slot: Arc<Mutex<Option<Window>>>,
) {
    let fresh = Window::load(&store, ws, from).await;
    let mut window = slot.lock().await;
    match (fresh, window.as_mut()) {
        (Ok(fresh), Some(w)) if w.from == from => *w = fresh,
        (Err(e), Some(w)) => {
            tracing::warn!(error = %e, "the kept speed-to-lead report could not be loaded again");
            w.reloading = false;
        }
        _ => {}
    }
}

/// Brings `w` up to the store's mark: the leads that arrived or changed since are read again.
async fn sync(store: &Arc<dyn Store>, ws: WorkspaceId, w: &mut Window) -> Result<(), StoreError> {
    let (hours, commerce_mark) = store.commerce_since(ws, w.commerce_mark).await?;
    w.count(hours);
    w.commerce_mark = commerce_mark;
    let mark = store.lead_mark(ws).await?;
    if mark == w.mark {
        return Ok(());
    }
    let changed = store.leads_since(ws, &w.mark, CHANGES + 1).await?;
    if changed.len() > CHANGES as usize {
        *w = Window::load(store, ws, w.from).await?;
        return Ok(());
    }
    let changed: Vec<LeadState> = changed
        .into_iter()
        .filter(|l| l.created_at >= w.from)
        .collect();
    if let Some(oldest) = changed.iter().map(|l| l.created_at).min() {
        let ids: Vec<LeadId> = changed.iter().map(|l| l.id).collect();
        let ownership = store.ownership_of(ws, &ids).await?;
        let wins = store.lead_wins(ws, oldest).await?;
        w.keep(report_leads(changed, ownership, wins));
    }
    w.mark = mark;
    Ok(())
}

/// The leads that arrived in `[from, to)` as the report reads them, in arrival order, read from the store.
pub async fn load(
    store: &Arc<dyn Store>,
    ws: WorkspaceId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ReportLead>, StoreError> {
    let leads = store.leads_between(ws, from, to).await?;
    let ownership = store.ownership_between(ws, from, to).await?;
    let wins = store.lead_wins(ws, from).await?;
    let mut out: Vec<ReportLead> = report_leads(leads, ownership, wins).collect();
    out.sort_by_key(|l| (l.timing.created, l.id));
    Ok(out)
}

/// `leads` as the report reads them, given their ownership changes (in order) and the wins logged since
/// they arrived (oldest first: a later win of a lead replaces an earlier one).
fn report_leads(
    leads: Vec<LeadState>,
    ownership: Vec<(LeadId, DateTime<Utc>, String)>,
    wins: Vec<(LeadId, String, f64)>,
) -> impl Iterator<Item = ReportLead> {
    let mut history: HashMap<LeadId, Vec<(DateTime<Utc>, String)>> = HashMap::new();
    for (lead, at, rep) in ownership {
        history.entry(lead).or_default().push((at, rep));
    }
    let wins: HashMap<LeadId, (String, f64)> = wins
        .into_iter()
        .map(|(lead, currency, value)| (lead, (currency, value)))
        .collect();
    leads.into_iter().map(move |l| {
        ReportLead::of(
            &l,
            history.get(&l.id).map(Vec::as_slice).unwrap_or_default(),
            wins.get(&l.id).cloned(),
        )
    })
}
