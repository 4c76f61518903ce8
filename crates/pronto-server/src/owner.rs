//! What a shop owner (an admin) works with: recovery at a glance over a period (every flow's funnel, its
//! holdout and its message steps; the experiments' results beside them), the messages explorer, a message
//! as it was sent, and a contact's timeline. Admins only: these pages show every customer's messages.

use crate::auth::Viewer;
use crate::error::ApiError;
use crate::experiments::{counts_between, flows_report_of};
use crate::service::{ContactPage, Service};
pub use crate::views::{MessageSearch, StateFilter, MESSAGE_STATES};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use pronto_domain::access::{Role, User};
use pronto_domain::experiment::recovery::{recovery, FlowRecovery};
use pronto_domain::experiment::results::ExperimentResult;
use pronto_domain::{ContactId, Invalid, MessageId};
use pronto_store::{MessageQuery, MessageView, RunsOf};
use std::collections::BTreeMap;

/// How many messages one page of the explorer lists.
pub const MESSAGES_PAGE: u32 = 50;

/// Every flow's recovery over a period.
#[derive(Debug)]
pub struct Recovery {
    pub user: User,
    pub zone: Tz,
    pub flows: Vec<FlowRecovery>,
    /// The flows' experiments over the same period, with their intervals (the flows report).
    pub experiments: Vec<ExperimentResult>,
    /// The period as the form shows it (dates in the business's time zone).
    pub from: String,
    pub to: String,
}

/// One page of the explorer.
#[derive(Debug)]
pub struct Messages {
    pub user: User,
    pub zone: Tz,
    pub search: MessageSearch,
    /// The configured flows, for the filter.
    pub flows: Vec<String>,
    pub messages: Vec<MessageView>,
    /// Pass as `before` for the next page; absent on the last.
    pub next: Option<MessageId>,
}

/// A contact with what it did and what pronto sent it.
#[derive(Debug)]
pub struct ContactStory {
    pub user: User,
    pub zone: Tz,
    pub page: ContactPage,
    /// The newest messages to it.
    pub messages: Vec<MessageView>,
}

impl Service {
    fn owner(viewer: &Viewer) -> Result<(), ApiError> {
        if viewer.user.role < Role::Admin {
            return Err(ApiError::Forbidden("the shop's pages are for admins"));
        }
        Ok(())
    }

    /// Every flow's recovery over `[from, to)` (dates or RFC 3339 times; default the last 30 days) and the
    /// experiments' results over the same period, from one read of the kept counts of every run started in
    /// it (`crate::experiments::counts_between`).
    pub async fn recovery(
        &self,
        viewer: &Viewer,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Recovery, ApiError> {
        Self::owner(viewer)?;
        let ws = viewer.session.workspace_id;
        let (from_at, to_at) = self.period(from, to)?;
        let program = self.store.shared().program();
        let rules = crate::experiments::conversion_rules(&program);
        let period = (from_at, to_at);
        let counts = counts_between(&*self.store, ws, period, &rules, RunsOf::EveryFlow).await?;
        let flows = recovery(&counts, &program.flows);
        let experiments: BTreeMap<_, _> = counts
            .into_iter()
            .filter(|((_, experiment), _)| !experiment.is_empty())
            .collect();
        let experiments = flows_report_of(&*self.store, &program, ws, period, experiments)
            .await?
            .experiments;
        let day = |t: DateTime<Utc>| {
            t.with_timezone(&program.sales.timezone)
                .format("%Y-%m-%d")
                .to_string()
        };
        Ok(Recovery {
            user: viewer.user.clone(),
            zone: self.zone_of(&viewer.user),
            flows,
            experiments,
            from: day(from_at),
            to: day(to_at - chrono::Duration::seconds(1)),
        })
    }

    /// One page of the messages explorer, newest first.
    pub async fn explore_messages(
        &self,
        viewer: &Viewer,
        search: MessageSearch,
    ) -> Result<Messages, ApiError> {
        Self::owner(viewer)?;
        let q = search.query(MESSAGES_PAGE)?;
        let messages = self
            .store
            .find_messages(viewer.session.workspace_id, &q)
            .await?;
        let next = (messages.len() == q.limit as usize)
            .then(|| messages.last().map(|m| m.id))
            .flatten();
        Ok(Messages {
            user: viewer.user.clone(),
            zone: self.zone_of(&viewer.user),
            search,
            flows: self
                .store
                .shared()
                .program()
                .flows
                .iter()
                .map(|f| f.id.clone())
                .collect(),
            messages,
            next,
        })
    }

    /// One message, as it was sent.
    pub async fn message_as_sent(
        &self,
        viewer: &Viewer,
        id: &str,
    ) -> Result<(User, Tz, MessageView), ApiError> {
        Self::owner(viewer)?;
        let id: MessageId = id
            .parse()
            .map_err(|_| Invalid::one("id", "is not a message id (a UUID)"))?;
        let q = MessageQuery {
            id: Some(id),
            ..MessageQuery::newest(1)
        };
        let m = self
            .store
            .find_messages(viewer.session.workspace_id, &q)
            .await?
            .pop()
            .ok_or(ApiError::NotFound("message"))?;
        Ok((viewer.user.clone(), self.zone_of(&viewer.user), m))
    }

    /// A contact's timeline: its traits and identities, its events (newest 100), its runs and the newest
    /// messages pronto sent it.
    pub async fn contact_story(&self, viewer: &Viewer, id: &str) -> Result<ContactStory, ApiError> {
        Self::owner(viewer)?;
        let ws = viewer.session.workspace_id;
        let id: ContactId = id
            .parse()
            .map_err(|_| Invalid::one("id", "is not a contact id (a UUID)"))?;
        let page = self.contact_page(ws, id, None, 100).await?;
        let q = MessageQuery {
            contact: Some(page.contact.id),
            ..MessageQuery::newest(MESSAGES_PAGE)
        };
        let messages = self.store.find_messages(ws, &q).await?;
        Ok(ContactStory {
            user: viewer.user.clone(),
            zone: self.zone_of(&viewer.user),
            page,
            messages,
        })
    }
}
