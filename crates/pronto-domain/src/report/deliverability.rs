//! Complaint and bounce rates over a period, from the hourly deliverability counts: overall and per flow,
//! with a warning when complaints pass 0.1% of the mail sent. Gmail and Yahoo ask bulk senders (2024) to keep
//! spam complaints under 0.3% and ideally under 0.1%; past 0.3% mail goes to spam or is refused.

use serde::Serialize;

/// Complaints over this share of the mail sent are warned about.
pub const COMPLAINT_WARNING: f64 = 0.001;
/// Where Gmail and Yahoo start refusing.
pub const COMPLAINT_LIMIT: f64 = 0.003;

/// One flow's mail (or all of it) over the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rates {
    /// The flow; empty: mail no flow sent (acknowledgements, alerts) and bounces not matched to a message.
    pub flow: String,
    /// Emails the SMTP server accepted.
    pub sent: i64,
    pub hard_bounces: i64,
    pub soft_bounces: i64,
    pub complaints: i64,
    /// Bounces over the emails tried (sent, and refused at send time).
    pub bounce_rate: f64,
    /// Complaints over the emails sent.
    pub complaint_rate: f64,
}

/// The period's deliverability.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deliverability {
    pub total: Rates,
    /// Per flow, the flows with the most mail first.
    pub flows: Vec<Rates>,
    /// Set when complaints pass 0.1% of the mail sent (overall or for a flow), saying where.
    pub warning: Option<String>,
}

fn rates(flow: &str, sent: i64, hard: i64, soft: i64, complaints: i64) -> Rates {
    let ratio = |n: i64, d: i64| if d > 0 { n as f64 / d as f64 } else { 0.0 };
    Rates {
        flow: flow.to_string(),
        sent,
        hard_bounces: hard,
        soft_bounces: soft,
        complaints,
        bounce_rate: ratio(hard + soft, sent + hard + soft),
        complaint_rate: ratio(complaints, sent),
    }
}

/// From `(flow, kind, count)` rows (kinds `sent`, `hard`, `soft`, `complaint`).
pub fn summarize(rows: &[(String, String, i64)]) -> Deliverability {
    let mut by: std::collections::BTreeMap<&str, [i64; 4]> = Default::default();
    for (flow, kind, n) in rows {
        let slot = match kind.as_str() {
            "sent" => 0,
            "hard" => 1,
            "soft" => 2,
            "complaint" => 3,
            _ => continue,
        };
        by.entry(flow.as_str()).or_default()[slot] += n;
    }
    let mut all = [0i64; 4];
    let mut flows: Vec<Rates> = by
        .iter()
        .map(|(flow, c)| {
            for i in 0..4 {
                all[i] += c[i];
            }
            rates(flow, c[0], c[1], c[2], c[3])
        })
        .collect();
    flows.sort_by(|a, b| b.sent.cmp(&a.sent).then(a.flow.cmp(&b.flow)));
    let total = rates("", all[0], all[1], all[2], all[3]);
    let over: Vec<String> = std::iter::once(&total)
        .chain(flows.iter().filter(|f| !f.flow.is_empty()))
        .filter(|r| r.complaints > 0 && r.complaint_rate > COMPLAINT_WARNING)
        .map(|r| {
            let who = if std::ptr::eq(r, &total) {
                "all mail".to_string()
            } else {
                format!("flow {}", r.flow)
            };
            format!("{who}: {:.2}% complaints", r.complaint_rate * 100.0)
        })
        .collect();
    let warning = (!over.is_empty()).then(|| {
        format!(
            "complaints over 0.1% of the mail sent ({}); Gmail and Yahoo send mail to spam or refuse it past 0.3%: \
             check who the flows write to (consent, send_to = \"subscribers\") and how often",
            over.join(", ")
        )
    });
    Deliverability {
        total,
        flows,
        warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(flow: &str, kind: &str, n: i64) -> (String, String, i64) {
        (flow.into(), kind.into(), n)
    }

    #[test]
    fn rates_add_up_per_flow_and_overall_and_complaints_past_a_tenth_of_a_percent_are_warned_of() {
        let d = summarize(&[
            row("checkout-recovery", "sent", 9_980),
            row("checkout-recovery", "hard", 15),
            row("checkout-recovery", "soft", 5),
            row("checkout-recovery", "complaint", 5),
            row("win-back", "sent", 1_000),
            row("win-back", "complaint", 2),
            row("", "sent", 20),
            row("", "hard", 1),
            row("other", "unknown-kind", 7),
        ]);
        assert_eq!(
            d.flows.iter().map(|f| f.flow.as_str()).collect::<Vec<_>>(),
            ["checkout-recovery", "win-back", ""],
            "an unknown kind counts for nothing"
        );
        let c = &d.flows[0];
        assert_eq!(
            (c.sent, c.hard_bounces, c.soft_bounces, c.complaints),
            (9_980, 15, 5, 5)
        );
        assert!((c.bounce_rate - 20.0 / 10_000.0).abs() < 1e-12);
        assert!((c.complaint_rate - 5.0 / 9_980.0).abs() < 1e-12);
        assert_eq!(
            (d.total.sent, d.total.hard_bounces, d.total.complaints),
            (11_000, 16, 7)
        );
        // 7 / 11,000 = 0.064% overall: fine; win-back's 2 / 1,000 = 0.2%: warned of, by name.
        let w = d.warning.unwrap();
        assert!(
            w.contains("flow win-back: 0.20% complaints") && !w.contains("all mail"),
            "{w}"
        );
        assert_eq!(
            summarize(&[row("a", "sent", 1_000), row("a", "complaint", 1)]).warning,
            None,
            "0.1% exactly is not over"
        );
        assert_eq!(summarize(&[]), Deliverability::default());
    }
}
