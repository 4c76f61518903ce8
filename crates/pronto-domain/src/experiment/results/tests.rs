//! Reference values for the intervals and the split test, and table cases for the counting.

use super::*;
use serde_json::json;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn wilson_intervals_match_the_published_values() {
    // Wilson (1927) intervals as tabulated by Newcombe (1998), "Two-sided confidence intervals for the single
    // proportion", Table I: 81/263 → 0.2553-0.3662; 15/148 → 0.0624-0.1605; 0/20 → 0-0.1611; 1/29 → 0.0061-0.1718.
    let cases = [
        (81, 263, [0.2553, 0.3662]),
        (15, 148, [0.0624, 0.1605]),
        (0, 20, [0.0, 0.1611]),
        (1, 29, [0.0061, 0.1718]),
    ];
    for (k, n, want) in cases {
        let got = wilson(k, n);
        assert!(
            close(got[0], want[0], 5e-4) && close(got[1], want[1], 5e-4),
            "{k}/{n}: {got:?}"
        );
    }
    assert_eq!(wilson(0, 0), [0.0, 1.0], "no runs: nothing is known");
}

#[test]
fn the_split_test_is_chi_square_with_one_degree_of_freedom() {
    let cases = [
        // (holdout, total, expected share, p, mismatch)
        (1_000, 10_000, 0.1, 1.0, false),
        // χ² = 0.9 + 0.1 = 1: P(χ²₁ > 1) = 0.3173.
        (1_030, 10_000, 0.1, 0.3173, false),
        // χ² = 40 + 4.44: far below 0.001.
        (1_200, 10_000, 0.1, 2.6e-11, true),
        (0, 0, 0.1, 1.0, false),
    ];
    for (h, n, share, p, mismatch) in cases {
        let s = sample_ratio(h, n, share);
        assert!(
            close(s.p_value, p, p * 0.01 + 1e-4),
            "{h}/{n}: {}",
            s.p_value
        );
        assert_eq!(s.mismatch, mismatch, "{h}/{n}");
    }
}

#[test]
fn the_confidence_sequence_is_wider_than_a_fixed_interval_and_narrows_with_more_runs() {
    // A conversion-rate difference of two groups of n/2 at 10%: var = 2 · 0.09 / (n/2).
    let mut last = f64::INFINITY;
    for n in [100.0, 1_000.0, 5_000.0, 50_000.0, 1_000_000.0] {
        let var = 2.0 * 0.09 / (n / 2.0);
        let half = sequence_half_width(var, n);
        let fixed = Z95 * var.sqrt();
        assert!(half > fixed, "n={n}: {half} vs fixed {fixed}");
        // The price of peeking stays moderate where the sequence is tuned.
        if n == TUNING_N {
            assert!(half / fixed < 1.6, "{}", half / fixed);
        }
        assert!(half < last, "n={n}: narrows");
        last = half;
    }
    assert_eq!(sequence_half_width(0.0, 10.0), 0.0);
}

fn run(flow: &str, arm: Arm, messaged: bool, order: Option<Value>) -> RunOutcome {
    RunOutcome {
        flow: flow.into(),
        experiment: "e1".into(),
        arm,
        messaged,
        conversion: order,
    }
}

fn order(total: f64, currency: &str) -> Option<Value> {
    Some(json!({"event": "Order Completed", "properties": {"total": total, "currency": currency}}))
}

#[test]
fn runs_are_counted_by_group_with_revenue_per_currency_and_incremental_revenue() {
    let mut runs = Vec::new();
    // Treatment: 8 runs, all messaged, 4 bought for 50 EUR each, one for 20 USD.
    for i in 0..8 {
        let o = match i {
            0..=3 => order(50.0, "eur"),
            4 => order(20.0, "USD"),
            _ => None,
        };
        runs.push(run("checkout-recovery", Arm::Treatment, true, o));
    }
    // Holdout: 2 runs, never messaged, one bought for 50 EUR.
    runs.push(run(
        "checkout-recovery",
        Arm::Holdout,
        false,
        order(50.0, "EUR"),
    ));
    runs.push(run("checkout-recovery", Arm::Holdout, false, None));
    let got = summarize(&runs, |flow, exp| {
        (flow == "checkout-recovery" && exp == "e1").then_some(0.2)
    });
    assert_eq!(got.len(), 1);
    let r = &got[0];
    let [t, h] = [&r.groups[0], &r.groups[1]];
    assert_eq!(
        (t.arm.as_str(), t.entered, t.messaged, t.converted),
        ("treatment", 8, 8, 5)
    );
    assert_eq!(
        (h.arm.as_str(), h.entered, h.messaged, h.converted),
        ("holdout", 2, 0, 1)
    );
    assert_eq!(
        t.revenue["EUR"], 200.0,
        "currencies are kept apart, upper-cased"
    );
    assert_eq!(t.revenue["USD"], 20.0);
    assert_eq!(t.revenue_per_run["EUR"], 25.0);
    assert_eq!(h.revenue_per_run["EUR"], 25.0);
    let u = r.conversion_uplift.as_ref().unwrap();
    assert!(close(u.difference, 5.0 / 8.0 - 0.5, 1e-12));
    assert!(u.interval[0] < u.difference && u.difference < u.interval[1]);
    assert_eq!(
        r.revenue_per_run_uplift["EUR"].difference, 0.0,
        "25 a run in both groups"
    );
    assert_eq!(r.incremental_revenue["EUR"], 0.0);
    assert_eq!(
        r.incremental_revenue["USD"], 20.0,
        "2.5 more a run over 8 treated runs"
    );
    let srm = r.sample_ratio.as_ref().unwrap();
    assert_eq!(srm.observed_holdout_share, 0.2);
    assert!(!srm.mismatch);
}

#[test]
fn a_clear_effect_with_many_runs_excludes_zero_and_is_probably_better() {
    let mut runs = Vec::new();
    for i in 0..20_000 {
        let arm = if i % 10 == 0 {
            Arm::Holdout
        } else {
            Arm::Treatment
        };
        // Treatment converts 12%, holdout 8%.
        let bought = match arm {
            Arm::Treatment => i % 100 < 12,
            Arm::Holdout => (i / 10) % 25 < 2,
        };
        runs.push(run(
            "f",
            arm,
            arm == Arm::Treatment,
            bought.then(|| json!({"properties": {"value": 10}})),
        ));
    }
    let r = &summarize(&runs, |_, _| Some(0.1))[0];
    let u = r.conversion_uplift.as_ref().unwrap();
    assert!(u.interval[0] > 0.0, "{u:?} {:?}", r.groups);
    assert!(u.probability_better > 0.99, "{u:?}");
    assert!(
        r.incremental_revenue[""] > 0.0,
        "events without a currency are kept under \"\""
    );
}

#[test]
fn no_holdout_runs_yet_means_no_comparison_and_an_unconfigured_experiment_no_split_test() {
    let runs = vec![run("f", Arm::Treatment, true, None)];
    let r = &summarize(&runs, |_, _| None)[0];
    assert!(r.conversion_uplift.is_none());
    assert!(r.revenue_per_run_uplift.is_empty());
    assert!(r.sample_ratio.is_none());
}
