//! The service layer between thin handlers and the store: authenticate, parse into domain types, one store
//! call, count what happened.

use crate::config::{FormConfig, Settings};
use crate::error::ApiError;
use crate::keys::KeyCache;
use crate::views::FlowView;
use pronto_domain::event::{body_write_key, parse_batch, parse_single};
use pronto_domain::{
    Clock, ContactId, Email, EventType, Identity, IdentityKind, Invalid, Lead, ParseOptions, Phone,
    RunId, WorkspaceId,
};
use pronto_store::{Contact, IngestItem, Ingested, KeyKind, Store, StoreError, StoredEvent};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// The keys sending services' event webhooks are checked with (none: that provider's endpoint answers 401).
pub(crate) struct ProviderKeys {
    /// SendGrid's verification key's P-256 point.
    pub sendgrid: Option<Vec<u8>>,
    pub mailgun: Option<String>,
    /// Mailgun tokens seen within the freshness window, with their timestamps: a second use is a replay.
    pub mailgun_tokens: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

/// How an inbound webhook authenticated itself: Standard Webhooks headers (`webhook-id`,
/// `webhook-timestamp`, `webhook-signature`) and/or an HTTP Basic password. Read by its extractor (`crate::extract`), checked here.
#[derive(Debug, Default)]
pub struct InboundAuth {
    pub webhook_id: Option<String>,
    pub webhook_timestamp: Option<String>,
    pub webhook_signature: Option<String>,
    pub basic_password: Option<String>,
}

pub struct Service {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// The workspace public forms belong to.
    pub default_workspace: WorkspaceId,
    keys: KeyCache,
    pub(crate) opts: ParseOptions,
    /// The SMS provider's auth token: inbound webhooks are signed with it.
    pub(crate) sms_token: Option<String>,
    /// What inbound-email webhooks are authenticated with.
    inbound_email_secret: Option<String>,
    /// What sending services' event webhooks are checked with.
    pub(crate) provider_keys: ProviderKeys,
    max_event_bytes: usize,
    limits: crate::config::LimitsSection,
    form_limit_per_minute: u32,
    /// What the configuration was loaded from, to load it again on a reload.
    overrides: crate::config::Overrides,
    link_secret: Vec<u8>,
    /// The shops whose webhooks are taken, with their signing secrets.
    pub(crate) shops: Vec<crate::config::ShopSettings>,
    /// Who may sign in to the web app; rebuilt on a reload.
    pub(crate) users: std::sync::RwLock<Arc<pronto_domain::access::Users>>,
    /// The web app's sign-in settings.
    pub(crate) app: crate::config::AppAuth,
    /// Tells open inboxes when leads change.
    pub live: crate::live::Live,
    /// The speed-to-lead report's leads, kept in memory and brought up to date on each read.
    pub(crate) lead_report: crate::lead_report::Kept,
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

/// Who sent a request: the key's workspace and the key's id, which idempotency keys are scoped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub ws: WorkspaceId,
    pub key_id: String,
}

/// A request's `Idempotency-Key`, scoped: the same key from another credential or to another endpoint is
/// another key.
pub struct Keyed {
    pub scope: String,
    pub key: String,
    /// SHA-256 of the request body, hex.
    pub hash: String,
}

impl Keyed {
    /// A sender's own delivery id (a webhook's), which is what its redeliveries repeat.
    pub fn delivery(scope: &str, id: String) -> Self {
        Self {
            scope: scope.to_string(),
            hash: id.clone(),
            key: id,
        }
    }

    pub fn new(endpoint: &str, who: &Credential, key: String, body: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let hash = Sha256::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            scope: format!("{endpoint}:{}", who.key_id),
            key,
            hash,
        }
    }
}

/// Compares secrets in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A repeat of a keyed request answers as the first did, unless the key came with another body.
fn check_repeat(hash: Option<&str>, done: &Ingested) -> Result<(), ApiError> {
    match (hash, &done.request_hash) {
        (Some(now), Some(then)) if done.duplicate && now != then => {
            Err(ApiError::IdempotencyReused)
        }
        _ => Ok(()),
    }
}

/// The answer to an accepted lead.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LeadAccepted {
    #[schema(value_type = String, format = Uuid)]
    pub lead_id: pronto_domain::LeadId,
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
            clock,
            default_workspace,
            keys: KeyCache::default(),
            opts: ParseOptions {
                region: settings.region,
            },
            sms_token: settings.sms.as_ref().map(|c| c.auth_token.clone()),
            inbound_email_secret: settings.inbound_email_secret.clone(),
            provider_keys: ProviderKeys {
                sendgrid: settings.sendgrid_key.clone(),
                mailgun: settings.mailgun_signing_key.clone(),
                mailgun_tokens: Default::default(),
            },
            max_event_bytes: settings.max_event_bytes,
            limits: settings.limits.clone(),
            form_limit_per_minute: settings.forms.rate_limit_per_minute,
            overrides: settings.overrides.clone(),
            link_secret,
            shops: settings.shops.clone(),
            users: std::sync::RwLock::new(Arc::new(
                settings
                    .users(&store.shared().program().sales)
                    .unwrap_or_default(),
            )),
            app: crate::config::AppAuth::new(settings),
            live: crate::live::Live::default(),
            lead_report: crate::lead_report::Kept::default(),
            store,
        }
    }

    /// Configured flows with their live counts, plus flows that have runs but are no longer configured.
    pub async fn flows(&self, ws: WorkspaceId) -> Result<Vec<FlowView>, ApiError> {
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
                purpose: Some(f.purpose.as_str().to_string()),
                email_send_window: match &f.email_allowed {
                    Some(pronto_domain::flow::Wait::Within { start, end, .. }) => {
                        Some(format!("{}-{}", start.format("%H:%M"), end.format("%H:%M")))
                    }
                    _ => None,
                },
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
                purpose: None,
                email_send_window: None,
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
    /// Offer pools' `codes_file`s are read again and their new codes added.
    pub async fn reload(&self) -> Result<Vec<String>, ApiError> {
        let settings = Settings::load(self.overrides.clone())
            .map_err(|e| Invalid::one("config", e.to_string()))?;
        let mut program = settings
            .program(self.link_secret.clone())
            .map_err(|e| Invalid::one("config", e.to_string()))?;
        program.apply_promotions(&self.store.promotions(self.default_workspace).await?);
        let codes = settings
            .offer_codes()
            .map_err(|e| Invalid::one("config", e.to_string()))?;
        self.add_offer_codes(&codes).await?;
        let users = settings
            .users(&program.sales)
            .map_err(|e| Invalid::one("config", e.to_string()))?;
        let ids = program.flows.iter().map(|f| f.id.clone()).collect();
        self.store.shared().set_program(Arc::new(program));
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(users);
        tracing::info!(flows = ?ids, "configuration reloaded");
        Ok(ids)
    }

    /// Promotes `variant` as the winner of `flow`'s experiment `experiment`: recorded, then applied on this
    /// node at once (to the flows as loaded); other nodes apply it within about a minute (their counter
    /// worker's look, `experiments::promote_step`), or at their next reload or start. Errors name
    /// the field: no such flow, not its running experiment, not one of its variants.
    pub async fn promote(
        &self,
        ws: WorkspaceId,
        flow: &str,
        experiment: &str,
        variant: &str,
        source: &str,
    ) -> Result<pronto_domain::experiment::Promotion, ApiError> {
        crate::experiments::promote(
            &*self.store,
            ws,
            (flow, experiment, variant),
            source,
            self.clock.now(),
        )
        .await?
        .map_err(|(field, m)| Invalid::one(field, m).into())
    }

    /// Adds the codes read from offer pools' files (a code already in its pool is left as it is).
    pub async fn add_offer_codes(
        &self,
        codes: &[(String, Vec<String>)],
    ) -> Result<(), pronto_store::StoreError> {
        for (offer, codes) in codes {
            let added = self
                .store
                .add_offer_codes(self.default_workspace, offer, codes, self.clock.now())
                .await?;
            if added > 0 {
                tracing::info!(offer, added, "offer codes added from its codes_file");
            }
        }
        Ok(())
    }

    pub fn check_unsubscribe(
        &self,
        ws: &str,
        contact: &str,
        token: &str,
    ) -> Result<(WorkspaceId, ContactId), pronto_domain::claim::ClaimError> {
        let program = self.store.shared().program();
        pronto_domain::message::links::check_unsubscribe(
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
    /// Errors: the link is not valid (`NotFound`), or the database is not answering (a retryable 503).
    pub async fn unsubscribe(
        &self,
        ws: &str,
        contact: &str,
        token: &str,
        source: &str,
    ) -> Result<(), ApiError> {
        let (ws, contact) = self
            .check_unsubscribe(ws, contact, token)
            .map_err(|_| ApiError::NotFound("unsubscribe link"))?;
        let now = self.clock.now();
        let patch = serde_json::json!({"unsubscribed": true, "unsubscribed_at": now.to_rfc3339()});
        let Value::Object(patch) = patch else {
            unreachable!("a JSON object literal")
        };
        match self
            .store
            .patch_traits(ws, contact, &patch, source, now)
            .await?
        {
            true => Ok(()),
            false => Err(ApiError::NotFound("unsubscribe link")),
        }
    }

    /// An email to the `List-Unsubscribe` mailbox (`[inbound] unsubscribe_address`), as
    /// `POST /v1/inbound/email` receives it: when its subject or text names a valid unsubscribe link, the
    /// contact is unsubscribed as the link would and `true` answered; otherwise `false` (it is a reply).
    pub async fn unsubscribe_by_mail(&self, text: &str) -> Result<bool, ApiError> {
        let Some((ws, contact, token)) = pronto_domain::message::links::unsubscribe_request(text)
        else {
            return Ok(false);
        };
        match self
            .unsubscribe(&ws, &contact, &token, "unsubscribe email")
            .await
        {
            Ok(()) => Ok(true),
            Err(ApiError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Follows a tracked link from a flow message: where to redirect. A valid link records the click first
    /// (unless `record` is false: a HEAD from a link scanner)
    /// (a click that cannot be recorded is logged and the person still reaches the page: their cart matters
    /// more than the count); an expired one goes to its site's root and records nothing.
    /// Errors: the link was not made for this message and address (`NotFound`: redirecting would make pronto
    /// an open redirect; only http(s) addresses are ever signed).
    pub async fn follow_click(
        &self,
        ws: &str,
        message: &str,
        token: &str,
        to: &str,
        record: bool,
    ) -> Result<String, ApiError> {
        use pronto_domain::claim::ClaimError;
        use pronto_domain::message::links::{check_click, click_fallback};
        let program = self.store.shared().program();
        let now = self.clock.now();
        let checked = check_click(&program.messages, ws, message, to, token, now.timestamp());
        let workspace: Result<WorkspaceId, _> = ws.parse();
        match (checked, workspace) {
            (Ok(()), Ok(_)) if !record => Ok(to.to_string()),
            (Ok(()), Ok(workspace)) => {
                match self.store.record_click(workspace, message, to, now).await {
                    Ok(()) => metrics::counter!("pronto_clicks_total").increment(1),
                    Err(e) => {
                        metrics::counter!("pronto_clicks_unrecorded_total").increment(1);
                        tracing::warn!(error = %e, message, "a click could not be recorded; redirecting anyway");
                    }
                }
                Ok(to.to_string())
            }
            (Err(ClaimError::Expired), Ok(_)) => {
                click_fallback(to).ok_or(ApiError::NotFound("tracked link"))
            }
            _ => Err(ApiError::NotFound("tracked link")),
        }
    }

    async fn credential(&self, kind: KeyKind, key: Option<&str>) -> Result<Credential, ApiError> {
        let refused = match kind {
            KeyKind::Write => ApiError::BadWriteKey,
            KeyKind::Admin => ApiError::BadAdminKey,
        };
        match key {
            Some(k) if !k.is_empty() => {
                let ws = self
                    .keys
                    .lookup(&*self.store, kind, k)
                    .await?
                    .ok_or(refused)?;
                Ok(Credential {
                    ws,
                    key_id: pronto_store::key_id(&crate::keys::hash(k)),
                })
            }
            _ => Err(refused),
        }
    }

    /// Authenticates an inbound-email webhook: a Standard Webhooks signature of the body made with the inbound
    /// secret (within 5 minutes of now), or the secret as the HTTP Basic password. The write key opens
    /// nothing here: web pages publish it, and a forged "reply" would end a lead's cadence. Answers the
    /// delivery id of a signed request, which makes a redelivery a no-op.
    pub fn inbound_email_auth(
        &self,
        auth: &InboundAuth,
        body: &[u8],
    ) -> Result<Option<String>, ApiError> {
        let Some(secret) = self.inbound_email_secret.as_deref() else {
            return Err(ApiError::BadInboundAuth);
        };
        if let (Some(id), Some(ts), Some(sig)) = (
            &auth.webhook_id,
            &auth.webhook_timestamp,
            &auth.webhook_signature,
        ) {
            let ts: i64 = ts.trim().parse().map_err(|_| ApiError::BadInboundAuth)?;
            let key = pronto_channels::webhook::secret_bytes(secret);
            let now = self.clock.now().timestamp();
            if pronto_channels::webhook::verify(&key, id, ts, body, sig, now, 300) {
                return Ok(Some(id.clone()));
            }
            return Err(ApiError::BadInboundAuth);
        }
        match &auth.basic_password {
            Some(p) if constant_time_eq(p.as_bytes(), secret.as_bytes()) => Ok(None),
            _ => Err(ApiError::BadInboundAuth),
        }
    }

    /// Revokes a key; this process forgets every cached key at once (others within a second). The last live
    /// admin key is kept: revoking it over the API would lock everyone out (the CLI can, on the machine).
    pub async fn revoke_key(
        &self,
        ws: WorkspaceId,
        id: &str,
    ) -> Result<pronto_store::ApiKey, ApiError> {
        let keys = self.store.keys(ws).await?;
        let Some(key) = keys.iter().find(|k| k.id == id) else {
            return Err(ApiError::NotFound("key"));
        };
        let live_admins = keys
            .iter()
            .filter(|k| k.kind == KeyKind::Admin && k.revoked_at.is_none())
            .count();
        if key.kind == KeyKind::Admin && key.revoked_at.is_none() && live_admins == 1 {
            return Err(ApiError::Conflict(
                "this is the workspace's last admin key; create another first".into(),
            ));
        }
        let revoked = self
            .store
            .revoke_key(ws, id, self.clock.now())
            .await?
            .ok_or(ApiError::NotFound("key"))?;
        self.keys.clear();
        Ok(revoked)
    }

    /// The workspace's keys, oldest first, revoked ones too (never the keys themselves: only hashes are kept).
    pub async fn keys(&self, ws: WorkspaceId) -> Result<Vec<pronto_store::ApiKey>, ApiError> {
        Ok(self.store.keys(ws).await?)
    }

    /// Creates a key; the answer is the only time the key itself is seen.
    pub async fn create_key(
        &self,
        ws: WorkspaceId,
        kind: KeyKind,
        label: Option<&str>,
    ) -> Result<(String, pronto_store::ApiKey), ApiError> {
        Ok(crate::keys::create(&*self.store, ws, kind, label).await?)
    }

    /// Rows a worker could not read and set aside.
    pub async fn quarantined(
        &self,
        ws: WorkspaceId,
    ) -> Result<Vec<pronto_store::Quarantined>, ApiError> {
        Ok(self.store.quarantined(ws).await?)
    }

    /// One run with its history.
    pub async fn run(&self, ws: WorkspaceId, id: RunId) -> Result<pronto_store::RunView, ApiError> {
        self.store
            .run(ws, id)
            .await?
            .ok_or(ApiError::NotFound("run"))
    }

    /// The outbox's messages that meet `search`, newest first, at most `limit`.
    pub async fn messages(
        &self,
        ws: WorkspaceId,
        search: &crate::views::MessageSearch,
        limit: u32,
    ) -> Result<Vec<pronto_store::MessageView>, ApiError> {
        Ok(self.store.find_messages(ws, &search.query(limit)?).await?)
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Whether the store answers queries and accepts writes, within `within`; else why not (after a failed
    /// commit, such as a full disk, the failure that made writes stop).
    pub async fn ready(&self, within: std::time::Duration) -> Result<(), String> {
        match tokio::time::timeout(within, self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self
                .store
                .shared()
                .write_failure()
                .unwrap_or_else(|| e.to_string())),
            Err(_) => Err(format!(
                "the database did not answer within {} s",
                within.as_secs()
            )),
        }
    }

    pub async fn admin(&self, key: Option<&str>) -> Result<WorkspaceId, ApiError> {
        Ok(self.credential(KeyKind::Admin, key).await?.ws)
    }

    /// A write key from the Authorization header wins; otherwise the body's `writeKey`.
    async fn writer(&self, header_key: Option<&str>, body: &[u8]) -> Result<Credential, ApiError> {
        match header_key {
            Some(k) => self.credential(KeyKind::Write, Some(k)).await,
            None => {
                self.credential(KeyKind::Write, body_write_key(body).as_deref())
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

    /// One Segment message (`kind` given by the endpoint). Without a `messageId`, an `Idempotency-Key`
    /// stands in for it, scoped to this endpoint and credential.
    pub async fn segment_one(
        &self,
        kind: EventType,
        header_key: Option<&str>,
        idempotency_key: Result<Option<String>, Invalid>,
        body: &[u8],
    ) -> Result<Ingested, ApiError> {
        let who = self.writer(header_key, body).await?;
        let idempotency_key = idempotency_key?;
        let mut event = parse_single(body, kind, None, self.max_event_bytes, self.opts)?;
        let mut hash = None;
        if let Some(key) = idempotency_key.filter(|_| event.message_id.is_none()) {
            let k = Keyed::new(kind.as_str(), &who, key, body);
            hash = Some(k.hash.clone());
            event = event.keyed(k.scope, k.key, k.hash);
        }
        let done = self.commit(who.ws, vec![event.into()]).await?.remove(0);
        check_repeat(hash.as_deref(), &done)?;
        Ok(done)
    }

    /// A Segment batch, all or nothing (see [`pronto_domain::event::parse_batch`]).
    pub async fn segment_batch(
        &self,
        header_key: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<Ingested>, ApiError> {
        let who = self.writer(header_key, body).await?;
        let events = parse_batch(body, self.max_event_bytes, self.opts)?;
        self.commit(who.ws, events.into_iter().map(IngestItem::from).collect())
            .await
    }

    /// Counts one hit on each `(bucket, window, limit)`; 429 with the seconds until the window ends when one
    /// is over. Counted before anything is stored, so refused attempts count too (a client that hammers
    /// stays refused).
    pub(crate) async fn admit(
        &self,
        buckets: Vec<(String, std::time::Duration, u32)>,
    ) -> Result<(), ApiError> {
        let buckets: Vec<_> = buckets
            .into_iter()
            .filter(|(_, _, limit)| *limit > 0)
            .collect();
        if buckets.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let keys: Vec<(String, std::time::Duration)> =
            buckets.iter().map(|(b, w, _)| (b.clone(), *w)).collect();
        let hits = self.store.count_hits(&keys, now).await?;
        let wait = buckets
            .iter()
            .zip(hits)
            .filter(|((_, _, limit), n)| *n > u64::from(*limit))
            .map(|((_, window, _), _)| {
                let w = window.as_secs() as i64;
                (pronto_store::window_start(now, *window) + w - now.timestamp()).max(1) as u64
            })
            .max();
        match wait {
            Some(retry_after_secs) => {
                metrics::counter!("pronto_leads_rate_limited_total").increment(1);
                Err(ApiError::RateLimited { retry_after_secs })
            }
            None => Ok(()),
        }
    }

    /// Leads per client IP per minute, for `scope` (`leads`: the API, `form`: HTML forms).
    pub async fn admit_ip(&self, ip: std::net::IpAddr, scope: &str) -> Result<(), ApiError> {
        let limit = match scope {
            "form" => self.form_limit_per_minute,
            _ => self.limits.leads_per_ip_per_minute,
        };
        let minute = std::time::Duration::from_secs(60);
        self.admit(vec![(format!("ip:{scope}:{ip}"), minute, limit)])
            .await
    }

    /// Leads naming the same email or phone per hour: an acknowledgement repeats text the sender chose.
    async fn admit_recipients(&self, lead: &Lead) -> Result<(), ApiError> {
        let hour = std::time::Duration::from_secs(3600);
        let limit = self.limits.leads_per_recipient_per_hour;
        let buckets = lead
            .email
            .iter()
            .map(|e| e.as_str())
            .chain(lead.phone.iter().map(|p| p.as_str()))
            .map(|to| (format!("lead-to:{to}"), hour, limit))
            .collect();
        self.admit(buckets).await
    }

    /// `POST /v1/leads`.
    pub async fn lead_json(
        &self,
        header_key: Option<&str>,
        idempotency_key: Result<Option<String>, Invalid>,
        ip: std::net::IpAddr,
        body: &[u8],
    ) -> Result<LeadAccepted, ApiError> {
        let who = self.writer(header_key, body).await?;
        let idempotency_key = idempotency_key?;
        self.admit_ip(ip, "leads").await?;
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
        self.admit_recipients(&lead).await?;
        let keyed = idempotency_key.map(|k| Keyed::new("leads", &who, k, body));
        self.lead(who.ws, lead, keyed).await
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
        self.admit_recipients(&lead).await?;
        self.lead(self.default_workspace, lead, None)
            .await
            .map(Some)
    }

    pub(crate) async fn lead(
        &self,
        ws: WorkspaceId,
        lead: Lead,
        keyed: Option<Keyed>,
    ) -> Result<LeadAccepted, ApiError> {
        let mut event = lead.to_event(None);
        let hash = keyed.as_ref().map(|k| k.hash.clone());
        if let Some(k) = keyed {
            event = event.keyed(k.scope, k.key, k.hash);
        }
        let item = IngestItem {
            event,
            lead: Some(lead),
            action: None,
        };
        let done = self.commit(ws, vec![item]).await?.remove(0);
        check_repeat(hash.as_deref(), &done)?;
        // A key's scope holds only leads, so a repeat always names the lead it stored.
        let lead_id = done.lead_id.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "event {} answered for a lead has no lead",
                done.event_id
            ))
        })?;
        Ok(LeadAccepted {
            lead_id,
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
        if value.is_empty() {
            return Err(Invalid::one(*field, "is empty").into());
        }
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

impl Service {
    /// The flows' experiments over the period (`crate::experiments` builds it).
    pub async fn flows_report(
        &self,
        ws: WorkspaceId,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<crate::experiments::FlowsReport, ApiError> {
        let (from, to) = self.period(from, to)?;
        let program = self.store.shared().program();
        Ok(crate::experiments::flows_report(&*self.store, &program, ws, from, to).await?)
    }
}
