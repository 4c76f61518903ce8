//! Flow experiments' results: `GET /v1/reports/flows` and `pronto report flows`. The store reads each run of
//! an experiment with its group, its messages (with their first click) and its conversion;
//! `pronto_domain::experiment::results` counts them, attributes and computes the intervals; this file only picks
//! the period and the configured shares, and lays the report out as a table or CSV.

use crate::error::ApiError;
use crate::service::Service;
use chrono::{DateTime, Utc};
use pronto_domain::experiment::results::{summarize, ConversionRule, ExperimentResult, RunOutcome};
use pronto_domain::experiment::Promotion;
use pronto_domain::flow::Conversion;
use pronto_domain::program::Program;
use pronto_domain::WorkspaceId;
use serde::Serialize;
use std::collections::BTreeMap;

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
}

impl Service {
    pub async fn flows_report(
        &self,
        ws: WorkspaceId,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<FlowsReport, ApiError> {
        let (from, to) = self.period(from, to)?;
        let program = self.store.shared().program();
        let runs = self
            .store
            .experiment_runs(ws, from, to, &conversion_rules(&program))
            .await?;
        let promotions = self.store.promotions(ws).await?;
        Ok(build_report(&runs, &promotions, &program, from, to))
    }
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

/// The report over `runs` (those started in `[from, to)`), with the split each flow's experiment is
/// configured with now (none for an experiment no longer configured).
pub fn build_report(
    runs: &[RunOutcome],
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
    let mut experiments = summarize(runs, |flow, experiment| {
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
