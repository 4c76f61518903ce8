//! What an experiment shows: per flow and group (the holdout, the treatment or each variant), runs entered,
//! messaged, clicked and converted, revenue, and each group's uplift over the control, with intervals that stay
//! valid however often they are looked at; and per step and group, which message earned the conversions.
//!
//! **A conversion** is an exit mark of one of the flow's conversion events (by default `Order Completed` or
//! `Lead Won`; a flow's `conversion = { event, within }` names others) that meets one of its exit rules (the same
//! key whenever it happened, or the same contact after the run started), within the flow's window (by default
//! [`WINDOW_DAYS`]) of the run's start;
//! its revenue is the event's `revenue`, else `total`, else `value`, kept per currency (no conversion between
//! currencies). The store finds them; this module only counts.
//!
//! **The control** is the holdout when the experiment holds runs out; else the first variant configured.
//!
//! **Which message earned it** (per step): the run's last touch before the conversion, as Klaviyo counts: the
//! latest click within [`ATTRIBUTION_DAYS`] before it, else the latest message sent within that window. Such
//! attribution credits messages with orders that would have come anyway; the comparison with the holdout,
//! which needs no tracking, is what measures what the messages earn. Clicks count people who followed a
//! tracked link (a mail scanner that follows every link counts too); opens are not tracked, since privacy
//! proxies open every mail.
//!
//! **The statistics.**
//! - Each group's conversion rate has a Wilson score interval (95%), which behaves at rates near 0 where the
//!   normal approximation does not.
//! - The uplift (group rate − control rate, and revenue per run per currency) has a 95% *asymptotic
//!   confidence sequence* (Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas, "Time-uniform central limit theory
//!   and asymptotic confidence sequences", 2021; the method GrowthBook's sequential testing uses): an interval
//!   valid at every sample size at once, so a shop owner may look every day and stop when it excludes zero
//!   without inflating false positives. Its width is tuned to be tightest near [`TUNING_N`] runs; it is wider
//!   than a fixed-horizon interval, which is the price of peeking.
//! - "Probability the group beats the control" is the normal approximation Φ(d / se), i.e. the posterior
//!   probability under a flat prior; it is not sequentially corrected and is shown as a guide.
//! - **Sample-ratio mismatch**: the observed split is tested against the configured one (chi-square with one
//!   degree of freedom fewer than the groups); p < 0.001 is flagged, since then assignment or tracking is
//!   broken and no comparison holds.
//!
//! Invariant: runs are counted by the group written on them when they started, never re-derived, so a
//! changed share or weight does not move past runs.

use super::Arm;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Days after a run's start in which an order counts as its conversion.
pub const WINDOW_DAYS: i64 = 7;
/// Days after a message's send (or its click) in which a conversion is attributed to it.
pub const ATTRIBUTION_DAYS: i64 = 5;
/// The sample size (both groups) at which the confidence sequence is tightest (GrowthBook's default).
pub const TUNING_N: f64 = 5_000.0;
/// Two-sided error of every interval.
const ALPHA: f64 = 0.05;
/// The z of a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;
/// Below this p-value the observed split is flagged as a sample-ratio mismatch.
pub const SRM_P: f64 = 0.001;

/// One event that converts the runs of a flow, as the store looks for it: an exit mark named `event` within
/// `within_secs` of the run's start. `flow` empty: every flow no rule names (runs of flows no longer configured
/// count by the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionRule {
    pub flow: String,
    pub event: String,
    pub within_secs: i64,
}

/// A message a run got, as the store read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Touch {
    /// The step, 0-based as stored.
    pub step: i64,
    /// When it was written to the outbox.
    pub sent: DateTime<Utc>,
    /// Its first tracked click, if any.
    pub clicked: Option<DateTime<Utc>>,
}

/// The event that converted a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    pub at: DateTime<Utc>,
    /// As sent (its `properties` give revenue and currency).
    pub event: Value,
}

/// One run of an experiment as the store read it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub flow: String,
    pub experiment: String,
    pub arm: Arm,
    /// The messages written for it, in any order.
    pub touches: Vec<Touch>,
    /// The first converting event within the window, if any.
    pub conversion: Option<Conversion>,
}

/// One group's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupResult {
    /// `holdout`, `treatment` (an experiment without variants) or the variant's id.
    pub arm: String,
    pub entered: u64,
    /// Runs with at least one message.
    pub messaged: u64,
    /// Runs with at least one tracked click.
    pub clicked: u64,
    pub converted: u64,
    pub conversion_rate: f64,
    /// Wilson 95% interval of the rate, `[low, high]`.
    pub conversion_rate_interval: [f64; 2],
    /// Revenue of its conversions, by currency (`""`: the events named none).
    pub revenue: BTreeMap<String, f64>,
    /// Revenue per run entered, by currency.
    pub revenue_per_run: BTreeMap<String, f64>,
    /// Conversion rate minus the control's; absent on the control and until both have runs.
    pub conversion_uplift: Option<Uplift>,
    /// Revenue per run minus the control's, by currency.
    pub revenue_per_run_uplift: BTreeMap<String, Uplift>,
    /// Incremental revenue over the control: the revenue-per-run uplift times this group's runs, by currency.
    pub incremental_revenue: BTreeMap<String, f64>,
}

/// One step's messages in one group, and the conversions whose last touch they were.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepResult {
    /// 1-based, as `pronto check` counts steps.
    pub step: i64,
    pub arm: String,
    /// Runs this step sent a message to.
    pub messaged: u64,
    /// Of those, runs that clicked a tracked link in it.
    pub clicked: u64,
    pub click_rate: f64,
    /// Conversions whose last touch was this step's message (see the module documentation).
    pub attributed_conversions: u64,
    /// Their revenue, by currency.
    pub attributed_revenue: BTreeMap<String, f64>,
}

/// A group's result minus the control's, for one measure.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Uplift {
    pub difference: f64,
    /// 95% asymptotic confidence sequence of the difference, valid at every look: `[low, high]`.
    pub interval: [f64; 2],
    /// Φ(difference / standard error): a guide, not sequentially corrected.
    pub probability_better: f64,
}

/// The observed split against the configured one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SampleRatio {
    /// Each configured group's share.
    pub expected: BTreeMap<String, f64>,
    /// Each configured group's share of the runs in those groups.
    pub observed: BTreeMap<String, f64>,
    /// Chi-square goodness of fit, groups − 1 degrees of freedom.
    pub p_value: f64,
    /// p < 0.001: assignment or tracking is broken; do not trust the comparison.
    pub mismatch: bool,
}

/// One flow's experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentResult {
    pub flow: String,
    pub experiment: String,
    /// The group the others are compared with: `holdout`, else the first variant.
    pub control: Option<String>,
    /// The control first, then the others in configured order (groups no longer configured last).
    pub groups: Vec<GroupResult>,
    /// Per step and group, in step order.
    pub steps: Vec<StepResult>,
    /// Absent when the flow's experiment is no longer configured or a variant was promoted (the expected
    /// split is then unknown, or changed within the period).
    pub sample_ratio: Option<SampleRatio>,
    /// The latest promotion of a winner, if any.
    pub promoted: Option<super::Promotion>,
    /// What counted as a conversion: these events, within this many hours of a run's start.
    pub conversion_events: Vec<String>,
    pub conversion_window_hours: i64,
}

/// The revenue and currency of a converting event.
fn revenue_of(event: &Value) -> (String, f64) {
    let p = event.get("properties");
    let num = |k: &str| {
        p.and_then(|p| p.get(k)).and_then(|v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    };
    let amount = num("revenue")
        .or_else(|| num("total"))
        .or_else(|| num("value"))
        .unwrap_or(0.0);
    let currency = p
        .and_then(|p| p.get("currency"))
        .and_then(Value::as_str)
        .map(|c| c.trim().to_ascii_uppercase())
        .unwrap_or_default();
    (currency, amount)
}

/// Wilson score interval for `k` successes in `n`.
pub fn wilson(k: u64, n: u64) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

/// Half-width of the 95% asymptotic confidence sequence for an estimate whose variance is `var` after `n`
/// units (both groups): σ = sqrt(var · n) per unit, ρ tuned for [`TUNING_N`].
pub fn sequence_half_width(var: f64, n: f64) -> f64 {
    if n <= 0.0 || var <= 0.0 {
        return 0.0;
    }
    let sigma = (var * n).sqrt();
    let l = -2.0 * ALPHA.ln();
    let rho2 = (l + (l + 1.0).ln()) / TUNING_N;
    let nr = n * rho2;
    sigma * ((2.0 * (nr + 1.0) / (n * n * rho2)) * ((nr + 1.0).sqrt() / ALPHA).ln()).sqrt()
}

/// Standard normal CDF.
fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

fn uplift(difference: f64, var: f64, n: f64) -> Uplift {
    let half = sequence_half_width(var, n);
    let se = var.sqrt();
    Uplift {
        difference,
        interval: [difference - half, difference + half],
        probability_better: if se > 0.0 {
            phi(difference / se)
        } else if difference > 0.0 {
            1.0
        } else if difference < 0.0 {
            0.0
        } else {
            0.5
        },
    }
}

/// P(χ² > x) with `df` degrees of freedom (Abramowitz and Stegun 26.4.4 and 26.4.5, exact for whole df).
pub fn chi2_sf(x: f64, df: u32) -> f64 {
    if x <= 0.0 || df == 0 {
        return 1.0;
    }
    let half = x / 2.0;
    if df.is_multiple_of(2) {
        // e^(-x/2) Σ_{i < df/2} (x/2)^i / i!
        let (mut term, mut sum) = (1.0, 1.0);
        for i in 1..df / 2 {
            term *= half / f64::from(i);
            sum += term;
        }
        ((-half).exp() * sum).min(1.0)
    } else {
        // erfc(sqrt(x/2)) + sqrt(2x/π) e^(-x/2) Σ_{i = 1..(df-1)/2} x^(i-1) / (1·3·…·(2i-1))
        let (mut term, mut sum) = (1.0, 0.0);
        for i in 1..=(df - 1) / 2 {
            if i > 1 {
                term *= x / f64::from(2 * i - 1);
            }
            sum += term;
        }
        let tail = (2.0 * x / std::f64::consts::PI).sqrt() * (-half).exp() * sum;
        (libm::erfc(half.sqrt()) + tail).min(1.0)
    }
}

/// The chi-square test of the observed `counts` of each group against its configured share.
pub fn sample_ratio(counts: &[(String, u64, f64)]) -> SampleRatio {
    let n: u64 = counts.iter().map(|c| c.1).sum();
    let nf = n as f64;
    let chi2: f64 = if n == 0 {
        0.0
    } else {
        counts
            .iter()
            .filter(|c| c.2 > 0.0)
            .map(|(_, k, share)| {
                let e = nf * share;
                (*k as f64 - e).powi(2) / e
            })
            .sum()
    };
    let df = u32::try_from(counts.len().saturating_sub(1)).unwrap_or(u32::MAX);
    let p_value = chi2_sf(chi2, df);
    SampleRatio {
        expected: counts.iter().map(|c| (c.0.clone(), c.2)).collect(),
        observed: counts
            .iter()
            .map(|c| (c.0.clone(), if n == 0 { 0.0 } else { c.1 as f64 / nf }))
            .collect(),
        p_value,
        mismatch: p_value < SRM_P,
    }
}

/// A run's share of its experiment's counts: what it is counted as, kept per run so that when it changes (a
/// message, a click, a conversion) its old share can be taken back and the new one added ([`Counts::add`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub arm: String,
    /// The steps (0-based) that sent it a message, ascending, each once.
    pub messaged: Vec<i64>,
    /// The steps whose message it clicked, ascending, each once.
    pub clicked: Vec<i64>,
    pub conversion: Option<Converted>,
}

/// A run's conversion as counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Converted {
    pub currency: String,
    pub amount: f64,
    /// The step credited by last touch, if any.
    pub step: Option<i64>,
}

impl RunSummary {
    pub fn of(r: &RunOutcome) -> Self {
        let steps = |clicked_only: bool| {
            let mut v: Vec<i64> = r
                .touches
                .iter()
                .filter(|t| !clicked_only || t.clicked.is_some())
                .map(|t| t.step)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        Self {
            arm: r.arm.as_str().to_string(),
            messaged: steps(false),
            clicked: steps(true),
            conversion: r.conversion.as_ref().map(|c| {
                let (currency, amount) = revenue_of(&c.event);
                Converted {
                    currency,
                    amount,
                    step: last_touch(&r.touches, c.at),
                }
            }),
        }
    }
}

/// Revenue of some conversions in one currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Revenue {
    pub conversions: i64,
    pub sum: f64,
    /// Sum of squares (the revenue-per-run variance needs it).
    pub squares: f64,
}

/// One group's counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupCounts {
    pub entered: i64,
    /// Runs with at least one message.
    pub messaged: i64,
    /// Runs with at least one tracked click.
    pub clicked: i64,
    pub converted: i64,
    /// By currency.
    pub revenue: BTreeMap<String, Revenue>,
}

/// One step's counts in one group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepCounts {
    pub messaged: i64,
    pub clicked: i64,
    /// Conversions whose last touch was this step, and their revenue by currency.
    pub revenue: BTreeMap<String, Revenue>,
}

/// An experiment's counts over some runs: additive, so the store keeps them per hour of the runs' start
/// and a report over any whole hours only sums them (see `pronto_store`'s report folding). Entries that fall
/// back to zero are removed, so counts built in any order compare equal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// By group.
    pub groups: BTreeMap<String, GroupCounts>,
    /// By step (0-based), then group.
    pub steps: BTreeMap<i64, BTreeMap<String, StepCounts>>,
}

fn add_revenue(m: &mut BTreeMap<String, Revenue>, currency: &str, amount: f64, sign: i64) {
    let r = m.entry(currency.to_string()).or_default();
    r.conversions += sign;
    r.sum += sign as f64 * amount;
    r.squares += sign as f64 * amount * amount;
    if r.conversions == 0 {
        m.remove(currency);
    }
}

impl Counts {
    /// Adds a run's share (`sign` 1), or takes it back (`sign` -1).
    pub fn add(&mut self, s: &RunSummary, sign: i64) {
        let g = self.groups.entry(s.arm.clone()).or_default();
        g.entered += sign;
        g.messaged += sign * i64::from(!s.messaged.is_empty());
        g.clicked += sign * i64::from(!s.clicked.is_empty());
        if let Some(c) = &s.conversion {
            g.converted += sign;
            add_revenue(&mut g.revenue, &c.currency, c.amount, sign);
        }
        if g.entered == 0 && g.revenue.is_empty() {
            self.groups.remove(&s.arm);
        }
        let credited = s.conversion.as_ref().and_then(|c| c.step);
        let steps: std::collections::BTreeSet<i64> =
            s.messaged.iter().copied().chain(credited).collect();
        for step in steps {
            let per = self.steps.entry(step).or_default();
            let st = per.entry(s.arm.clone()).or_default();
            st.messaged += sign * i64::from(s.messaged.contains(&step));
            st.clicked += sign * i64::from(s.clicked.contains(&step));
            if let Some(c) = s.conversion.as_ref().filter(|c| c.step == Some(step)) {
                add_revenue(&mut st.revenue, &c.currency, c.amount, sign);
            }
            if st.messaged == 0 && st.clicked == 0 && st.revenue.is_empty() {
                per.remove(&s.arm);
            }
            if per.is_empty() {
                self.steps.remove(&step);
            }
        }
    }

    /// Adds other counts (of other hours).
    pub fn merge(&mut self, other: &Counts) {
        for (arm, o) in &other.groups {
            let g = self.groups.entry(arm.clone()).or_default();
            g.entered += o.entered;
            g.messaged += o.messaged;
            g.clicked += o.clicked;
            g.converted += o.converted;
            merge_revenue(&mut g.revenue, &o.revenue);
        }
        for (step, per) in &other.steps {
            for (arm, o) in per {
                let st = self
                    .steps
                    .entry(*step)
                    .or_default()
                    .entry(arm.clone())
                    .or_default();
                st.messaged += o.messaged;
                st.clicked += o.clicked;
                merge_revenue(&mut st.revenue, &o.revenue);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.steps.is_empty()
    }
}

fn merge_revenue(m: &mut BTreeMap<String, Revenue>, other: &BTreeMap<String, Revenue>) {
    for (c, o) in other {
        let r = m.entry(c.clone()).or_default();
        r.conversions += o.conversions;
        r.sum += o.sum;
        r.squares += o.squares;
    }
}

/// Which bucket of counts a run is in: its flow, experiment and the hour it started.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketKey {
    pub flow: String,
    pub experiment: String,
    pub hour: DateTime<Utc>,
}

/// A run re-read after a change: its bucket, the summary it was counted as (none the first time) and the one
/// it is counted as now.
#[derive(Debug, Clone)]
pub struct Recount<K> {
    pub bucket: K,
    pub was: Option<RunSummary>,
    pub now: RunSummary,
}

/// Applies re-read runs to their buckets' counts (those loaded; a bucket not loaded starts empty): each run's
/// old share is taken back and its new one added. Answers the buckets changed.
pub fn recount<K: Ord + Clone>(
    mut buckets: BTreeMap<K, Counts>,
    runs: &[Recount<K>],
) -> BTreeMap<K, Counts> {
    let mut changed = std::collections::BTreeSet::new();
    for r in runs.iter().filter(|r| r.was.as_ref() != Some(&r.now)) {
        let c = buckets.entry(r.bucket.clone()).or_default();
        if let Some(was) = &r.was {
            c.add(was, -1);
        }
        c.add(&r.now, 1);
        changed.insert(r.bucket.clone());
    }
    buckets
        .into_iter()
        .filter(|(k, _)| changed.contains(k))
        .collect()
}

/// The hour a run started in, its bucket's.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp().div_euclid(3600) * 3600, 0).unwrap_or(t)
}

/// The step whose message was the run's last touch before its conversion, if any (see the module docs).
pub fn last_touch(touches: &[Touch], converted: DateTime<Utc>) -> Option<i64> {
    let window = Duration::days(ATTRIBUTION_DAYS);
    let within = |t: DateTime<Utc>| t <= converted && converted - t <= window;
    let click = touches
        .iter()
        .filter_map(|t| t.clicked.filter(|c| within(*c)).map(|c| (c, t.step)))
        .max();
    click
        .or_else(|| {
            touches
                .iter()
                .filter(|t| within(t.sent))
                .map(|t| (t.sent, t.step))
                .max()
        })
        .map(|(_, step)| step)
}

/// Counts the runs of each flow's experiment. `shares` gives the configured groups of a flow's experiment
/// (holdout first, as [`super::Experiment::shares`]) when it is still configured.
pub fn summarize(
    runs: &[RunOutcome],
    shares: impl Fn(&str, &str) -> Option<Vec<(Arm, f64)>>,
) -> Vec<ExperimentResult> {
    results(counts_of(runs), shares)
}

/// The counts of each flow's experiment over `runs`, keyed by flow and experiment.
pub fn counts_of(runs: &[RunOutcome]) -> BTreeMap<(String, String), Counts> {
    let mut by: BTreeMap<(String, String), Counts> = BTreeMap::new();
    for r in runs {
        by.entry((r.flow.clone(), r.experiment.clone()))
            .or_default()
            .add(&RunSummary::of(r), 1);
    }
    by
}

/// The results of each flow's experiment from its counts (see [`summarize`]).
pub fn results(
    counts: BTreeMap<(String, String), Counts>,
    shares: impl Fn(&str, &str) -> Option<Vec<(Arm, f64)>>,
) -> Vec<ExperimentResult> {
    counts
        .into_iter()
        .filter(|(_, c)| !c.is_empty())
        .map(|(key, counts)| {
            let tallies: BTreeMap<Arm, GroupCounts> = counts
                .groups
                .iter()
                .map(|(a, g)| (Arm::parse(a), g.clone()))
                .collect();
            let configured = shares(&key.0, &key.1);
            // The groups in configured order, then any no longer configured.
            let mut order: Vec<Arm> = configured
                .iter()
                .flatten()
                .map(|(a, _)| a.clone())
                .collect();
            for a in tallies.keys() {
                if !order.contains(a) {
                    order.push(a.clone());
                }
            }
            let control = if order.contains(&Arm::Holdout) {
                Some(Arm::Holdout)
            } else {
                order.first().cloned()
            };
            let empty = GroupCounts::default();
            let c = control
                .as_ref()
                .and_then(|a| tallies.get(a))
                .unwrap_or(&empty);
            let groups = order
                .iter()
                .map(|arm| {
                    let x = tallies.get(arm).unwrap_or(&empty);
                    let mut g = group(arm, x);
                    if Some(arm) != control.as_ref() {
                        compare(&mut g, x, c);
                    }
                    g
                })
                .collect();
            let sample_ratio = configured.as_ref().map(|groups| {
                let counts: Vec<(String, u64, f64)> = groups
                    .iter()
                    .map(|(a, share)| {
                        (
                            a.as_str().to_string(),
                            tallies.get(a).map_or(0, |t| count(t.entered)),
                            *share,
                        )
                    })
                    .collect();
                sample_ratio(&counts)
            });
            let mut steps: Vec<((i64, Arm), &StepCounts)> = counts
                .steps
                .iter()
                .flat_map(|(step, per)| per.iter().map(|(a, st)| ((*step, Arm::parse(a)), st)))
                .collect();
            steps.sort_by(|a, b| a.0.cmp(&b.0));
            let steps = steps
                .into_iter()
                .map(|((step, arm), st)| StepResult {
                    step: step + 1,
                    arm: arm.as_str().to_string(),
                    messaged: count(st.messaged),
                    clicked: count(st.clicked),
                    click_rate: if st.messaged <= 0 {
                        0.0
                    } else {
                        st.clicked as f64 / st.messaged as f64
                    },
                    attributed_conversions: count(st.revenue.values().map(|r| r.conversions).sum()),
                    attributed_revenue: st
                        .revenue
                        .iter()
                        .map(|(c, r)| (c.clone(), r.sum))
                        .collect(),
                })
                .collect();
            ExperimentResult {
                flow: key.0,
                experiment: key.1,
                control: control.map(|a| a.as_str().to_string()),
                groups,
                steps,
                sample_ratio,
                promoted: None,
                conversion_events: vec!["Order Completed".into(), "Lead Won".into()],
                conversion_window_hours: WINDOW_DAYS * 24,
            }
        })
        .collect()
}

/// A count as reported (never below zero).
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The variant `rule` promotes in `result`, if any (see [`super::AutoPromote`]): the one with the highest
/// conversion rate among `variants`, when every configured group has at least `min_runs` runs, the split
/// shows no sample-ratio mismatch, and against each other variant its rate is higher with probability at
/// least the rule's and the always-valid 95% interval of the difference is above zero.
pub fn winner(
    result: &ExperimentResult,
    variants: &[String],
    rule: &super::AutoPromote,
) -> Option<String> {
    if result.promoted.is_some() || result.sample_ratio.as_ref().is_none_or(|s| s.mismatch) {
        return None;
    }
    let enough = result.sample_ratio.as_ref().is_some_and(|s| {
        s.expected.keys().all(|arm| {
            result
                .groups
                .iter()
                .any(|g| &g.arm == arm && g.entered >= rule.min_runs)
        })
    });
    if !enough {
        return None;
    }
    let groups: Vec<&GroupResult> = result
        .groups
        .iter()
        .filter(|g| variants.contains(&g.arm))
        .collect();
    let best = groups
        .iter()
        .max_by(|a, b| a.conversion_rate.total_cmp(&b.conversion_rate))?;
    let bar = f64::from(rule.probability_bp) / 10_000.0;
    let beats_all = groups.iter().filter(|g| g.arm != best.arm).all(|g| {
        rate_uplift((best.converted, best.entered), (g.converted, g.entered))
            .is_some_and(|u| u.probability_better >= bar && u.interval[0] > 0.0)
    });
    (beats_all && groups.len() >= 2).then(|| best.arm.clone())
}

/// A group's own figures.
fn group(arm: &Arm, x: &GroupCounts) -> GroupResult {
    let per_run = |s: f64| {
        if x.entered <= 0 {
            0.0
        } else {
            s / x.entered as f64
        }
    };
    GroupResult {
        arm: arm.as_str().to_string(),
        entered: count(x.entered),
        messaged: count(x.messaged),
        clicked: count(x.clicked),
        converted: count(x.converted),
        conversion_rate: per_run(x.converted as f64),
        conversion_rate_interval: wilson(count(x.converted), count(x.entered)),
        revenue: x.revenue.iter().map(|(c, r)| (c.clone(), r.sum)).collect(),
        revenue_per_run: x
            .revenue
            .iter()
            .map(|(c, r)| (c.clone(), per_run(r.sum)))
            .collect(),
        conversion_uplift: None,
        revenue_per_run_uplift: BTreeMap::new(),
        incremental_revenue: BTreeMap::new(),
    }
}

/// The conversion-rate difference of `(converted, entered)` over the control's, with its always-valid interval;
/// `None` until both have runs.
pub fn rate_uplift(group: (u64, u64), control: (u64, u64)) -> Option<Uplift> {
    let ((kt, nt), (kc, nc)) = (group, control);
    if nt == 0 || nc == 0 {
        return None;
    }
    let (pt, pc) = (kt as f64 / nt as f64, kc as f64 / nc as f64);
    let var = pt * (1.0 - pt) / nt as f64 + pc * (1.0 - pc) / nc as f64;
    Some(uplift(pt - pc, var, (nt + nc) as f64))
}

/// Fills `g`'s uplifts over the control `c`, once both have runs.
fn compare(g: &mut GroupResult, t: &GroupCounts, c: &GroupCounts) {
    if t.entered <= 0 || c.entered <= 0 {
        return;
    }
    let n = (t.entered + c.entered) as f64;
    g.conversion_uplift = rate_uplift(
        (count(t.converted), count(t.entered)),
        (count(c.converted), count(c.entered)),
    );
    let currencies: std::collections::BTreeSet<&String> =
        t.revenue.keys().chain(c.revenue.keys()).collect();
    for cur in currencies {
        let moments = |x: &GroupCounts| {
            let Revenue {
                sum: s, squares: q, ..
            } = x.revenue.get(cur).copied().unwrap_or_default();
            let m = s / x.entered as f64;
            // The variance of the mean revenue per run.
            let var = (q / x.entered as f64 - m * m).max(0.0) / x.entered as f64;
            (m, var)
        };
        let ((mt, vt), (mc, vc)) = (moments(t), moments(c));
        let u = uplift(mt - mc, vt + vc, n);
        g.incremental_revenue
            .insert(cur.clone(), u.difference * t.entered as f64);
        g.revenue_per_run_uplift.insert(cur.clone(), u);
    }
}

#[cfg(test)]
mod tests;
