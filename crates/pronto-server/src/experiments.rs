//! Flow experiments' results: `GET /v1/reports/flows` and `pronto report flows`, and their promotion. The
//! store keeps every flow's run counts per hour of the runs' start, up to date as runs change (`pronto_store`'s
//! `reports`); a report (and the owner's recovery page, which reads every flow's) reads them exact as of now
//! (the runs changed since the counter's last step re-counted in memory, nothing written), sums the
//! whole hours of its period and reads the runs of the partial hours at its ends; `pronto_domain::experiment::results` counts, attributes and computes the intervals. This
//! file picks the period and the configured shares, lays the report out as a table or CSV, records promotions
//! and runs the `auto_promote` rules.

use chrono::{DateTime, Utc};
use pronto_domain::experiment::results::{
    counts_of, hour_of, results, winner, BucketKey, ConversionRule, Counts, ExperimentResult,
    RunOutcome,
};
use pronto_domain::experiment::Promotion;
use pronto_domain::flow::Conversion;
use pronto_domain::program::Program;
use pronto_domain::WorkspaceId;
use pronto_store::{RunsOf, Store, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The flows' experiments over a period.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlowsReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Days after a run starts in which an order counts as its conversion, unless the flow names its own
    /// (each experiment says what counted).
    pub conversion_window_days: i64,
    /// Days after a message's send or click in which a conversion is credited to it (last touch).
    pub attribution_window_days: i64,
    /// One per flow and experiment with runs started in the period.
    pub experiments: Vec<ExperimentResult>,
    /// Email sent, bounced and complained about in the period's hours (counted when it happened, not by
    /// the run's start), overall and per flow, with a warning past 0.1% complaints.
    pub deliverability: pronto_domain::report::deliverability::Deliverability,
}

/// Rows of each table a page's look at the counts ([`Store::report_counts_now`]) re-counts in memory at most.
/// The counter worker folds continuously, so what waits is normally a second's worth of changes; more
/// than this means the counts are being made again or far behind, and the page catches them up instead.
const LOOK_BATCH: i64 = 5_000;
/// Steps of [`Store::fold_reports`] a report runs to catch the counts up before it gives up on them and
/// reads every run (the counts are being made again: after an upgrade or changed conversion rules).
const CATCH_UP_STEPS: usize = 50;
/// Rows of each table one step reads. Small, because on SQLite a step holds the one writer: a step of 200
/// re-reads at most a few hundred runs (a few milliseconds), so timers due meanwhile wait for one step at most
/// (2,000 held it for up to a quarter of a second while the counter caught up).
pub const FOLD_BATCH: i64 = 200;

/// The flows report over the runs started in `[from, to)`, as the endpoint and `pronto report flows` give it.
pub async fn flows_report(
    store: &dyn Store,
    program: &Program,
    ws: WorkspaceId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<FlowsReport, StoreError> {
    let rules = conversion_rules(program);
    let counts = counts_between(store, ws, (from, to), &rules, RunsOf::Experiments).await?;
    flows_report_of(store, program, ws, (from, to), counts).await
}

/// The flows report over `[from, to)` from its experiments' counts (read by [`counts_between`]).
pub async fn flows_report_of(
    store: &dyn Store,
    program: &Program,
    ws: WorkspaceId,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    counts: BTreeMap<(String, String), Counts>,
) -> Result<FlowsReport, StoreError> {
    let promotions = store.promotions(ws).await?;
    let mut report = build_report(counts, &promotions, program, from, to);
    report.deliverability = pronto_domain::report::deliverability::summarize(
        &store.delivery_counts(ws, from, to).await?,
    );
    Ok(report)
}

/// The counts by flow and experiment of the runs started in `[from, to)`, of experiments only or of every
/// flow (`of`; a run outside any experiment is experiment `""`): the kept counts of the whole hours in it
/// (and of its last hour when no run of that hour started after it ends), and the runs of the partial hours
/// at its ends read as they are. The kept counts are read exact as of now
/// ([`kept_counts`]); when they cannot be (being made again, far behind, or not writable), every run is read.
pub async fn counts_between(
    store: &dyn Store,
    ws: WorkspaceId,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    rules: &[ConversionRule],
    of: RunsOf,
) -> Result<BTreeMap<(String, String), Counts>, StoreError> {
    let mut by: BTreeMap<(String, String), Counts> = BTreeMap::new();
    let add_runs = |runs: Vec<RunOutcome>, by: &mut BTreeMap<(String, String), Counts>| {
        for (k, c) in counts_of(&runs) {
            by.entry(k).or_default().merge(&c);
        }
    };
    let first = {
        let h = hour_of(from);
        if h == from {
            h
        } else {
            h + chrono::Duration::hours(1)
        }
    };
    // The hour `to` falls in is read from the kept counts too when no run of it started at or after `to`
    // (a period that ends now): its bucket then holds exactly the runs of `[hour, to)`, and the hour with the
    // most changes is not read run by run.
    let last = match hour_of(to) {
        h if h < to
            && !store
                .runs_started_in(ws, to, h + chrono::Duration::hours(1))
                .await? =>
        {
            h + chrono::Duration::hours(1)
        }
        h => h,
    };
    let kept = if first < last {
        kept_counts(store, ws, (first, last), rules).await?
    } else {
        None
    };
    let Some(kept) = kept else {
        add_runs(store.run_outcomes(ws, of, from, to, rules).await?, &mut by);
        return Ok(by);
    };
    for (b, c) in kept {
        if of == RunsOf::Experiments && b.experiment.is_empty() {
            continue;
        }
        by.entry((b.flow, b.experiment)).or_default().merge(&c);
    }
    if from < first {
        add_runs(
            store.run_outcomes(ws, of, from, first, rules).await?,
            &mut by,
        );
    }
    if last < to {
        add_runs(store.run_outcomes(ws, of, last, to, rules).await?, &mut by);
    }
    Ok(by)
}

/// The kept counts of the whole hours `[first, last)`, exact as of now: read with the few runs changed since
/// the counter's last step re-counted in memory ([`Store::report_counts_now`], which never waits for
/// SQLite's one writer), or else caught up by steps first. `None` when they cannot be had (being made
/// again after changed rules, or a write failing): the caller reads every run.
async fn kept_counts(
    store: &dyn Store,
    ws: WorkspaceId,
    (first, last): (DateTime<Utc>, DateTime<Utc>),
    rules: &[ConversionRule],
) -> Result<Option<Vec<(BucketKey, Counts)>>, StoreError> {
    match store
        .report_counts_now(ws, first, last, rules, LOOK_BATCH)
        .await
    {
        Ok(Some(counts)) => return Ok(Some(counts)),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not read the report's counts as of now; catching them up")
        }
    }
    for _ in 0..CATCH_UP_STEPS {
        match store.fold_reports(rules, FOLD_BATCH).await {
            Ok(f) if f.more => {}
            Ok(_) => return Ok(Some(store.report_counts(ws, first, last).await?)),
            // Writes failing (a full disk, a read-only replica) still leave the runs to read.
            Err(e) => {
                tracing::warn!(error = %e, "could not bring the report's counts up to date; reading every run");
                return Ok(None);
            }
        }
    }
    Ok(None)
}

/// Records `variant` as the winner of `flow`'s `experiment` and applies it to the loaded flows; the error
/// names the field at fault (no such flow, another experiment, not a variant).
pub async fn promote(
    store: &dyn Store,
    ws: WorkspaceId,
    (flow, experiment, variant): (&str, &str, &str),
    source: &str,
    now: DateTime<Utc>,
) -> Result<Result<Promotion, (&'static str, String)>, StoreError> {
    let mut next = (*store.shared().program()).clone();
    if let Err(e) = next.promote(flow, experiment, variant) {
        return Ok(Err(e));
    }
    let promotion = Promotion {
        flow: flow.to_string(),
        experiment: experiment.to_string(),
        variant: variant.to_string(),
        promoted_at: now,
        source: source.to_string(),
    };
    store.record_promotion(ws, &promotion).await?;
    store.shared().set_program(Arc::new(next));
    tracing::info!(flow, experiment, variant, source, "variant promoted");
    Ok(Ok(promotion))
}

/// The counter worker's look at the experiments (about once a minute): applies the promotions other
/// processes recorded since this one loaded its flows, then promotes the best variant of each experiment
/// whose `auto_promote` rule is met over all its runs so far
/// (`pronto_domain::experiment::results::winner`). Answers the promotions it made.
pub async fn promote_step(
    store: &dyn Store,
    ws: WorkspaceId,
    now: DateTime<Utc>,
) -> Result<Vec<Promotion>, StoreError> {
    let recorded = store.promotions(ws).await?;
    let program = store.shared().program();
    let mut synced = (*program).clone();
    synced.apply_promotions(&recorded);
    let program = if experiments_of(&synced) != experiments_of(&program) {
        tracing::info!("applied promotions recorded by another process");
        let synced = Arc::new(synced);
        store.shared().set_program(synced.clone());
        synced
    } else {
        program
    };
    let candidates: Vec<(String, pronto_domain::experiment::Experiment)> = program
        .flows
        .iter()
        .filter_map(|f| {
            f.experiment
                .as_ref()
                .filter(|e| e.auto_promote.is_some() && e.promoted.is_none())
                .map(|e| (f.id.clone(), e.clone()))
        })
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let since = DateTime::<Utc>::UNIX_EPOCH;
    let report = flows_report(store, &program, ws, since, now).await?;
    let mut made = Vec::new();
    for (flow, e) in candidates {
        let (Some(rule), Some(result)) = (
            e.auto_promote.as_ref(),
            report
                .experiments
                .iter()
                .find(|r| r.flow == flow && r.experiment == e.id),
        ) else {
            continue;
        };
        let variants: Vec<String> = e.variants.iter().map(|v| v.id.clone()).collect();
        if let Some(v) = winner(result, &variants, rule) {
            if let Ok(p) = promote(store, ws, (&flow, &e.id, &v), "auto", now).await? {
                made.push(p);
            }
        }
    }
    Ok(made)
}

/// Each flow's experiment as loaded, to tell whether promotions changed any.
fn experiments_of(p: &Program) -> Vec<Option<&pronto_domain::experiment::Experiment>> {
    p.flows.iter().map(|f| f.experiment.as_ref()).collect()
}

/// What the store looks for as each configured flow's conversion, and the default for any other flow's runs.
pub fn conversion_rules(program: &Program) -> Vec<ConversionRule> {
    let rule = |flow: &str, c: &Conversion| {
        c.events
            .iter()
            .map(|e| ConversionRule {
                flow: flow.to_string(),
                event: e.clone(),
                within_secs: c.within.num_seconds(),
            })
            .collect::<Vec<_>>()
    };
    let mut out = rule("", &Conversion::default());
    for f in &program.flows {
        out.extend(rule(&f.id, &f.conversion));
    }
    out
}

/// The report from the counts of the runs started in `[from, to)`, with the split each flow's experiment is
/// configured with now (none for an experiment no longer configured).
pub fn build_report(
    counts: BTreeMap<(String, String), Counts>,
    promotions: &[Promotion],
    program: &Program,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> FlowsReport {
    let latest = |flow: &str, experiment: &str| {
        promotions
            .iter()
            .filter(|p| p.flow == flow && p.experiment == experiment)
            .max_by_key(|p| p.promoted_at)
    };
    let mut experiments = results(counts, |flow, experiment| {
        program
            .flow(flow)
            .and_then(|f| f.experiment.as_ref())
            .filter(|e| e.id == experiment && latest(flow, experiment).is_none())
            .map(|e| e.shares())
    });
    for e in &mut experiments {
        e.promoted = latest(&e.flow, &e.experiment).cloned();
        if let Some(f) = program.flow(&e.flow) {
            e.conversion_events = f.conversion.events.clone();
            e.conversion_window_hours = f.conversion.within.num_hours();
        }
    }
    FlowsReport {
        from,
        to,
        conversion_window_days: pronto_domain::experiment::results::WINDOW_DAYS,
        attribution_window_days: pronto_domain::experiment::results::ATTRIBUTION_DAYS,
        experiments,
        deliverability: Default::default(),
    }
}

/// The report as a terminal table.
pub fn report_table(r: &FlowsReport) -> String {
    let mut out = format!(
        "Flows' experiments, runs started {} to {} (conversion by default: an order within {} days; \
         a step is credited when its message was the last touch within {} days)\n",
        r.from.format("%Y-%m-%d %H:%M"),
        r.to.format("%Y-%m-%d %H:%M"),
        r.conversion_window_days,
        r.attribution_window_days
    );
    if r.experiments.is_empty() {
        out.push_str("no runs of a flow with an experiment in this period\n");
    }
    for e in &r.experiments {
        out.push_str(&format!(
            "\n{} / {} (conversion: {} within {} h)\n",
            e.flow,
            e.experiment,
            e.conversion_events.join(" or "),
            e.conversion_window_hours
        ));
        if let Some(p) = &e.promoted {
            out.push_str(&format!(
                "  promoted: {} since {} ({}); new runs not held out take it\n",
                p.variant,
                p.promoted_at.format("%Y-%m-%d %H:%M"),
                p.source
            ));
        }
        out.push_str(&format!(
            "  {:<12} {:>8} {:>9} {:>8} {:>9} {:>8}  {:<17} revenue\n",
            "group", "entered", "messaged", "clicked", "converted", "rate", "95% interval"
        ));
        for g in &e.groups {
            out.push_str(&format!(
                "  {:<12} {:>8} {:>9} {:>8} {:>9} {:>7.2}%  {:>6.2}% - {:>6.2}%  {}\n",
                g.arm,
                g.entered,
                g.messaged,
                g.clicked,
                g.converted,
                100.0 * g.conversion_rate,
                100.0 * g.conversion_rate_interval[0],
                100.0 * g.conversion_rate_interval[1],
                crate::views::amounts(&g.revenue)
            ));
        }
        let control = e.control.as_deref().unwrap_or("-");
        for g in e
            .groups
            .iter()
            .filter(|g| Some(g.arm.as_str()) != e.control.as_deref())
        {
            match &g.conversion_uplift {
                Some(u) => out.push_str(&format!(
                    "  {} vs {control}: {:+.2} points, always-valid 95% interval {:+.2} to {:+.2}; P(better) {:.1}%\n",
                    g.arm,
                    100.0 * u.difference,
                    100.0 * u.interval[0],
                    100.0 * u.interval[1],
                    100.0 * u.probability_better
                )),
                None => out.push_str(&format!(
                    "  {} vs {control}: not yet (a group has no runs)\n",
                    g.arm
                )),
            }
            if !g.incremental_revenue.is_empty() {
                out.push_str(&format!(
                    "  {} incremental revenue over {control}: {}\n",
                    g.arm,
                    crate::views::amounts(&g.incremental_revenue)
                ));
            }
        }
        if !e.steps.is_empty() {
            out.push_str(&format!(
                "  {:<5} {:<12} {:>9} {:>8} {:>7} {:>10}  attributed revenue\n",
                "step", "group", "messaged", "clicked", "rate", "attributed"
            ));
            for st in &e.steps {
                out.push_str(&format!(
                    "  {:<5} {:<12} {:>9} {:>8} {:>6.1}% {:>10}  {}\n",
                    st.step,
                    st.arm,
                    st.messaged,
                    st.clicked,
                    100.0 * st.click_rate,
                    st.attributed_conversions,
                    crate::views::amounts(&st.attributed_revenue)
                ));
            }
        }
        if let Some(s) = e.sample_ratio.as_ref().filter(|s| s.mismatch) {
            let split = |m: &BTreeMap<String, f64>| {
                m.iter()
                    .map(|(a, v)| format!("{a} {:.2}%", 100.0 * v))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push_str(&format!(
                "  WARNING: sample-ratio mismatch: observed {}, configured {} (p = {:.2e}); do not trust this comparison\n",
                split(&s.observed),
                split(&s.expected),
                s.p_value
            ));
        }
    }
    let d = &r.deliverability;
    out.push_str(&format!(
        "\nEmail in the period: {} sent, {} hard and {} soft bounces ({:.2}%), {} complaints ({:.3}%)\n",
        d.total.sent,
        d.total.hard_bounces,
        d.total.soft_bounces,
        d.total.bounce_rate * 100.0,
        d.total.complaints,
        d.total.complaint_rate * 100.0
    ));
    for f in d.flows.iter().filter(|f| !f.flow.is_empty()) {
        out.push_str(&format!(
            "  {}: {} sent, bounces {:.2}%, complaints {:.3}%\n",
            f.flow,
            f.sent,
            f.bounce_rate * 100.0,
            f.complaint_rate * 100.0
        ));
    }
    if let Some(w) = &d.warning {
        out.push_str(&format!("  WARNING: {w}\n"));
    }
    out
}

/// The report as CSV: one row per flow, experiment and group (`step` empty, uplift over the control on the
/// other groups' rows), then one per step and group (the step's messages, clicks and attributed conversions).
pub fn report_csv(r: &FlowsReport) -> String {
    let mut out = String::from(
        "flow,experiment,step,group,entered,messaged,clicked,converted,conversion_rate,rate_low,rate_high,\
         uplift,uplift_low,uplift_high,probability_better,sample_ratio_p,sample_ratio_mismatch,revenue\n",
    );
    let field = crate::views::csv_field;
    for e in &r.experiments {
        let srm = e.sample_ratio.as_ref();
        for g in &e.groups {
            let u = g.conversion_uplift.as_ref();
            out.push_str(&format!(
                "{},{},,{},{},{},{},{},{:.6},{:.6},{:.6},{},{},{},{},{},{},{}\n",
                field(&e.flow),
                field(&e.experiment),
                field(&g.arm),
                g.entered,
                g.messaged,
                g.clicked,
                g.converted,
                g.conversion_rate,
                g.conversion_rate_interval[0],
                g.conversion_rate_interval[1],
                u.map_or(String::new(), |u| format!("{:.6}", u.difference)),
                u.map_or(String::new(), |u| format!("{:.6}", u.interval[0])),
                u.map_or(String::new(), |u| format!("{:.6}", u.interval[1])),
                u.map_or(String::new(), |u| format!("{:.4}", u.probability_better)),
                srm.map_or(String::new(), |s| format!("{:.6}", s.p_value)),
                srm.map_or(String::new(), |s| s.mismatch.to_string()),
                field(&crate::views::amounts(&g.revenue)),
            ));
        }
        for st in &e.steps {
            out.push_str(&format!(
                "{},{},{},{},,{},{},{},,,,,,,,,,{}\n",
                field(&e.flow),
                field(&e.experiment),
                st.step,
                field(&st.arm),
                st.messaged,
                st.clicked,
                st.attributed_conversions,
                field(&crate::views::amounts(&st.attributed_revenue)),
            ));
        }
    }
    out
}
