//! The service layer between thin handlers and the store: authenticate, parse into domain types, one store
//! call, count what happened.

use crate::config::{FormConfig, Settings};
use crate::error::ApiError;
use crate::keys::KeyCache;
use pronto_domain::event::{body_write_key, parse_batch, parse_single};
use pronto_domain::{
    Clock, ContactId, Email, EventType, Identity, IdentityKind, Invalid, Lead, ParseOptions, Phone,
    WorkspaceId,
};
use pronto_store::{Contact, IngestItem, Ingested, KeyKind, Store, StoredEvent};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

pub struct Service {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// The workspace public forms belong to.
    pub default_workspace: WorkspaceId,
    keys: KeyCache,
    pub(crate) opts: ParseOptions,
    /// The SMS provider's auth token: inbound webhooks are signed with it.
    pub(crate) sms_token: Option<String>,
    max_event_bytes: usize,
    /// What the configuration was loaded from, to load it again on a reload.
    overrides: crate::config::Overrides,
    link_secret: Vec<u8>,
}

/// How a contact is looked up on `GET /v1/contacts`.
#[derive(Debug, Clone, Default)]
pub struct ContactQuery {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
}

/// A contact with one page of its timeline.
#[derive(Debug, Serialize)]
pub struct ContactPage {
    #[serde(flatten)]
    pub contact: Contact,
    pub events: Vec<StoredEvent>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
    /// The contact's flow runs, newest first, each with its steps and reasons.
    pub runs: Vec<pronto_store::RunView>,
}

/// The answer to an accepted lead.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LeadAccepted {
    #[schema(value_type = String, format = Uuid)]
    pub lead_id: Option<pronto_domain::LeadId>,
    #[schema(value_type = String, format = Uuid)]
    pub contact_id: ContactId,
    #[schema(value_type = String, format = Uuid)]
    pub event_id: pronto_domain::EventId,
    /// True when this was a retry of an earlier request (same `Idempotency-Key`): nothing new was stored.
    pub duplicate: bool,
}

impl Service {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        default_workspace: WorkspaceId,
        settings: &Settings,
        link_secret: Vec<u8>,
    ) -> Self {
        Self {
            store,
            clock,
            default_workspace,
            keys: KeyCache::default(),
            opts: ParseOptions {
                region: settings.region,
            },
            sms_token: settings.sms.as_ref().map(|c| c.auth_token.clone()),
            max_event_bytes: settings.max_event_bytes,
            overrides: settings.overrides.clone(),
            link_secret,
        }
    }

    /// Configured flows with their live counts, plus flows that have runs but are no longer configured.
    pub async fn flows(
        &self,
        ws: WorkspaceId,
    ) -> Result<Vec<crate::routes::flows::FlowView>, ApiError> {
        use crate::routes::flows::FlowView;
        let program = self.store.shared().program();
        let mut stats = self.store.flow_stats(ws).await?;
        let mut out = Vec::new();
        for f in &program.flows {
            let st = match stats.iter().position(|s| s.flow == f.id) {
                Some(i) => stats.remove(i),
                None => Default::default(),
            };
            out.push(FlowView {
                id: f.id.clone(),
                triggers: f.triggers.clone(),
                key: f.key.as_ref().map(|k| k.to_string()),
                exits: f
                    .exits
                    .iter()
                    .map(|x| {
                        format!(
                            "{} (same {})",
                            x.event,
                            match x.same {
                                pronto_domain::flow::Same::Key => "key",
                                pronto_domain::flow::Same::Contact => "contact",
                            }
                        )
                    })
                    .collect(),
                steps: f.steps.len(),
                active: st.active,
                finished: st.finished,
                exited: st.exited,
                skipped: st.skipped,
                messages: st.messages,
                configured: true,
            });
        }
        for st in stats {
            out.push(FlowView {
                id: st.flow,
                triggers: Vec::new(),
                key: None,
                exits: Vec::new(),
                steps: 0,
                active: st.active,
                finished: st.finished,
                exited: st.exited,
                skipped: st.skipped,
                messages: st.messages,
                configured: false,
            });
        }
        Ok(out)
    }

    /// Loads the configuration again and swaps in its flows, templates and message settings. Other settings
    /// (listen address, database, keys) need a restart.
    pub fn reload(&self) -> Result<Vec<String>, ApiError> {
        let program = Settings::load(self.overrides.clone())
            .and_then(|s| s.program(self.link_secret.clone()))
            .map_err(|e| Invalid::one("config", e.to_string()))?;
        let ids = program.flows.iter().map(|f| f.id.clone()).collect();
        self.store.shared().set_program(Arc::new(program));
        tracing::info!(flows = ?ids, "configuration reloaded");
        Ok(ids)
    }

    pub fn check_unsubscribe(
        &self,
        ws: &str,
        contact: &str,
        token: &str,
    ) -> Result<(WorkspaceId, ContactId), pronto_domain::claim::ClaimError> {
        let program = self.store.shared().program();
        pronto_domain::program::check_unsubscribe(
            &program.messages,
            ws,
            contact,
            token,
            self.clock.now().timestamp(),
        )?;
        match (ws.parse(), contact.parse()) {
            (Ok(w), Ok(c)) => Ok((w, c)),
            _ => Err(pronto_domain::claim::ClaimError::Invalid),
        }
    }

    /// Marks the contact unsubscribed (trait `unsubscribed: true`, with the time), honoured by every guard.
    pub async fn unsubscribe(&self, ws: &str, contact: &str, token: &str) -> Result<(), String> {
        let (ws, contact) = self
            .check_unsubscribe(ws, contact, token)
            .map_err(|e| e.to_string())?;
        let now = self.clock.now();
        let patch = serde_json::json!({"unsubscribed": true, "unsubscribed_at": now.to_rfc3339()});
        let Value::Object(patch) = patch else {
            unreachable!("a JSON object literal")
        };
        match self.store.patch_traits(ws, contact, &patch, now).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the link is not valid".into()),
            Err(e) => Err(format!("please try again later ({e})")),
        }
    }

    async fn workspace_for(
        &self,
        kind: KeyKind,
        key: Option<&str>,
    ) -> Result<WorkspaceId, ApiError> {
        let refused = match kind {
            KeyKind::Write => ApiError::BadWriteKey,
            KeyKind::Admin => ApiError::BadAdminKey,
        };
        match key {
            Some(k) if !k.is_empty() => self
                .keys
                .lookup(&*self.store, kind, k)
                .await?
                .ok_or(refused),
            _ => Err(refused),
        }
    }

    pub async fn admin(&self, key: Option<&str>) -> Result<WorkspaceId, ApiError> {
        self.workspace_for(KeyKind::Admin, key).await
    }

    /// The workspace of a write key (inbound webhooks send it like the Segment libraries do).
    pub async fn write_key(&self, key: Option<&str>) -> Result<WorkspaceId, ApiError> {
        self.workspace_for(KeyKind::Write, key).await
    }

    /// A write key from the Authorization header wins; otherwise the body's `writeKey`.
    async fn writer(&self, header_key: Option<&str>, body: &[u8]) -> Result<WorkspaceId, ApiError> {
        match header_key {
            Some(k) => self.workspace_for(KeyKind::Write, Some(k)).await,
            None => {
                self.workspace_for(KeyKind::Write, body_write_key(body).as_deref())
                    .await
            }
        }
    }

    pub(crate) async fn commit(
        &self,
        ws: WorkspaceId,
        items: Vec<IngestItem>,
    ) -> Result<Vec<Ingested>, ApiError> {
        let kinds: Vec<&'static str> = items.iter().map(|i| i.event.kind.as_str()).collect();
        let done = self.store.ingest(ws, items, self.clock.now()).await?;
        for (kind, d) in kinds.into_iter().zip(&done) {
            if d.duplicate {
                metrics::counter!("pronto_events_duplicate_total").increment(1);
            } else {
                metrics::counter!("pronto_events_ingested_total", "type" => kind).increment(1);
            }
        }
        Ok(done)
    }

    /// One Segment message (`kind` given by the endpoint).
    pub async fn segment_one(
        &self,
        kind: EventType,
        header_key: Option<&str>,
        idempotency_key: Option<&str>,
        body: &[u8],
    ) -> Result<Ingested, ApiError> {
        let ws = self.writer(header_key, body).await?;
        let event = parse_single(body, kind, idempotency_key, self.max_event_bytes, self.opts)?;
        let mut done = self.commit(ws, vec![event.into()]).await?;
        Ok(done.remove(0))
    }

    /// A Segment batch, all or nothing (see [`pronto_domain::event::parse_batch`]).
    pub async fn segment_batch(
        &self,
        header_key: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<Ingested>, ApiError> {
        let ws = self.writer(header_key, body).await?;
        let events = parse_batch(body, self.max_event_bytes, self.opts)?;
        self.commit(ws, events.into_iter().map(IngestItem::from).collect())
            .await
    }

    /// `POST /v1/leads`.
    pub async fn lead_json(
        &self,
        header_key: Option<&str>,
        idempotency_key: Option<&str>,
        body: &[u8],
    ) -> Result<LeadAccepted, ApiError> {
        let ws = self.writer(header_key, body).await?;
        if body.len() > self.max_event_bytes {
            return Err(ApiError::TooLarge {
                field: "body".into(),
                size: body.len(),
                limit: self.max_event_bytes,
            });
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Invalid::one("body", format!("is not valid JSON: {e}")))?;
        let Value::Object(mut obj) = value else {
            return Err(Invalid::one("body", "must be a JSON object").into());
        };
        obj.remove("writeKey");
        let lead = Lead::parse(&obj, self.opts.region)?;
        self.lead(ws, lead, idempotency_key.map(str::to_string))
            .await
    }

    /// A post to a declared HTML form. `None`: a bot filled the honeypot, and nothing was stored.
    pub async fn lead_form(
        &self,
        form: &FormConfig,
        pairs: Vec<(String, String)>,
    ) -> Result<Option<LeadAccepted>, ApiError> {
        if pairs
            .iter()
            .any(|(k, v)| k == &form.honeypot && !v.trim().is_empty())
        {
            metrics::counter!("pronto_form_honeypot_total", "form" => form.name.clone())
                .increment(1);
            return Ok(None);
        }
        let mut fields: Vec<(String, String)> = pairs
            .into_iter()
            .filter(|(k, _)| k != &form.honeypot)
            .collect();
        if let Some(source) = &form.source {
            if !fields.iter().any(|(k, v)| k == "source" && !v.is_empty()) {
                fields.push(("source".into(), source.clone()));
            }
        }
        let lead = Lead::from_form(&fields, &form.name, self.opts.region)?;
        self.lead(self.default_workspace, lead, None)
            .await
            .map(Some)
    }

    pub(crate) async fn lead(
        &self,
        ws: WorkspaceId,
        lead: Lead,
        message_id: Option<String>,
    ) -> Result<LeadAccepted, ApiError> {
        let item = IngestItem {
            event: lead.to_event(message_id),
            lead: Some(lead),
            action: None,
        };
        let done = self.commit(ws, vec![item]).await?.remove(0);
        Ok(LeadAccepted {
            lead_id: done.lead_id,
            contact_id: done.contact_id,
            event_id: done.event_id,
            duplicate: done.duplicate,
        })
    }

    pub async fn contact_page(
        &self,
        ws: WorkspaceId,
        id: ContactId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<ContactPage, ApiError> {
        let contact = self
            .store
            .contact(ws, id)
            .await?
            .ok_or(ApiError::NotFound("contact"))?;
        let limit = limit.clamp(1, 500);
        let events = self.store.timeline(ws, contact.id, before, limit).await?;
        let next_before = (events.len() == limit as usize)
            .then(|| events.last().map(|e| e.seq))
            .flatten();
        let runs = self.store.contact_runs(ws, contact.id).await?;
        Ok(ContactPage {
            contact,
            events,
            next_before,
            runs,
        })
    }

    /// Finds the contact by exactly one identifier, normalised as on ingestion.
    pub async fn find_contact(
        &self,
        ws: WorkspaceId,
        q: &ContactQuery,
    ) -> Result<ContactId, ApiError> {
        let given: Vec<(&str, &String)> = [
            ("email", &q.email),
            ("phone", &q.phone),
            ("user_id", &q.user_id),
            ("anonymous_id", &q.anonymous_id),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
        let [(field, value)] = given.as_slice() else {
            return Err(Invalid::one(
                "query",
                "give exactly one of email, phone, user_id, anonymous_id",
            )
            .into());
        };
        let identity = match *field {
            "email" => Identity::email(&Email::parse(value).map_err(|m| Invalid::one("email", m))?),
            "phone" => Identity::phone(
                &Phone::parse(value, self.opts.region).map_err(|m| Invalid::one("phone", m))?,
            ),
            "user_id" => Identity {
                kind: IdentityKind::UserId,
                value: value.to_string(),
            },
            _ => Identity {
                kind: IdentityKind::AnonymousId,
                value: value.to_string(),
            },
        };
        self.store
            .find_contact(ws, &identity)
            .await?
            .ok_or(ApiError::NotFound("contact"))
    }
}
