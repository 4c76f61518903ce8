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
use serde::Serialize;
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

#[derive(Default)]
struct Tally {
    entered: u64,
    messaged: u64,
    clicked: u64,
    converted: u64,
    /// Per currency: sum and sum of squares of revenue per run (runs without a conversion count as 0).
    revenue: BTreeMap<String, (f64, f64)>,
}

#[derive(Default)]
struct StepTally {
    messaged: u64,
    clicked: u64,
    conversions: u64,
    revenue: BTreeMap<String, f64>,
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
    type Key = (String, String);
    let mut by: BTreeMap<Key, BTreeMap<Arm, Tally>> = BTreeMap::new();
    let mut steps: BTreeMap<Key, BTreeMap<(i64, Arm), StepTally>> = BTreeMap::new();
    for r in runs {
        let key = (r.flow.clone(), r.experiment.clone());
        let t = by
            .entry(key.clone())
            .or_default()
            .entry(r.arm.clone())
            .or_default();
        t.entered += 1;
        t.messaged += u64::from(!r.touches.is_empty());
        t.clicked += u64::from(r.touches.iter().any(|x| x.clicked.is_some()));
        let credited = r
            .conversion
            .as_ref()
            .and_then(|c| last_touch(&r.touches, c.at));
        let revenue = r.conversion.as_ref().map(|c| revenue_of(&c.event));
        if let Some((currency, amount)) = &revenue {
            t.converted += 1;
            let s = t.revenue.entry(currency.clone()).or_default();
            s.0 += amount;
            s.1 += amount * amount;
        }
        let per_step = steps.entry(key).or_default();
        let mut seen: Vec<i64> = Vec::new();
        for x in &r.touches {
            // A step counts a run once, however many messages it wrote (a refreshed run re-sends nothing, but
            // a row from a later version might).
            if seen.contains(&x.step) {
                continue;
            }
            seen.push(x.step);
            let st = per_step.entry((x.step, r.arm.clone())).or_default();
            st.messaged += 1;
            st.clicked += u64::from(
                r.touches
                    .iter()
                    .any(|y| y.step == x.step && y.clicked.is_some()),
            );
        }
        if let (Some(step), Some((currency, amount))) = (credited, revenue) {
            let st = per_step.entry((step, r.arm.clone())).or_default();
            st.conversions += 1;
            *st.revenue.entry(currency).or_default() += amount;
        }
    }
    by.into_iter()
        .map(|(key, tallies)| {
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
            let empty = Tally::default();
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
                            tallies.get(a).map_or(0, |t| t.entered),
                            *share,
                        )
                    })
                    .collect();
                sample_ratio(&counts)
            });
            let steps = steps
                .remove(&key)
                .unwrap_or_default()
                .into_iter()
                .map(|((step, arm), st)| StepResult {
                    step: step + 1,
                    arm: arm.as_str().to_string(),
                    messaged: st.messaged,
                    clicked: st.clicked,
                    click_rate: if st.messaged == 0 {
                        0.0
                    } else {
                        st.clicked as f64 / st.messaged as f64
                    },
                    attributed_conversions: st.conversions,
                    attributed_revenue: st.revenue,
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

/// A group's own figures.
fn group(arm: &Arm, x: &Tally) -> GroupResult {
    let per_run = |s: f64| {
        if x.entered == 0 {
            0.0
        } else {
            s / x.entered as f64
        }
    };
    GroupResult {
        arm: arm.as_str().to_string(),
        entered: x.entered,
        messaged: x.messaged,
        clicked: x.clicked,
        converted: x.converted,
        conversion_rate: per_run(x.converted as f64),
        conversion_rate_interval: wilson(x.converted, x.entered),
        revenue: x
            .revenue
            .iter()
            .map(|(c, (s, _))| (c.clone(), *s))
            .collect(),
        revenue_per_run: x
            .revenue
            .iter()
            .map(|(c, (s, _))| (c.clone(), per_run(*s)))
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
fn compare(g: &mut GroupResult, t: &Tally, c: &Tally) {
    if t.entered == 0 || c.entered == 0 {
        return;
    }
    let n = (t.entered + c.entered) as f64;
    g.conversion_uplift = rate_uplift((t.converted, t.entered), (c.converted, c.entered));
    let currencies: std::collections::BTreeSet<&String> =
        t.revenue.keys().chain(c.revenue.keys()).collect();
    for cur in currencies {
        let moments = |x: &Tally| {
            let (s, q) = x.revenue.get(cur).copied().unwrap_or_default();
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
