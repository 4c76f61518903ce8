//! Speed to lead, the service layer: reps' status, claims and contact attempts, inbound replies and STOP,
//! and the speed-to-lead report. Each lead action becomes an event on the lead's contact (`Lead Claimed`,
//! `Lead Won`, `Lead Replied`, …) committed through the group commit with the action attached, so the
//! store applies the action and the flows' exits in the same transaction.

use crate::error::ApiError;
use crate::service::Service;
use chrono::{DateTime, Utc};
use pronto_domain::report::{ReportLead, SpeedReport};
use pronto_domain::sales::{Outcome, ATTEMPT_CHANNELS, LEAD_CLAIMED, LEAD_REPLIED};
use pronto_domain::{EventType, Identity, Invalid, LeadId, NewEvent, WorkspaceId};
use pronto_store::{IngestItem, LeadAction, LeadState, LeadView};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

/// A rep as configured, with its live state.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepView {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Whether alerts also go to a Slack-compatible webhook (the URL itself is a secret).
    pub webhook: bool,
    pub timezone: String,
    /// `09:00-17:00 mon,tue,…`; absent: always on duty.
    pub hours: Option<String>,
    pub capacity: Option<u32>,
    /// Channels alerts go to.
    pub alerts: Vec<String>,
    pub away: bool,
    pub on_duty: bool,
    /// Leads it owns that are not won or lost.
    pub open_leads: i64,
    /// Teams it belongs to.
    pub teams: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamView {
    pub id: String,
    pub members: Vec<String>,
    pub manager: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RepList {
    pub reps: Vec<RepView>,
    pub teams: Vec<TeamView>,
}

/// `POST /v1/leads/{id}/attempts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttemptRequest {
    /// The rep who made it (a configured rep id).
    pub rep: Option<String>,
    /// call, email or sms.
    pub channel: String,
    /// reached, no_answer, voicemail, won, lost, not_interested.
    pub outcome: String,
    pub note: Option<String>,
    /// When it happened (default now); RFC 3339.
    pub at: Option<DateTime<Utc>>,
    /// With a `won` outcome: what the win is worth (recorded on the `Lead Won` event as `value`; the
    /// speed-to-lead report sums it per bucket and rep, the flows report counts it as a cadence's revenue).
    pub value: Option<f64>,
    /// The value's ISO 4217 currency (`EUR`), with `value`.
    pub currency: Option<String>,
}

pub use pronto_domain::report::{Group, SpeedToLead};

/// A rep's task queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<TaskItem>,
}

/// A task with what the rep needs to act on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskItem {
    /// id, kind (`call`), title, script, due_at, created_at, done_at, done_by, outcome, flow, step, rep (the
    /// lead's owner now) and lead (id, name, email, phone, company, status).
    #[serde(flatten)]
    pub task: pronto_store::Task,
    /// Open and past its due time (a call task is due the moment the cadence opens it: call now).
    pub overdue: bool,
    /// `tel:` link to the lead's phone.
    pub call_url: Option<String>,
    /// The lead's history; log the call with `POST {lead_url}/attempts`, which closes the task.
    pub lead_url: String,
}

/// A `track` event named `name` for the contact owning `identities`, as lead actions record them.
fn track(name: &str, identities: Vec<Identity>, properties: Map<String, Value>) -> NewEvent {
    NewEvent {
        message_id: None,
        dedupe_scope: None,
        request_hash: None,
        kind: EventType::Track,
        name: Some(name.to_string()),
        user_id: None,
        anonymous_id: None,
        identities,
        traits: Map::new(),
        payload: json!({"type": "track", "event": name, "properties": properties}),
        properties,
        timestamp: None,
    }
}

/// One page of leads, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadPage {
    pub leads: Vec<LeadState>,
    /// Pass as `before` for the next, older page; absent on the last page.
    #[schema(format = Uuid)]
    pub next_before: Option<String>,
}

/// What `GET /v1/leads` was asked for, as written (each field checked by [`Service::leads`]).
#[derive(Debug, Default)]
pub struct LeadListing<'a> {
    pub status: Option<&'a str>,
    pub owner: Option<&'a str>,
    pub team: Option<&'a str>,
    pub before: Option<&'a str>,
    pub limit: u32,
}

impl Service {
    fn sales(&self) -> std::sync::Arc<pronto_domain::program::Program> {
        self.store.shared().program()
    }

    /// Every configured rep with its live state, and the teams.
    pub async fn reps(&self, ws: WorkspaceId) -> Result<RepList, ApiError> {
        let program = self.sales();
        let sales = &program.sales;
        let ids: Vec<String> = sales.reps.iter().map(|r| r.id.clone()).collect();
        let status = self.store.rep_status(ws, &ids).await?;
        let now = self.clock.now();
        let reps = sales
            .reps
            .iter()
            .map(|r| {
                let away = status
                    .away
                    .iter()
                    .find(|(id, _)| *id == r.id)
                    .map(|(_, a)| *a)
                    .unwrap_or(r.away);
                RepView {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    email: r.email.clone(),
                    phone: r.phone.clone(),
                    webhook: r.webhook.is_some(),
                    timezone: r.timezone.name().to_string(),
                    hours: r.hours.map(|h| {
                        let days: Vec<String> = [
                            chrono::Weekday::Mon,
                            chrono::Weekday::Tue,
                            chrono::Weekday::Wed,
                            chrono::Weekday::Thu,
                            chrono::Weekday::Fri,
                            chrono::Weekday::Sat,
                            chrono::Weekday::Sun,
                        ]
                        .into_iter()
                        .filter(|d| h.days.contains(*d))
                        .map(|d| d.to_string().to_lowercase())
                        .collect();
                        format!(
                            "{}-{} {}",
                            h.start.format("%H:%M"),
                            h.end.format("%H:%M"),
                            days.join(",")
                        )
                    }),
                    capacity: r.capacity,
                    alerts: r.alerts.iter().map(|a| a.as_str().to_string()).collect(),
                    away,
                    on_duty: !away && r.on_duty(now),
                    open_leads: status
                        .open
                        .iter()
                        .find(|(id, _)| *id == r.id)
                        .map(|(_, n)| *n)
                        .unwrap_or(0),
                    teams: sales
                        .teams
                        .iter()
                        .filter(|t| t.members.iter().any(|(m, _)| *m == r.id))
                        .map(|t| t.id.clone())
                        .collect(),
                }
            })
            .collect();
        let teams = sales
            .teams
            .iter()
            .map(|t| TeamView {
                id: t.id.clone(),
                members: t.members.iter().map(|(m, _)| m.clone()).collect(),
                manager: t.manager.clone(),
            })
            .collect();
        Ok(RepList { reps, teams })
    }

    /// Sets a rep's away flag: routing skips an away rep from the next lead on.
    pub async fn set_away(&self, ws: WorkspaceId, rep: &str, away: bool) -> Result<(), ApiError> {
        if self.sales().sales.rep(rep).is_none() {
            return Err(ApiError::NotFound("rep"));
        }
        self.store.set_away(ws, rep, away, self.clock.now()).await?;
        Ok(())
    }

    /// A rep's task queue (every rep's without `rep`): open tasks, or all with `all`, earliest due first.
    pub async fn tasks(
        &self,
        ws: WorkspaceId,
        rep: Option<&str>,
        all: bool,
    ) -> Result<TaskList, ApiError> {
        if let Some(r) = rep {
            if self.sales().sales.rep(r).is_none() {
                return Err(Invalid::one("rep", format!("no rep `{r}` is configured")).into());
            }
        }
        let now = self.clock.now();
        let tasks = self
            .store
            .tasks(ws, rep, !all)
            .await?
            .into_iter()
            .map(|task| TaskItem {
                overdue: task.done_at.is_none() && task.due_at <= now,
                call_url: task.lead.phone.as_ref().map(|p| format!("tel:{p}")),
                lead_url: format!("/v1/leads/{}", task.lead.id),
                task,
            })
            .collect();
        Ok(TaskList { tasks })
    }

    /// A page of leads, newest first; a status or `before` that is not one names its field.
    pub async fn leads(&self, ws: WorkspaceId, q: LeadListing<'_>) -> Result<LeadPage, ApiError> {
        let status = q
            .status
            .map(|s| {
                s.parse::<pronto_domain::sales::lead::LeadStatus>()
                    .map_err(|_| {
                        Invalid::one(
                            "status",
                            format!("is `{s}`; use open, claimed, contacted, won or lost"),
                        )
                    })
            })
            .transpose()?;
        let before = q
            .before
            .map(|b| {
                b.parse::<LeadId>()
                    .map_err(|_| Invalid::one("before", "is not a lead id (a UUID)"))
            })
            .transpose()?;
        for (field, text) in [("owner", q.owner), ("team", q.team)] {
            if let Some(t) = text {
                pronto_domain::check_text(field, t)?;
            }
        }
        let filter = pronto_store::LeadFilter {
            status,
            owner: q.owner.map(str::to_string),
            team: q.team.map(str::to_string),
            before,
        };
        let leads = self.store.leads(ws, &filter, i64::from(q.limit)).await?;
        let next_before = (leads.len() == q.limit as usize)
            .then(|| leads.last().map(|l| l.id.to_string()))
            .flatten();
        Ok(LeadPage { leads, next_before })
    }

    pub async fn lead_view(&self, ws: WorkspaceId, id: &str) -> Result<LeadView, ApiError> {
        let id: LeadId = id
            .parse()
            .map_err(|_| Invalid::one("id", "is not a lead id (a UUID)"))?;
        self.store
            .lead(ws, id)
            .await?
            .ok_or(ApiError::NotFound("lead"))
    }

    /// Records an action on a lead as an event on its contact, with the action attached.
    pub(crate) async fn act(
        &self,
        ws: WorkspaceId,
        lead: &LeadState,
        name: &str,
        properties: Map<String, Value>,
        action: LeadAction,
    ) -> Result<(), ApiError> {
        let identities: Vec<Identity> = lead
            .email
            .iter()
            .filter_map(|e| pronto_domain::Email::parse(e).ok())
            .map(|e| Identity::email(&e))
            .chain(
                lead.phone
                    .iter()
                    .filter_map(|p| pronto_domain::Phone::parse(p, self.opts.region).ok())
                    .map(|p| Identity::phone(&p)),
            )
            .collect();
        let event = track(name, identities, properties);
        self.commit(
            ws,
            vec![IngestItem {
                event,
                lead: None,
                action: Some(action),
            }],
        )
        .await?;
        Ok(())
    }

    /// "I'm on it": the rep takes the lead and its SLA clock stops. Claiming a claimed lead changes nothing.
    pub async fn claim(&self, ws: WorkspaceId, id: &str, rep: &str) -> Result<LeadView, ApiError> {
        if self.sales().sales.rep(rep).is_none() {
            return Err(Invalid::one("rep", format!("no rep `{rep}` is configured")).into());
        }
        let view = self.lead_view(ws, id).await?;
        if view.lead.claimed_at.is_none() {
            let mut props = Map::new();
            props.insert("lead_id".into(), json!(view.lead.id));
            props.insert("rep".into(), json!(rep));
            let action = LeadAction::Claim {
                lead: view.lead.id,
                rep: rep.to_string(),
            };
            self.act(ws, &view.lead, LEAD_CLAIMED, props, action)
                .await?;
        }
        self.lead_view(ws, id).await
    }

    /// Logs a contact attempt; the first one is the lead's first-contact time and stops the SLA clock; won,
    /// lost and not interested close the lead and end its cadence.
    pub async fn attempt(
        &self,
        ws: WorkspaceId,
        id: &str,
        req: AttemptRequest,
    ) -> Result<LeadView, ApiError> {
        let mut errors = Vec::new();
        if !ATTEMPT_CHANNELS.contains(&req.channel.as_str()) {
            errors.push(pronto_domain::FieldError::new(
                "channel",
                "must be call, email or sms",
            ));
        }
        let outcome = Outcome::parse(&req.outcome);
        if outcome.is_none() {
            errors.push(pronto_domain::FieldError::new(
                "outcome",
                "must be reached, no_answer, voicemail, won, lost or not_interested",
            ));
        }
        if let Some(r) = &req.rep {
            if self.sales().sales.rep(r).is_none() {
                errors.push(pronto_domain::FieldError::new(
                    "rep",
                    format!("no rep `{r}` is configured"),
                ));
            }
        }
        if req
            .note
            .as_ref()
            .is_some_and(|n| n.chars().count() > 10_000)
        {
            errors.push(pronto_domain::FieldError::new(
                "note",
                "must be at most 10000 characters",
            ));
        }
        if req.value.is_some() && outcome != Some(Outcome::Won) {
            errors.push(pronto_domain::FieldError::new(
                "value",
                "only a won attempt has a value",
            ));
        }
        if req.value.is_some_and(|v| !v.is_finite() || v < 0.0) {
            errors.push(pronto_domain::FieldError::new(
                "value",
                "must be a number of at least 0",
            ));
        }
        let currency = req
            .currency
            .as_deref()
            .map(|c| c.trim().to_ascii_uppercase());
        match (&currency, req.value) {
            (Some(c), _) if c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_alphabetic()) => errors
                .push(pronto_domain::FieldError::new(
                    "currency",
                    "must be a three-letter ISO 4217 code like EUR",
                )),
            (Some(_), None) => errors.push(pronto_domain::FieldError::new(
                "currency",
                "comes with a value",
            )),
            _ => {}
        }
        let now = self.clock.now();
        let at = req.at.unwrap_or(now);
        if at > now + chrono::Duration::minutes(5) {
            errors.push(pronto_domain::FieldError::new(
                "at",
                "must not be in the future",
            ));
        }
        let (Some(outcome), true) = (outcome, errors.is_empty()) else {
            return Err(Invalid(errors).into());
        };
        let view = self.lead_view(ws, id).await?;
        if at < view.lead.created_at {
            return Err(Invalid::one(
                "at",
                format!(
                    "is before the lead arrived ({}); an attempt cannot come before its lead",
                    view.lead
                        .created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            )
            .into());
        }
        let mut props = Map::new();
        props.insert("lead_id".into(), json!(view.lead.id));
        props.insert("rep".into(), json!(req.rep));
        props.insert("channel".into(), json!(req.channel));
        props.insert("outcome".into(), json!(outcome.as_str()));
        if let Some(v) = req.value {
            props.insert("value".into(), json!(v));
        }
        if let Some(c) = &currency {
            props.insert("currency".into(), json!(c));
        }
        let action = LeadAction::Attempt {
            lead: view.lead.id,
            rep: req.rep,
            channel: req.channel,
            outcome,
            note: req.note,
            at,
        };
        self.act(ws, &view.lead, outcome.event(), props, action)
            .await?;
        self.lead_view(ws, id).await
    }

    /// A reply from a lead (SMS or email): recorded on their latest lead, forwarded to its owner, and a
    /// `Lead Replied` event that ends cadences.
    pub async fn reply(
        &self,
        ws: WorkspaceId,
        from: Identity,
        channel: &str,
        body: &str,
        delivery: Option<crate::service::Keyed>,
    ) -> Result<(), ApiError> {
        let mut props = Map::new();
        props.insert("channel".into(), json!(channel));
        props.insert(
            "body".into(),
            json!(body.chars().take(2_000).collect::<String>()),
        );
        let mut event = track(LEAD_REPLIED, vec![from], props);
        if let Some(k) = delivery {
            event = event.keyed(k.scope, k.key, k.hash);
        }
        self.commit(
            ws,
            vec![IngestItem {
                event,
                lead: None,
                action: Some(LeadAction::Reply {
                    channel: channel.into(),
                    body: body.into(),
                }),
            }],
        )
        .await?;
        Ok(())
    }

    /// Sets or clears the contact's SMS opt-out (STOP / START), as an identify would.
    async fn sms_consent(
        &self,
        ws: WorkspaceId,
        from: Identity,
        out: bool,
    ) -> Result<(), ApiError> {
        let now = self.clock.now();
        let mut traits = Map::new();
        traits.insert("sms_opt_out".into(), json!(out));
        traits.insert(
            if out {
                "sms_opt_out_at"
            } else {
                "sms_opt_in_at"
            }
            .into(),
            json!(now.to_rfc3339()),
        );
        let event = NewEvent {
            message_id: None,
            dedupe_scope: None,
            request_hash: None,
            kind: EventType::Identify,
            name: None,
            user_id: None,
            anonymous_id: None,
            identities: vec![from],
            traits: traits.clone(),
            properties: Map::new(),
            timestamp: None,
            payload: json!({"type": "identify", "traits": traits}),
        };
        // Also an event, so a cadence can exit on it (`exit = [{ event = "SMS Opted Out", same = "contact" }]`).
        let name = if out {
            pronto_domain::sales::SMS_OPTED_OUT
        } else {
            pronto_domain::sales::SMS_OPTED_IN
        };
        let mark = track(name, event.identities.clone(), Map::new());
        self.commit(ws, vec![event.into(), mark.into()]).await?;
        Ok(())
    }

    /// An inbound SMS (Twilio's webhook form), its signature already checked. STOP-like keywords opt the sender
    /// out of every SMS, START-like ones back in, HELP gets the help text; anything else is a reply. Answers
    /// the TwiML body: carriers expect exactly one confirmation for STOP, START and HELP.
    pub async fn inbound_sms(&self, from: &str, body: &str) -> Result<String, ApiError> {
        use pronto_domain::keywords::{classify, SmsKeyword};
        let phone = pronto_domain::Phone::parse(from, self.opts.region)
            .map_err(|m| Invalid::one("From", m.to_string()))?;
        let who = Identity::phone(&phone);
        let ws = self.default_workspace;
        let program = self.sales();
        let sender = program
            .messages
            .from
            .split('<')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_string();
        let say = |text: String| {
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
                xml_escape(&text)
            )
        };
        Ok(match classify(body) {
            SmsKeyword::OptOut => {
                self.sms_consent(ws, who, true).await?;
                say(format!("{sender}: You are unsubscribed and will receive no more messages. Reply START to resubscribe."))
            }
            SmsKeyword::OptIn => {
                self.sms_consent(ws, who, false).await?;
                say(format!("{sender}: You are resubscribed. Reply STOP to unsubscribe, HELP for help."))
            }
            SmsKeyword::Help => say(format!(
                "{sender}: Reply to this number to reach us. Reply STOP to unsubscribe. Msg&data rates may apply."
            )),
            SmsKeyword::Reply => {
                self.reply(ws, who, "sms", body, None).await?;
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".into()
            }
        })
    }

    /// Checks a rep's claim link and answers the lead it is for.
    pub async fn check_claim_link(
        &self,
        ws: &str,
        lead: &str,
        rep: &str,
        token: &str,
    ) -> Result<LeadView, String> {
        let invalid = || "This link is not valid.".to_string();
        let ws: WorkspaceId = ws.parse().map_err(|_| invalid())?;
        let id: LeadId = lead.parse().map_err(|_| invalid())?;
        let program = self.sales();
        let now = self.clock.now().timestamp();
        pronto_domain::message::links::check_claim(&program.messages, ws, id, rep, token, now)
            .map_err(|e| match e {
                pronto_domain::claim::ClaimError::Expired => {
                    "This link has expired; open the lead in pronto instead.".to_string()
                }
                pronto_domain::claim::ClaimError::Invalid => invalid(),
            })?;
        match self.store.lead(ws, id).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(invalid()),
            Err(e) => Err(format!("Please try again in a moment ({e}).")),
        }
    }

    /// A call to the web-only number: a lead with source "web phone" (the call's id makes a retried webhook
    /// a no-op), routed and alerted like any other; the TwiML connects the caller to its owner.
    pub async fn inbound_call(
        &self,
        from: &str,
        to: Option<&str>,
        call: &str,
    ) -> Result<String, ApiError> {
        let mut obj = Map::new();
        obj.insert("phone".into(), json!(from));
        obj.insert(
            "source".into(),
            json!(pronto_domain::report::business::WEB_PHONE_SOURCE),
        );
        if let Some(to) = to {
            obj.insert("called".into(), json!(to));
        }
        let lead = pronto_domain::Lead::parse(&obj, self.opts.region)?;
        let ws = self.default_workspace;
        let keyed = crate::service::Keyed::delivery("twilio-voice", call.to_string());
        let done = self.lead(ws, lead, Some(keyed)).await?;
        let owner_phone = self
            .store
            .lead(ws, done.lead_id)
            .await?
            .and_then(|v| v.lead.owner)
            .and_then(|o| self.sales().sales.rep(&o).and_then(|r| r.phone.clone()));
        Ok(match owner_phone {
            Some(p) => format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Dial>{}</Dial></Response>",
                xml_escape(&p)
            ),
            None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Thanks for calling. Someone will call you back shortly.</Say></Response>".into(),
        })
    }

    /// Checks an inbound webhook's `X-Twilio-Signature` against the URL it was posted to.
    pub fn twilio_signed(
        &self,
        path_and_query: &str,
        params: &[(String, String)],
        signature: &str,
    ) -> bool {
        // The URL Twilio signed: the public URL plus the path and query the request came to.
        let url = format!(
            "{}{path_and_query}",
            self.sales().messages.public_url.trim_end_matches('/')
        );
        match &self.sms_token {
            Some(token) => {
                pronto_channels::sms::verify_twilio_signature(token, &url, params, signature)
            }
            None => false,
        }
    }

    /// The speed-to-lead report for leads that arrived in `[from, to)`, each a date or a time as the query
    /// string wrote it (a date in the business's zone; see `pronto_domain::report::period_bound`); default
    /// the 30 days to now. A bound that cannot be read is a 400 naming it.
    /// A report's period `[from, to)` from the query's `from` and `to` (RFC 3339, or dates in the business's
    /// time zone); default the 30 days up to now. A period that ends before it starts is empty (a query string
    /// cannot say which bound is wrong, so this is an empty report, not an error).
    pub fn period(
        &self,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
        let tz = self.sales().sales.timezone;
        let bound = |field: &str, text: Option<&str>, is_end: bool| {
            text.map(|t| pronto_domain::report::period_bound(t, tz, is_end))
                .transpose()
                .map_err(|m| ApiError::from(Invalid::one(field, m)))
        };
        let to = bound("to", to, true)?.unwrap_or_else(|| self.clock.now());
        let from = bound("from", from, false)?.unwrap_or(to - chrono::Duration::days(30));
        Ok((from, to.max(from)))
    }

    pub async fn speed_to_lead(
        &self,
        ws: WorkspaceId,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<SpeedToLead, ApiError> {
        let (from, to) = self.period(from, to)?;
        self.speed_to_lead_of(ws, from, to, |_| true).await
    }

    /// The report over the leads of `[from, to)` that `keep` keeps (a manager's teams' leads).
    pub async fn speed_to_lead_of(
        &self,
        ws: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        keep: impl Fn(&ReportLead) -> bool,
    ) -> Result<SpeedToLead, ApiError> {
        Ok(self.report_and(ws, from, to, keep, |_, _| ()).await?.0)
    }

    /// The speed-to-lead report over the leads that arrived in `[from, to)` and pass `keep`, and what
    /// `also` makes of those leads and of the checkouts and orders per hour in the period (the board's
    /// weekly channels and words), from what is kept in memory ([`crate::lead_report`]).
    pub async fn report_and<R>(
        &self,
        ws: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        keep: impl Fn(&ReportLead) -> bool,
        also: impl FnOnce(&[&ReportLead], &[(DateTime<Utc>, String, u64)]) -> R,
    ) -> Result<(SpeedToLead, R), ApiError> {
        let now = self.clock.now();
        let tz = self.sales().sales.timezone;
        self.lead_report
            .read(&self.store, ws, from, to, now, |leads, commerce| {
                let kept: Vec<&ReportLead> = leads.iter().copied().filter(|l| keep(l)).collect();
                (
                    pronto_domain::report::build(&kept, from, to, now, tz),
                    also(&kept, commerce),
                )
            })
            .await
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The report as CSV: one row per group (and `overall`), one column per bucket's count and share.
pub fn report_csv(r: &SpeedToLead) -> String {
    use pronto_domain::report::Bucket;
    let mut out = String::from("by,key,leads");
    for b in Bucket::ALL {
        let name = b.as_str();
        out.push_str(&format!(",{name},{name}_share,{name}_won_rate"));
    }
    for b in Bucket::ALL {
        out.push_str(&format!(",{}_won_revenue", b.as_str()));
    }
    out.push_str(",mean_secs,median_secs,p90_secs,sla_breaches,won_revenue\n");
    let row = |out: &mut String, by: &str, key: &str, rep: &SpeedReport| {
        let field = crate::views::csv_field;
        out.push_str(&format!("{},{},{}", field(by), field(key), rep.leads));
        for b in &rep.buckets {
            out.push_str(&format!(",{},{:.4},{:.4}", b.leads, b.share, b.won_rate));
        }
        for b in &rep.buckets {
            out.push_str(&format!(
                ",{}",
                field(&crate::views::amounts(&b.won_revenue))
            ));
        }
        let num = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
        out.push_str(&format!(
            ",{},{},{},{},{}\n",
            num(rep.mean_response_secs),
            num(rep.median_response_secs),
            num(rep.p90_response_secs),
            rep.sla_breaches,
            field(&crate::views::amounts(&rep.won_revenue))
        ));
    };
    row(&mut out, "overall", "", &r.overall);
    for g in &r.groups {
        row(&mut out, &g.by, &g.key, &g.report);
    }
    out
}

/// The report as a terminal table: shares per bucket, response times, breaches.
pub fn report_table(r: &SpeedToLead) -> String {
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    let mins = |v: Option<f64>| {
        v.map(|s| format!("{:.1}m", s / 60.0))
            .unwrap_or_else(|| "-".into())
    };
    let mut out = format!(
        "Speed to lead, {} to {}\n\n{:<14} {:<22} {:>5} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5} {:>8} {:>8} {:>8} {:>6}\n",
        r.from.format("%Y-%m-%d %H:%M"),
        r.to.format("%Y-%m-%d %H:%M"),
        "by", "key", "leads", "<5m", "5-60m", "1-24h", ">24h", "never", "open", "mean", "median", "p90", "breach"
    );
    let mut row = |by: &str, key: &str, rep: &SpeedReport| {
        let b = &rep.buckets;
        let key: String = key.chars().take(22).collect();
        out.push_str(&format!(
            "{by:<14} {key:<22} {:>5} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5} {:>8} {:>8} {:>8} {:>6}\n",
            rep.leads,
            pct(b[0].share),
            pct(b[1].share),
            pct(b[2].share),
            pct(b[3].share),
            pct(b[4].share),
            b[5].leads,
            mins(rep.mean_response_secs),
            mins(rep.median_response_secs),
            mins(rep.p90_response_secs),
            rep.sla_breaches
        ));
    };
    row("overall", "", &r.overall);
    for g in &r.groups {
        row(&g.by, &g.key, &g.report);
    }
    let won: Vec<String> = r
        .overall
        .buckets
        .iter()
        .filter(|b| b.leads > 0)
        .map(|b| format!("{}: {}", b.bucket.as_str(), pct(b.won_rate)))
        .collect();
    out.push_str(&format!(
        "\nwon-rate by bucket: {}\n",
        if won.is_empty() {
            "-".into()
        } else {
            won.join(", ")
        }
    ));
    let revenue: Vec<String> = r
        .overall
        .buckets
        .iter()
        .filter(|b| !b.won_revenue.is_empty())
        .map(|b| {
            format!(
                "{}: {}",
                b.bucket.as_str(),
                crate::views::amounts(&b.won_revenue)
            )
        })
        .collect();
    if !revenue.is_empty() {
        out.push_str(&format!("won revenue by bucket: {}\n", revenue.join("; ")));
        let by_rep: Vec<String> = r
            .groups
            .iter()
            .filter(|g| g.by == "rep" && !g.report.won_revenue.is_empty())
            .map(|g| {
                format!(
                    "{}: {}",
                    g.key,
                    crate::views::amounts(&g.report.won_revenue)
                )
            })
            .collect();
        out.push_str(&format!("won revenue by rep: {}\n", by_rep.join("; ")));
    }
    out
}
