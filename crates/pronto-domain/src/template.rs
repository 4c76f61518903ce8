//! Message templates: minijinja, compiled when the configuration is loaded so that `pronto check` finds every
//! error (syntax, unknown variables or filters) before anything is sent.
//!
//! Each template has a subject, a plain-text body and optionally an HTML body. HTML is autoescaped: a first name
//! of `<script>alert(1)</script>` arrives as text. Undefined variables are errors, not empty strings, so a typo
//! in `{{ contact.frist_name }}` fails the check instead of mailing "Hi ,". Templates are checked by rendering
//! them against [`sample_context`], which has every field a real context has.
//!
//! The context a message is rendered with: `contact` (name, first_name, email, phone, traits), `cart` (from
//! [`cart_context`]: id, products with line totals, total, currency, restore_url), `offer` (code, or none),
//! `recommendations` (up to [`crate::catalog::MAX_RECOMMENDATIONS`] products for the cart, each with
//! product_id, name, url, image_url and price; empty without a catalog), `message` (id, unsubscribe_url).

use crate::ecommerce::Order;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt;

/// `[[template]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    pub name: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// One problem with one part of one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub template: String,
    /// `subject`, `text` or `html`.
    pub part: &'static str,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "template `{}`, {}: {}",
            self.template, self.part, self.message
        )
    }
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Compiled templates.
#[derive(Clone)]
pub struct Templates {
    env: Environment<'static>,
    defs: Vec<TemplateConfig>,
    /// The templates that show `recommendations`: only runs whose messages use them make the store load
    /// the catalog.
    recommending: std::collections::HashSet<String>,
}

const PARTS: [&str; 3] = ["subject", "text", "html"];

fn key(name: &str, part: &str) -> String {
    // The suffix decides escaping (see `compile`).
    format!("{name}.{}", if part == "html" { "html" } else { part })
}

impl Templates {
    /// Compiles every template and renders each against [`sample_context`]; all errors are returned at once.
    pub fn compile(defs: &[TemplateConfig]) -> Result<Self, Vec<TemplateError>> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        // A value that is absent (`contact.first_name` of someone who never gave one) prints nothing, not
        // `none`: "none, your cart is waiting" is worse than ", your cart is waiting" (`or` gives a fallback).
        env.set_formatter(|out, state, value| {
            if value.is_none() {
                Ok(())
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.add_filter("money", money);
        let mut errors = Vec::new();
        for (i, d) in defs.iter().enumerate() {
            if defs[..i].iter().any(|o| o.name == d.name) {
                errors.push(TemplateError {
                    template: d.name.clone(),
                    part: "name",
                    message: "is used by another template".into(),
                });
            }
            let sources = [Some(&d.subject), Some(&d.text), d.html.as_ref()];
            for (part, source) in PARTS.iter().zip(sources) {
                if let Some(src) = source {
                    if let Err(e) = env.add_template_owned(key(&d.name, part), src.clone()) {
                        errors.push(TemplateError {
                            template: d.name.clone(),
                            part,
                            message: describe(&e),
                        });
                    }
                }
            }
        }
        let recommending = defs
            .iter()
            .filter(|d| {
                PARTS.iter().any(|part| {
                    env.get_template(&key(&d.name, part))
                        .is_ok_and(|t| t.undeclared_variables(false).contains("recommendations"))
                })
            })
            .map(|d| d.name.clone())
            .collect();
        let templates = Self {
            env,
            defs: defs.to_vec(),
            recommending,
        };
        if errors.is_empty() {
            let sample = sample_context();
            for d in defs {
                if let Err(e) = templates.render(&d.name, &sample) {
                    errors.push(e);
                }
            }
        }
        if errors.is_empty() {
            Ok(templates)
        } else {
            Err(errors)
        }
    }

    /// Whether template `name` shows `recommendations`.
    pub fn recommends(&self, name: &str) -> bool {
        self.recommending.contains(name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.defs.iter().map(|d| d.name.as_str()).collect()
    }

    pub fn render(&self, name: &str, ctx: &Value) -> Result<Rendered, TemplateError> {
        let Some(def) = self.defs.iter().find(|d| d.name == name) else {
            return Err(TemplateError {
                template: name.into(),
                part: "name",
                message: "no such template".into(),
            });
        };
        let part = |p: &'static str| -> Result<String, TemplateError> {
            self.env
                .get_template(&key(name, p))
                .and_then(|t| t.render(ctx))
                .map_err(|e| TemplateError {
                    template: name.into(),
                    part: p,
                    message: describe(&e),
                })
        };
        Ok(Rendered {
            subject: part("subject")?.trim().to_string(),
            text: part("text")?,
            html: if def.html.is_some() {
                Some(part("html")?)
            } else {
                None
            },
        })
    }
}

fn describe(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!(
            "line {line}: {}",
            e.detail().unwrap_or(&e.kind().to_string())
        ),
        None => e
            .detail()
            .map(str::to_string)
            .unwrap_or_else(|| e.kind().to_string()),
    }
}

/// ISO 4217 minor units that are not 2.
fn minor_units(currency: &str) -> usize {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// `{{ amount | money(currency) }}`: the amount in the currency's minor units with its symbol where one is
/// unambiguous (`€54.50`, `$12.00`, `¥1200`), else the code (`54.50 CHF`).
pub fn money(amount: f64, currency: Option<String>) -> String {
    let code = currency.unwrap_or_default().trim().to_ascii_uppercase();
    let n = format!("{:.*}", minor_units(&code), amount);
    match code.as_str() {
        "USD" => format!("${n}"),
        "EUR" => format!("€{n}"),
        "GBP" => format!("£{n}"),
        "JPY" => format!("¥{n}"),
        "" => n,
        other => format!("{n} {other}"),
    }
}

/// Appends tracking parameters to a link, keeping its own query and fragment. A link that is not an absolute
/// http(s) URL is returned unchanged rather than mangled.
pub fn tracked_link(link: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(link) {
        Ok(mut u) if u.scheme() == "http" || u.scheme() == "https" => {
            u.query_pairs_mut().extend_pairs(params);
            u.to_string()
        }
        _ => link.to_string(),
    }
}

/// The cart as the template sees it, exactly as last seen: each product with name, variant, quantity, unit
/// price, image and line total, the total (the event's `value`/`revenue`/`total`, else the sum of the lines),
/// the currency, and the restore link with `params` appended.
pub fn cart_context(order: &Order, restore_params: &[(&str, &str)]) -> Value {
    let products: Vec<Value> = order
        .products
        .iter()
        .map(|p| {
            let quantity = p.quantity.unwrap_or(1.0);
            // "× 2", not "× 2.0": whole quantities are shown as integers.
            let shown = if quantity.fract() == 0.0 && quantity.abs() < 1e15 { json!(quantity as i64) } else { json!(quantity) };
            json!({
                "product_id": p.product_id, "sku": p.sku, "name": p.name, "variant": p.variant, "brand": p.brand,
                "quantity": shown, "price": p.price, "line_total": p.price.map(|x| x * quantity),
                "image_url": p.image_url, "url": p.url,
            })
        })
        .collect();
    let lines: f64 = order
        .products
        .iter()
        .map(|p| p.price.unwrap_or(0.0) * p.quantity.unwrap_or(1.0))
        .sum();
    json!({
        "id": order.checkout_id.as_ref().or(order.cart_id.as_ref()),
        "products": products,
        "total": order.amount().unwrap_or(lines),
        "currency": order.currency.as_deref().unwrap_or(""),
        "coupon": order.coupon,
        "restore_url": order.checkout_url.as_deref().map(|u| tracked_link(u, restore_params)),
    })
}

/// A context with every field a real one has, for checking templates.
pub fn sample_context() -> Value {
    let order = Order {
        checkout_id: Some("chk_sample".into()),
        currency: Some("EUR".into()),
        value: Some(54.5),
        checkout_url: Some("https://shop.example/checkout/chk_sample".into()),
        products: vec![crate::ecommerce::Product {
            product_id: Some("p1".into()),
            name: Some("Mug".into()),
            variant: Some("blue".into()),
            price: Some(12.25),
            quantity: Some(2.0),
            image_url: Some("https://shop.example/mug.png".into()),
            url: Some("https://shop.example/mug".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut ctx = json!({
        "contact": {"name": "Ann Lee", "first_name": "Ann", "email": "ann@example.com", "phone": "+14155552671", "traits": {}},
        "cart": cart_context(&order, &[("utm_source", "pronto")]),
        "offer": {"code": "FREESHIP"},
        "recommendations": [
            {"product_id": "p2", "name": "Saucer", "url": "https://shop.example/saucer", "image_url": "https://shop.example/saucer.png", "price": 6.5},
            {"product_id": "p3", "name": "Teapot", "url": "https://shop.example/teapot", "image_url": null, "price": 24.0},
        ],
        "message": {"id": "sample", "unsubscribe_url": "https://pronto.example/u/sample"},
    });
    if let (Some(c), Value::Object(lead)) = (ctx.as_object_mut(), sample_fields()) {
        c.extend(lead);
    }
    ctx
}

/// The fields lead templates may use (lead, rep, links, promise, sla, alert, reply), for checking templates
/// at load; [`sample_context`] includes them.
pub fn sample_fields() -> Value {
    json!({
        "lead": {"id": "sample", "name": "Ann Lee", "email": "ann@example.com", "phone": "+14155552671",
                 "company": "Acme", "message": "Please call me", "source": "website", "form": "contact",
                 "fields": {}, "received_at": "2026-11-24T09:00:00Z", "attempted": false,
                 "first_contact_at": null},
        "rep": {"id": "bo", "name": "Bo Diaz", "first_name": "Bo", "email": "bo@example.com", "phone": "+14155550000"},
        "links": {"claim": "https://pronto.example/c/sample", "call": "tel:+14155552671"},
        "promise": {"text": "within 5 minutes", "at": "2026-11-24T09:05:00Z"},
        "sla": {"within": "5 minutes", "deadline_local": "9:05 AM EST", "overdue": false, "overdue_by": ""},
        "alert": {"kind": "new", "reason": ""},
        "reply": {"channel": "sms", "body": "Yes please"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, subject: &str, text: &str, html: Option<&str>) -> TemplateConfig {
        TemplateConfig {
            name: name.into(),
            subject: subject.into(),
            text: text.into(),
            html: html.map(str::to_string),
        }
    }

    const HTML: &str = "<p>Hi {{ contact.first_name }},</p><ul>{% for p in cart.products %}<li><img src=\"{{ p.image_url }}\"> \
{{ p.name }} ({{ p.variant }}) × {{ p.quantity }} at {{ p.price | money(cart.currency) }} = {{ p.line_total | money(cart.currency) }}</li>{% endfor %}</ul>\
<p>Total {{ cart.total | money(cart.currency) }}</p><a href=\"{{ cart.restore_url }}\">Back to your cart</a>";

    #[test]
    fn a_recovery_email_shows_the_cart_exactly_and_escapes_html() {
        let t = Templates::compile(&[def(
            "checkout-reminder",
            "{{ contact.first_name }}, your cart",
            "Total {{ cart.total | money(cart.currency) }}",
            Some(HTML),
        )])
        .unwrap();
        let mut ctx = sample_context();
        ctx["contact"]["first_name"] = json!("<script>alert(1)</script>");
        let r = t.render("checkout-reminder", &ctx).unwrap();
        let html = r.html.unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("Mug (blue) × 2 at €12.25 = €24.50"), "{html}");
        assert!(html.contains("Total €54.50"));
        assert!(
            html.contains(
                "https:&#x2f;&#x2f;shop.example&#x2f;checkout&#x2f;chk_sample?utm_source=pronto"
            ),
            "{html}"
        );
        assert_eq!(
            r.subject, "<script>alert(1)</script>, your cart",
            "subject and text are not HTML"
        );
        assert_eq!(r.text, "Total €54.50");
    }

    #[test]
    fn every_template_error_is_found_at_compile_time_naming_template_and_part() {
        let cases: Vec<(TemplateConfig, &str)> = vec![
            (
                def("a", "{{ contact.name", "t", None),
                "template `a`, subject: line 1",
            ),
            (
                def("b", "s", "{{ contact.frist_name }}", None),
                "template `b`, text:",
            ),
            (
                def("c", "s", "t", Some("{{ cart.total | dollars }}")),
                "template `c`, html:",
            ),
            (
                def("d", "s", "{% for p in cart.products %}", None),
                "template `d`, text: line 1",
            ),
        ];
        for (d, want) in cases {
            let errs = Templates::compile(std::slice::from_ref(&d))
                .err()
                .expect(want);
            let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
            assert!(
                text.iter().any(|t| t.starts_with(want)),
                "{text:?} should start with {want}"
            );
        }
    }

    #[test]
    fn an_absent_value_prints_nothing_and_or_gives_its_fallback() {
        let t = Templates::compile(&[def(
            "t",
            "{{ contact.first_name }}, your cart",
            "Hi {{ contact.first_name or 'there' }}",
            Some("<p>{{ contact.first_name }}</p>"),
        )])
        .unwrap();
        let cases = [
            (json!("Ann"), ("Ann, your cart", "Hi Ann", "<p>Ann</p>")),
            (json!(null), (", your cart", "Hi there", "<p></p>")),
        ];
        for (first_name, (subject, text, html)) in cases {
            let mut ctx = sample_context();
            ctx["contact"]["first_name"] = first_name;
            let r = t.render("t", &ctx).unwrap();
            assert_eq!(
                (r.subject.as_str(), r.text.as_str(), r.html.as_deref()),
                (subject, text, Some(html))
            );
        }
    }

    #[test]
    fn money_uses_the_currencys_minor_units_and_symbol() {
        let cases = [
            (54.5, "EUR", "€54.50"),
            (12.0, "usd", "$12.00"),
            (1200.0, "JPY", "¥1200"),
            (3.5, "KWD", "3.500 KWD"),
            (9.9, "", "9.90"),
        ];
        for (amount, code, want) in cases {
            assert_eq!(money(amount, Some(code.into())), want);
        }
    }

    #[test]
    fn tracking_parameters_keep_the_links_own_query_and_fragment() {
        let cases = [
            (
                "https://shop.example/c/1",
                "https://shop.example/c/1?utm_source=pronto&m=k1",
            ),
            (
                "https://shop.example/c?x=1#top",
                "https://shop.example/c?x=1&utm_source=pronto&m=k1#top",
            ),
            ("not a url", "not a url"),
            ("javascript:alert(1)", "javascript:alert(1)"),
        ];
        for (link, want) in cases {
            assert_eq!(
                tracked_link(link, &[("utm_source", "pronto"), ("m", "k1")]),
                want
            );
        }
    }
}
