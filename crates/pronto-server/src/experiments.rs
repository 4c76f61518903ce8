//! Flow experiments' results: `GET /v1/reports/flows` and `pronto report flows`. The store reads each run of
//! an experiment with its group, whether it was messaged and its conversion; `pronto_domain::experiment::results`
//! counts them and computes the intervals; this file only picks the period and the configured shares.

use crate::error::ApiError;
use crate::service::Service;
use chrono::{DateTime, Utc};
use pronto_domain::experiment::results::{summarize, ExperimentResult, RunOutcome};
use pronto_domain::program::Program;
use pronto_domain::WorkspaceId;
use serde::Serialize;

/// The flows' experiments over a period.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlowsReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Days after a run starts in which an order counts as its conversion.
    pub conversion_window_days: i64,
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
        let runs = self.store.experiment_runs(ws, from, to).await?;
        Ok(build_report(
            &runs,
            &self.store.shared().program(),
            from,
            to,
        ))
    }
}

/// The report over `runs` (those started in `[from, to)`), with the split each flow's experiment is
/// configured with now (none for an experiment no longer configured).
pub fn build_report(
    runs: &[RunOutcome],
    program: &Program,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> FlowsReport {
    let experiments = summarize(runs, |flow, experiment| {
        program
            .flow(flow)
            .and_then(|f| f.experiment.as_ref())
            .filter(|e| e.id == experiment)
            .map(|e| f64::from(e.holdout_bp) / 10_000.0)
    });
    FlowsReport {
        from,
        to,
        conversion_window_days: pronto_domain::experiment::results::WINDOW_DAYS,
        experiments,
    }
}

/// The report as a terminal table.
pub fn report_table(r: &FlowsReport) -> String {
    let mut out = format!(
        "Flows' experiments, runs started {} to {} (conversion: an order within {} days)\n",
        r.from.format("%Y-%m-%d %H:%M"),
        r.to.format("%Y-%m-%d %H:%M"),
        r.conversion_window_days
    );
    if r.experiments.is_empty() {
        out.push_str("no runs of a flow with an experiment in this period\n");
    }
    for e in &r.experiments {
        out.push_str(&format!("\n{} / {}\n", e.flow, e.experiment));
        out.push_str(&format!(
            "  {:<10} {:>8} {:>9} {:>9} {:>8}  {:<17} revenue\n",
            "group", "entered", "messaged", "converted", "rate", "95% interval"
        ));
        for g in &e.groups {
            let revenue: Vec<String> = g
                .revenue
                .iter()
                .map(|(c, v)| format!("{v:.2} {c}").trim().to_string())
                .collect();
            out.push_str(&format!(
                "  {:<10} {:>8} {:>9} {:>9} {:>7.2}%  {:>6.2}% - {:>6.2}%  {}\n",
                g.arm,
                g.entered,
                g.messaged,
                g.converted,
                100.0 * g.conversion_rate,
                100.0 * g.conversion_rate_interval[0],
                100.0 * g.conversion_rate_interval[1],
                revenue.join(", ")
            ));
        }
        match &e.conversion_uplift {
            Some(u) => out.push_str(&format!(
                "  uplift {:+.2} points, always-valid 95% interval {:+.2} to {:+.2}; P(treatment better) {:.1}%\n",
                100.0 * u.difference,
                100.0 * u.interval[0],
                100.0 * u.interval[1],
                100.0 * u.probability_better
            )),
            None => out.push_str("  uplift: not yet (a group has no runs)\n"),
        }
        for (c, v) in &e.incremental_revenue {
            out.push_str(&format!("  incremental revenue: {v:.2} {c}\n"));
        }
        if let Some(s) = e.sample_ratio.as_ref().filter(|s| s.mismatch) {
            out.push_str(&format!(
                "  WARNING: sample-ratio mismatch: {:.2}% held out, {:.2}% configured (p = {:.2e}); do not trust this comparison\n",
                100.0 * s.observed_holdout_share,
                100.0 * s.expected_holdout_share,
                s.p_value
            ));
        }
    }
    out
}

/// The report as CSV: one row per flow, experiment and group, with the uplift on the treatment's row.
pub fn report_csv(r: &FlowsReport) -> String {
    let mut out = String::from(
        "flow,experiment,group,entered,messaged,converted,conversion_rate,rate_low,rate_high,\
         uplift,uplift_low,uplift_high,probability_better,sample_ratio_p,sample_ratio_mismatch,revenue\n",
    );
    let field = crate::views::csv_field;
    for e in &r.experiments {
        for g in &e.groups {
            let treated = g.arm == "treatment";
            let u = e.conversion_uplift.as_ref().filter(|_| treated);
            let srm = e.sample_ratio.as_ref();
            let revenue: Vec<String> = g
                .revenue
                .iter()
                .map(|(c, v)| format!("{v:.2} {c}").trim().to_string())
                .collect();
            out.push_str(&format!(
                "{},{},{},{},{},{},{:.6},{:.6},{:.6},{},{},{},{},{},{},{}\n",
                field(&e.flow),
                field(&e.experiment),
                g.arm,
                g.entered,
                g.messaged,
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
                field(&revenue.join("; ")),
            ));
        }
    }
    out
}
