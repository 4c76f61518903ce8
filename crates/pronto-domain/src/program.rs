//! The loaded program: the checked flows, the compiled templates and the message settings the engine runs
//! with. One immutable value, swapped whole on a reload, so an ingest or a timer batch always sees one
//! consistent version.
//!
//! Also here: composing a message for a `send` step from a run's snapshot and its contact (pure; the store
//! calls it inside the transaction that writes the outbox row).

use crate::ecommerce::{EcommerceEvent, Order};
use crate::flow::{Channel, Flow, Step};
use crate::template::{cart_context, Rendered, TemplateError, Templates};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// How messages are addressed and limited.
#[derive(Debug, Clone)]
pub struct MessageSettings {
    /// `From:` of every email (`Shop <shop@example.com>`).
    pub from: String,
    /// `Reply-To:`: where a reply reaches a real person.
    pub reply_to: Option<String>,
    /// At most this many flow emails per contact in this window; further sends are skipped, with the reason.
    pub email_cap: Option<(u32, Duration)>,
    /// The public base URL links point at (`https://pronto.example.com`).
    pub public_url: String,
    /// Signs unsubscribe links; generated once per database and kept there.
    pub link_secret: Vec<u8>,
    /// An SMS provider is configured: SMS acknowledgements and alerts are queued.
    pub sms: bool,
    /// Flow messages' links go through the signed, click-recording redirect
    /// ([`crate::message::links::click_url`]).
    pub track_clicks: bool,
    /// How many soft bounces list an address, and for how long.
    pub soft_bounces: crate::suppression::SoftBounces,
}

impl Default for MessageSettings {
    fn default() -> Self {
        Self {
            from: "pronto <pronto@localhost>".into(),
            reply_to: None,
            email_cap: None,
            public_url: "http://127.0.0.1:8080".into(),
            link_secret: Vec::new(),
            sms: false,
            track_clicks: true,
            soft_bounces: crate::suppression::SoftBounces::default(),
        }
    }
}

/// Cloned only to change one part at run time (a promotion), never on a hot path.
#[derive(Clone)]
pub struct Program {
    pub flows: Vec<Flow>,
    pub templates: Templates,
    pub messages: MessageSettings,
    /// Speed to lead: reps, teams, routing, SLA; empty without `[[rep]]`s.
    pub sales: crate::sales::Sales,
    /// Pools of unique codes (`[[offer]]`); a step's `offer` naming none is a literal code.
    pub offers: crate::offer::Offers,
    /// Where marketing needs recorded consent (`[consent]`).
    pub consent: crate::consent::Policy,
}

impl Program {
    /// Whether any `send` step of `flow` shows `recommendations` (so its runs need the catalog loaded).
    pub fn recommends(&self, flow: &Flow) -> bool {
        flow.sends().any(
            |s| matches!(s, Step::Send { template, .. } if self.templates.recommends(template)),
        )
    }

    /// No flows: ingestion stores events and nothing runs.
    pub fn empty() -> Self {
        Self {
            flows: Vec::new(),
            templates: Templates::compile(&crate::sales::builtin_templates())
                .unwrap_or_else(|e| unreachable!("the built-in templates compile: {e:?}")),
            messages: MessageSettings::default(),
            sales: crate::sales::Sales::default(),
            offers: crate::offer::Offers::default(),
            consent: crate::consent::Policy::default(),
        }
    }

    /// Compiles templates and checks flows against them; every problem is returned, each naming the flow, step
    /// and field or the template and part.
    pub fn build(
        flows: &[crate::flow::FlowConfig],
        templates: &[crate::template::TemplateConfig],
        messages: MessageSettings,
    ) -> Result<Self, Vec<String>> {
        let mut errors: Vec<String> = Vec::new();
        // Built-in lead templates, unless the config replaces one by name.
        let mut all: Vec<crate::template::TemplateConfig> = crate::sales::builtin_templates()
            .into_iter()
            .filter(|b| !templates.iter().any(|t| t.name == b.name))
            .collect();
        all.extend(templates.iter().cloned());
        let templates = &all[..];
        let compiled = Templates::compile(templates)
            .map_err(|es| errors.extend(es.iter().map(ToString::to_string)))
            .ok();
        let names: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
        let checked = Flow::check_all(flows, &names)
            .map_err(|es| errors.extend(es.iter().map(ToString::to_string)))
            .ok();
        match (compiled, checked) {
            (Some(templates), Some(flows)) if errors.is_empty() => Ok(Self {
                flows,
                templates,
                messages,
                sales: crate::sales::Sales::default(),
                offers: crate::offer::Offers::default(),
                consent: crate::consent::Policy::default(),
            }),
            _ => Err(errors),
        }
    }

    pub fn flow(&self, id: &str) -> Option<&Flow> {
        self.flows.iter().find(|f| f.id == id)
    }

    /// Promotes `variant` of `flow`'s experiment `experiment`; the error names the problem as
    /// `(field, message)` (no such flow, another experiment running, not a variant).
    pub fn promote(
        &mut self,
        flow: &str,
        experiment: &str,
        variant: &str,
    ) -> Result<(), (&'static str, String)> {
        let f = self
            .flows
            .iter_mut()
            .find(|f| f.id == flow)
            .ok_or(("flow", format!("no flow `{flow}` is configured")))?;
        let e = f
            .experiment
            .as_mut()
            .filter(|e| e.id == experiment)
            .ok_or((
                "experiment",
                format!("flow `{flow}` does not run experiment `{experiment}`"),
            ))?;
        e.promote(variant).map_err(|m| ("variant", m))
    }

    /// Applies recorded promotions, oldest first, so the latest of each experiment wins; one whose flow,
    /// experiment or variant is no longer configured is passed over (a new experiment id starts afresh).
    pub fn apply_promotions(&mut self, promotions: &[crate::experiment::Promotion]) {
        let mut sorted: Vec<&crate::experiment::Promotion> = promotions.iter().collect();
        sorted.sort_by_key(|p| p.promoted_at);
        for p in sorted {
            let _ = self.promote(&p.flow, &p.experiment, &p.variant);
        }
    }

    /// Whether an event of this name starts, refreshes or ends any run (most events do neither, and cost
    /// nothing more than their insert).
    pub fn concerns(&self, name: &str) -> bool {
        self.flows.iter().any(|f| {
            f.triggers.iter().any(|t| t == name) || f.exits.iter().any(|x| x.event == name)
        })
    }
}

/// The contact as a message needs it.
#[derive(Debug, Clone, Default)]
pub struct Recipient {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub traits: Map<String, Value>,
}

impl Recipient {
    /// Why nobody may be sent anything, if so: the contact unsubscribed or is marked do-not-contact (traits
    /// `unsubscribed`, `do_not_contact`, as an identify call or the unsubscribe link sets them).
    pub fn refusal(&self) -> Option<&'static str> {
        let yes = |k: &str| {
            self.traits
                .get(k)
                .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"))
        };
        if yes("do_not_contact") {
            Some("do not contact")
        } else if yes("unsubscribed") {
            Some("unsubscribed")
        } else {
            None
        }
    }
}

/// A message ready for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    pub channel: Channel,
    pub to: String,
    pub rendered: Rendered,
}

/// Why a send or call step produced nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotSent {
    #[error("no email address")]
    NoAddress,
    #[error("no phone number")]
    NoPhone,
    #[error("the contact replied STOP to SMS")]
    SmsOptOut,
    #[error("no lead to call (the trigger has no properties.lead_id and the contact no lead)")]
    NoLead,
    #[error("no {0} channel is configured")]
    NoChannel(&'static str),
    #[error("{0}")]
    Template(TemplateError),
}

/// The cart a snapshot shows, for `cart` in templates: checkouts and orders as they are; a cart view or an
/// added product as a cart with its restore link. `None` for events that are not e-commerce events.
pub fn snapshot_cart(snapshot: &Value) -> Option<Order> {
    let name = snapshot.get("event")?.as_str()?;
    let props = snapshot.get("properties")?.as_object()?;
    let order = match EcommerceEvent::parse(name, props).ok()?? {
        EcommerceEvent::CheckoutStarted(o)
        | EcommerceEvent::CheckoutStepViewed(o)
        | EcommerceEvent::CheckoutStepCompleted(o)
        | EcommerceEvent::PaymentInfoEntered(o)
        | EcommerceEvent::OrderUpdated(o) => o,
        EcommerceEvent::CartViewed(c) => Order {
            cart_id: c.cart_id,
            products: c.products,
            checkout_url: c.cart_url,
            ..Default::default()
        },
        EcommerceEvent::ProductAdded { cart_id, product } => Order {
            cart_id,
            products: vec![product],
            checkout_url: props
                .get("cart_url")
                .and_then(Value::as_str)
                .map(str::to_string),
            currency: props
                .get("currency")
                .and_then(Value::as_str)
                .map(str::to_string),
            ..Default::default()
        },
        _ => return None,
    };
    Some(order)
}

/// What a run's step is rendered about: its snapshot, its contact and, for runs about a lead, the lead (as
/// [`crate::sales::lead_context`] gives it) and its owner.
pub struct Subject<'a> {
    pub snapshot: &'a Value,
    pub to: &'a Recipient,
    pub lead: Option<&'a Value>,
    pub rep: Option<&'a crate::sales::Rep>,
    /// The outbox key (tracking links carry it).
    pub message_id: &'a str,
    /// Wraps a link the message shows in its tracked redirect ([`crate::message::links::click_url`] for this
    /// message); `None`: links as they are.
    pub tracking: Option<&'a dyn Fn(&str) -> String>,
    /// The offer code this message shows (`offer.code`): a pool's unused code or a literal one, as
    /// [`crate::offer::Offers::pick`] chose it; `None`: no code.
    pub offer: Option<&'a str>,
    /// The contact's signed opt-out link.
    pub unsubscribe_url: &'a str,
    /// The products to show beside the cart ([`crate::catalog::recommend`]); empty when the flow's templates
    /// show none or the shop has no catalog.
    pub recommendations: &'a [&'a crate::catalog::Product],
    /// The shop's catalog as loaded for the cart (flows whose templates show recommendations): cart lines
    /// without an image or link take their products' ([`crate::catalog::complete`]).
    pub catalog: Option<&'a crate::catalog::Related>,
}

/// Why no SMS can go to `to` at all, if so: no provider, the contact texted STOP, or no phone. (A step the
/// quiet hours would defer is skipped at once for these, rather than holding the steps after it.)
pub fn sms_refusal(program: &Program, to: &Recipient) -> Option<NotSent> {
    if !program.messages.sms {
        Some(NotSent::NoChannel("sms"))
    } else if crate::sales::sms_opted_out(&to.traits) {
        Some(NotSent::SmsOptOut)
    } else if to.phone.is_none() {
        Some(NotSent::NoPhone)
    } else {
        None
    }
}

/// Carriers expect every marketing text to say how to stop them; added when the template does not.
const SMS_OPT_OUT_NOTE: &str = "Reply STOP to opt out.";

/// Renders step `step` of `flow` (a `send`) for a run in `arm` (its variant's version of the step, if any).
pub fn compose(
    program: &Program,
    flow: &Flow,
    step: usize,
    arm: Option<&crate::experiment::Arm>,
    subject: &Subject<'_>,
) -> Result<Composed, NotSent> {
    let Some(Step::Send {
        channel, template, ..
    }) = flow.step(step, arm)
    else {
        return Err(NotSent::NoChannel("send"));
    };
    let to = subject.to;
    let address = match channel {
        Channel::Email => to.email.clone().ok_or(NotSent::NoAddress)?,
        Channel::Sms => match sms_refusal(program, to) {
            Some(why) => return Err(why),
            None => to.phone.clone().unwrap_or_default(),
        },
        Channel::Webhook => return Err(NotSent::NoChannel("webhook")),
    };
    let medium = match channel {
        Channel::Sms => "sms",
        _ => "email",
    };
    let ctx = context(program, flow, subject, medium, subject.offer);
    let mut rendered = program
        .templates
        .render(template, &ctx)
        .map_err(NotSent::Template)?;
    if *channel == Channel::Sms && !rendered.text.to_ascii_uppercase().contains("STOP") {
        rendered.text = format!("{} {SMS_OPT_OUT_NOTE}", rendered.text.trim_end());
    }
    Ok(Composed {
        channel: *channel,
        to: address,
        rendered,
    })
}

/// A call task as a `call` step opens it: the template's subject is its title, its text the script.
#[derive(Debug, Clone, PartialEq)]
pub struct CallTask {
    pub title: String,
    pub script: String,
}

/// Renders step `step` of `flow` (a `call`) for a run about a lead.
pub fn compose_call(
    program: &Program,
    flow: &Flow,
    step: usize,
    subject: &Subject<'_>,
) -> Result<CallTask, NotSent> {
    let Some(Step::Call { script }) = flow.steps.get(step) else {
        return Err(NotSent::NoChannel("call"));
    };
    if subject.lead.is_none() {
        return Err(NotSent::NoLead);
    }
    let ctx = context(program, flow, subject, "call", None);
    let rendered = program
        .templates
        .render(script, &ctx)
        .map_err(NotSent::Template)?;
    Ok(CallTask {
        title: rendered.subject,
        script: rendered.text,
    })
}

/// The template context of a run's step (see the `template` module for its shape).
fn context(
    program: &Program,
    flow: &Flow,
    subject: &Subject<'_>,
    medium: &str,
    offer: Option<&str>,
) -> Value {
    let params = [
        ("utm_source", "pronto"),
        ("utm_medium", medium),
        ("utm_campaign", flow.id.as_str()),
        ("pronto_message", subject.message_id),
    ];
    let cart = snapshot_cart(subject.snapshot)
        .map(|mut o| {
            if let Some(c) = subject.catalog {
                crate::catalog::complete(&mut o.products, c);
            }
            cart_context(&o, &params)
        })
        .unwrap_or_else(|| json!({"id": null, "products": [], "total": 0, "currency": "", "coupon": null, "restore_url": null}));
    let to = subject.to;
    let traits = &to.traits;
    let text = |k: &str| traits.get(k).and_then(Value::as_str).map(str::to_string);
    let first = text("first_name")
        .or_else(|| text("firstName"))
        .or_else(|| text("name").and_then(|n| n.split_whitespace().next().map(str::to_string)));
    let name =
        text("name").or_else(
            || match (&first, text("last_name").or_else(|| text("lastName"))) {
                (Some(f), Some(l)) => Some(format!("{f} {l}")),
                (f, _) => f.clone(),
            },
        );
    let mut ctx = crate::template::sample_fields();
    let lead = subject.lead.cloned().unwrap_or_else(|| {
        let mut none = ctx["lead"].clone();
        if let Some(o) = none.as_object_mut() {
            o.values_mut().for_each(|v| *v = Value::Null);
        }
        none
    });
    let call = lead
        .get("phone")
        .and_then(Value::as_str)
        .map(|p| format!("tel:{p}"));
    let extra = json!({
        "contact": {"name": name, "first_name": first, "email": to.email, "phone": to.phone, "traits": traits},
        "cart": cart,
        "offer": {"code": offer},
        "recommendations": subject.recommendations.iter().map(|p| p.context(&params)).collect::<Vec<_>>(),
        "message": {"id": subject.message_id, "unsubscribe_url": subject.unsubscribe_url},
        "lead": lead,
        "rep": subject.rep.map_or_else(crate::sales::Rep::no_context, crate::sales::Rep::context),
        "links": {"claim": "", "call": call},
        // Lead-alert fields a flow's message has no value for (present so one template set checks for all).
        "promise": {"text": "", "at": null},
        "sla": {"within": "", "deadline_local": ""},
        "alert": {"kind": "", "reason": ""},
        "reply": {"channel": "", "body": ""},
    });
    if let (Some(c), Value::Object(e)) = (ctx.as_object_mut(), extra) {
        c.extend(e);
    }
    if let Some(track) = subject.tracking.filter(|_| program.messages.track_clicks) {
        track_links(&mut ctx, track);
    }
    ctx
}

/// Puts the links a flow message shows (the cart's restore link, its products' and the recommendations'
/// pages) through `track`; the unsubscribe link stays as it is (a click on it must not count as interest).
fn track_links(ctx: &mut Value, track: &dyn Fn(&str) -> String) {
    let wrap = |v: Option<&mut Value>| {
        if let Some(v) = v {
            if let Some(u) = v.as_str() {
                *v = Value::String(track(u));
            }
        }
    };
    wrap(ctx.pointer_mut("/cart/restore_url"));
    for list in ["/cart/products", "/recommendations"] {
        if let Some(Value::Array(items)) = ctx.pointer_mut(list) {
            for p in items {
                wrap(p.get_mut("url"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowConfig;
    use crate::template::TemplateConfig;

    fn program(sms: bool) -> Program {
        let flow: FlowConfig = toml::from_str(
            r#"
id = "cadence"
trigger = { event = "Lead Submitted" }
key = "properties.lead_id"
[[step]]
send = { channel = "sms", template = "text" }
[[step]]
send = { channel = "sms", template = "text-with-stop" }
[[step]]
call = { script = "script" }
"#,
        )
        .unwrap();
        let t = |name: &str, subject: &str, text: &str| TemplateConfig {
            name: name.into(),
            subject: subject.into(),
            text: text.into(),
            html: None,
        };
        let templates = [
            t(
                "text",
                "-",
                "Hi {{ lead.name }}, {{ rep.first_name }} here.",
            ),
            t("text-with-stop", "-", "Text STOP to end these."),
            t(
                "script",
                "Call {{ lead.name }}",
                "Ask about {{ lead.message }}",
            ),
        ];
        let messages = MessageSettings {
            sms,
            ..Default::default()
        };
        Program::build(&[flow], &templates, messages).unwrap()
    }

    fn rep() -> crate::sales::Rep {
        crate::sales::Rep {
            id: "ann".into(),
            name: "Ann Archer".into(),
            email: None,
            phone: None,
            webhook: None,
            timezone: crate::sales::Tz::UTC,
            hours: None,
            capacity: None,
            alerts: vec![],
            away: false,
        }
    }

    #[test]
    fn an_sms_step_goes_to_the_contacts_phone_with_a_stop_note_unless_it_cannot() {
        let lead = json!({"id": "l1", "name": "Lee", "message": "40 chairs"});
        let traits = |opted_out: bool| {
            let mut m = Map::new();
            if opted_out {
                m.insert("sms_opt_out".into(), json!(true));
            }
            m
        };
        let phone = Some("+12125550123".to_string());
        // (provider configured, phone, opted out, step, expected text or refusal)
        type Case = (
            bool,
            Option<String>,
            bool,
            usize,
            Result<&'static str, NotSent>,
        );
        let cases: [Case; 5] = [
            (
                true,
                phone.clone(),
                false,
                0,
                Ok("Hi Lee, Ann here. Reply STOP to opt out."),
            ),
            (true, phone.clone(), false, 1, Ok("Text STOP to end these.")),
            (true, phone.clone(), true, 0, Err(NotSent::SmsOptOut)),
            (true, None, false, 0, Err(NotSent::NoPhone)),
            (
                false,
                phone.clone(),
                false,
                0,
                Err(NotSent::NoChannel("sms")),
            ),
        ];
        let snapshot = json!({"event": "Lead Submitted", "properties": {"lead_id": "l1"}});
        let ann = rep();
        for (sms, phone, out, step, want) in cases {
            let p = program(sms);
            let to = Recipient {
                email: None,
                phone: phone.clone(),
                traits: traits(out),
            };
            let subject = Subject {
                snapshot: &snapshot,
                to: &to,
                lead: Some(&lead),
                rep: Some(&ann),
                message_id: "m1",
                tracking: None,
                offer: None,
                unsubscribe_url: "u",
                recommendations: &[],
                catalog: None,
            };
            let got = compose(&p, &p.flows[0], step, None, &subject).map(|c| {
                assert_eq!(c.channel, Channel::Sms);
                assert_eq!(c.to, "+12125550123");
                c.rendered.text
            });
            assert_eq!(
                got,
                want.map(str::to_string),
                "sms={sms} phone={phone:?} out={out} step={step}"
            );
        }
    }

    #[test]
    fn a_call_step_renders_its_script_for_the_lead_and_needs_one() {
        let p = program(false);
        let to = Recipient::default();
        let snapshot = json!({});
        let lead = json!({"id": "l1", "name": "Lee", "message": "40 chairs"});
        let mut subject = Subject {
            snapshot: &snapshot,
            to: &to,
            lead: Some(&lead),
            rep: None,
            message_id: "m1",
            tracking: None,
            offer: None,
            unsubscribe_url: "u",
            recommendations: &[],
            catalog: None,
        };
        assert_eq!(
            compose_call(&p, &p.flows[0], 2, &subject),
            Ok(CallTask {
                title: "Call Lee".into(),
                script: "Ask about 40 chairs".into()
            })
        );
        subject.lead = None;
        assert_eq!(
            compose_call(&p, &p.flows[0], 2, &subject),
            Err(NotSent::NoLead)
        );
    }
}
