//! What a signed-in person works with: a rep's inbox (their own and their teams' leads, new first), a
//! lead's story, and the actions on a lead taken as themselves. Every lead read here passes
//! [`User::may_see`]; a lead that does not answers 403, whatever its id.

use crate::auth::Viewer;
use crate::error::ApiError;
use crate::sales::{AttemptRequest, RepView, SpeedToLead, TaskItem};
use crate::service::Service;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use pronto_domain::access::User;
use pronto_domain::report::business::{by_week, top_words, Channel};
use pronto_domain::sales::lead::LeadStatus;
use pronto_store::{LeadFilter, LeadState, LeadView, RunView};

/// How many leads of each state an inbox lists.
pub const INBOX_LIMIT: u32 = 50;

/// How many of the leads' most common words the board shows.
pub const WORDS: usize = 20;

/// The outcomes a rep logs for a call, in the order the buttons show them.
pub const CALL_OUTCOMES: [(&str, &str); 5] = [
    ("reached", "Reached"),
    ("no_answer", "No answer"),
    ("voicemail", "Voicemail"),
    ("won", "Won"),
    ("lost", "Lost"),
];

/// A person's inbox as of `now`.
#[derive(Debug)]
pub struct Inbox {
    pub user: User,
    /// The zone times are written in: the rep's, else UTC (the browser rewrites them into its own).
    pub zone: Tz,
    pub now: DateTime<Utc>,
    /// Unclaimed leads, newest first: what the rep should call now.
    pub new: Vec<LeadState>,
    /// Claimed or contacted, not yet won or lost, newest first.
    pub working: Vec<LeadState>,
    /// The rep's open call tasks due by the end of today (in their zone), earliest first: the first
    /// [`INBOX_LIMIT`].
    pub tasks: Vec<TaskItem>,
    /// How many more are due today beyond those (a backlog shows as a number, not a page of cards).
    pub more_tasks: usize,
    /// The rep's away flag (`None` for someone who is not a rep).
    pub away: Option<bool>,
}

/// A lead with everything that happened to it.
#[derive(Debug)]
pub struct LeadStory {
    pub user: User,
    pub zone: Tz,
    pub now: DateTime<Utc>,
    pub view: LeadView,
    /// The contact's flow runs (acknowledgement, cadence): what pronto sent them.
    pub runs: Vec<RunView>,
}

/// A manager's team board: who can take leads now, the leads nobody has taken, and speed to lead over a
/// period.
#[derive(Debug)]
pub struct Board {
    pub user: User,
    pub zone: Tz,
    pub now: DateTime<Utc>,
    /// The reps of the viewer's teams (every rep for someone who sees all).
    pub reps: Vec<RepView>,
    /// Unclaimed leads the viewer sees: past their SLA first, then newest first.
    pub unclaimed: Vec<LeadState>,
    /// Per team the viewer sees: its members (id, name), whom its leads may be handed to.
    pub teams: Vec<(String, Vec<(String, String)>)>,
    /// Speed to lead over the chosen period, of the viewer's teams' leads.
    pub report: SpeedToLead,
    /// Per week of the period: those leads by channel, beside the shop's checkouts and orders.
    pub business: Vec<pronto_domain::report::business::Week>,
    /// The words those leads used most in their messages, with how many leads used each.
    pub words: Vec<(String, u64)>,
    /// The period as the form shows it (dates in the business's time zone).
    pub from: String,
    pub to: String,
}

impl Service {
    /// The board (managers and admins): reps, unclaimed leads, speed to lead for `[from, to)` (dates or RFC
    /// 3339 times; default the last 30 days).
    pub async fn board(
        &self,
        viewer: &Viewer,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Board, ApiError> {
        let user = &viewer.user;
        if user.role < pronto_domain::access::Role::Manager {
            return Err(ApiError::Forbidden("the board is for managers and admins"));
        }
        let ws = viewer.session.workspace_id;
        let now = self.clock.now();
        let (from_at, to_at) = self.period(from, to)?;
        let program = self.store.shared().program();
        let sales = &program.sales;
        let sees = |team: &str| user.sees_all() || user.teams.iter().any(|t| t == team);
        let reps = self
            .reps(ws)
            .await?
            .reps
            .into_iter()
            .filter(|r| user.sees_all() || r.teams.iter().any(|t| sees(t)))
            .collect();
        let mut unclaimed = self.visible(viewer, LeadStatus::Open).await?;
        unclaimed.retain(|l| l.claimed_at.is_none());
        let late = |l: &LeadState| l.sla_deadline.is_some_and(|d| d <= now);
        unclaimed.sort_by_key(|l| (!late(l), std::cmp::Reverse(l.id)));
        let teams = sales
            .teams
            .iter()
            .filter(|t| sees(&t.id))
            .map(|t| {
                let members = t
                    .members
                    .iter()
                    .map(|(m, _)| {
                        let name = sales
                            .rep(m)
                            .map(|r| r.name.clone())
                            .unwrap_or_else(|| m.clone());
                        (m.clone(), name)
                    })
                    .collect();
                (t.id.clone(), members)
            })
            .collect();
        let (report, (business, words)) = self
            .report_and(
                ws,
                from_at,
                to_at,
                |l| user.may_see_held(l.owner.as_deref(), l.team.as_deref()),
                |leads, commerce| {
                    let channels: Vec<_> = leads
                        .iter()
                        .map(|l| {
                            (
                                l.timing.created,
                                Channel::of(l.form.as_deref(), l.source.as_deref()),
                            )
                        })
                        .collect();
                    let words = top_words(leads.iter().map(|l| &l.words[..]), WORDS);
                    (by_week(&channels, commerce, sales.timezone), words)
                },
            )
            .await?;
        let day = |t: DateTime<Utc>| {
            t.with_timezone(&sales.timezone)
                .format("%Y-%m-%d")
                .to_string()
        };
        Ok(Board {
            user: user.clone(),
            zone: self.zone_of(user),
            now,
            reps,
            unclaimed,
            teams,
            report,
            business,
            words,
            from: day(from_at),
            // The form's `to` is the last day included.
            to: day(to_at - chrono::Duration::seconds(1)),
        })
    }

    pub(crate) fn zone_of(&self, user: &User) -> Tz {
        user.rep
            .as_deref()
            .and_then(|r| {
                self.store
                    .shared()
                    .program()
                    .sales
                    .rep(r)
                    .map(|r| r.timezone)
            })
            .unwrap_or(chrono_tz::UTC)
    }

    /// Leads of one status the viewer may see, newest first: all of them for someone who sees every team,
    /// else their teams' and their own, merged.
    async fn visible(
        &self,
        viewer: &Viewer,
        status: LeadStatus,
    ) -> Result<Vec<LeadState>, ApiError> {
        let ws = viewer.session.workspace_id;
        let limit = i64::from(INBOX_LIMIT);
        let user = &viewer.user;
        let mut filters = Vec::new();
        if user.sees_all() {
            filters.push(LeadFilter {
                status: Some(status),
                ..LeadFilter::default()
            });
        } else {
            for t in &user.teams {
                filters.push(LeadFilter {
                    status: Some(status),
                    team: Some(t.clone()),
                    ..LeadFilter::default()
                });
            }
            if let Some(r) = &user.rep {
                filters.push(LeadFilter {
                    status: Some(status),
                    owner: Some(r.clone()),
                    ..LeadFilter::default()
                });
            }
        }
        let mut out: Vec<LeadState> = Vec::new();
        for f in filters {
            for l in self.store.leads(ws, &f, limit).await? {
                if !out.iter().any(|o| o.id == l.id) && user.may_see(&l) {
                    out.push(l);
                }
            }
        }
        out.sort_by_key(|l| std::cmp::Reverse(l.id));
        out.truncate(INBOX_LIMIT as usize);
        Ok(out)
    }

    /// The viewer's inbox.
    pub async fn inbox(&self, viewer: &Viewer) -> Result<Inbox, ApiError> {
        let now = self.clock.now();
        let zone = self.zone_of(&viewer.user);
        let new = self.visible(viewer, LeadStatus::Open).await?;
        let mut working = self.visible(viewer, LeadStatus::Claimed).await?;
        working.extend(self.visible(viewer, LeadStatus::Contacted).await?);
        working.sort_by_key(|l| std::cmp::Reverse(l.id));
        let (tasks, away) = match &viewer.user.rep {
            Some(rep) => {
                let end_of_day = now
                    .with_timezone(&zone)
                    .date_naive()
                    .succ_opt()
                    .and_then(|d| {
                        d.and_hms_opt(0, 0, 0)
                            .and_then(|t| t.and_local_timezone(zone).earliest())
                    });
                let tasks = self
                    .tasks(viewer.session.workspace_id, Some(rep), false)
                    .await?
                    .tasks
                    .into_iter()
                    .filter(|t| end_of_day.is_none_or(|e| t.task.due_at < e))
                    .collect();
                let status = self
                    .store
                    .rep_status(viewer.session.workspace_id, std::slice::from_ref(rep))
                    .await?;
                let configured = self
                    .store
                    .shared()
                    .program()
                    .sales
                    .rep(rep)
                    .is_some_and(|r| r.away);
                let away = status
                    .away
                    .iter()
                    .find(|(id, _)| id == rep)
                    .map(|(_, a)| *a)
                    .unwrap_or(configured);
                (tasks, Some(away))
            }
            None => (Vec::new(), None),
        };
        let mut tasks = tasks;
        let more_tasks = tasks.len().saturating_sub(INBOX_LIMIT as usize);
        tasks.truncate(INBOX_LIMIT as usize);
        Ok(Inbox {
            user: viewer.user.clone(),
            zone,
            now,
            new,
            working,
            tasks,
            more_tasks,
            away,
        })
    }

    /// A lead the viewer may see; 403 for another team's, 404 for none.
    async fn visible_lead(&self, viewer: &Viewer, id: &str) -> Result<LeadView, ApiError> {
        let view = self.lead_view(viewer.session.workspace_id, id).await?;
        if viewer.user.may_see(&view.lead) {
            Ok(view)
        } else {
            Err(ApiError::Forbidden("this lead belongs to another team"))
        }
    }

    /// A lead's whole story, for the viewer.
    pub async fn lead_story(&self, viewer: &Viewer, id: &str) -> Result<LeadStory, ApiError> {
        let view = self.visible_lead(viewer, id).await?;
        let runs = self
            .store
            .contact_runs(viewer.session.workspace_id, view.lead.contact_id)
            .await?;
        Ok(LeadStory {
            zone: self.zone_of(&viewer.user),
            user: viewer.user.clone(),
            now: self.clock.now(),
            view,
            runs,
        })
    }

    fn rep_of<'a>(&self, viewer: &'a Viewer) -> Result<&'a str, ApiError> {
        viewer.user.rep.as_deref().ok_or(ApiError::Forbidden(
            "only a rep can take leads and log calls",
        ))
    }

    /// "I'm on it", as the viewer.
    pub async fn claim_as(&self, viewer: &Viewer, id: &str) -> Result<LeadView, ApiError> {
        let rep = self.rep_of(viewer)?;
        self.visible_lead(viewer, id).await?;
        self.claim(viewer.session.workspace_id, id, rep).await
    }

    /// Logs a call the viewer made.
    pub async fn log_call(
        &self,
        viewer: &Viewer,
        id: &str,
        outcome: &str,
        note: Option<String>,
    ) -> Result<LeadView, ApiError> {
        let rep = self.rep_of(viewer)?;
        self.visible_lead(viewer, id).await?;
        let req = AttemptRequest {
            rep: Some(rep.to_string()),
            channel: "call".into(),
            outcome: outcome.to_string(),
            note: note.filter(|n| !n.trim().is_empty()),
            at: None,
            value: None,
            currency: None,
        };
        self.attempt(viewer.session.workspace_id, id, req).await
    }

    /// A manager hands a lead to `rep` by hand: a rep of the lead's team (any rep for a lead without one);
    /// the rep is alerted. 403 for someone who may not reassign this lead.
    pub async fn reassign_as(
        &self,
        viewer: &Viewer,
        id: &str,
        rep: &str,
    ) -> Result<LeadView, ApiError> {
        let view = self.visible_lead(viewer, id).await?;
        if !viewer.user.may_reassign(&view.lead) {
            return Err(ApiError::Forbidden(
                "only a manager of the lead's team may reassign it",
            ));
        }
        let program = self.store.shared().program();
        let sales = &program.sales;
        let in_team = match view
            .lead
            .team
            .as_deref()
            .and_then(|t| sales.teams.iter().find(|x| x.id == t))
        {
            Some(team) => team.members.iter().any(|(m, _)| m == rep),
            None => sales.rep(rep).is_some(),
        };
        if !in_team {
            return Err(pronto_domain::Invalid::one(
                "rep",
                format!("`{rep}` is not a rep of the lead's team"),
            )
            .into());
        }
        if view.lead.owner.as_deref() != Some(rep) && view.lead.is_open() {
            let mut props = serde_json::Map::new();
            props.insert("lead_id".into(), serde_json::json!(view.lead.id));
            props.insert("rep".into(), serde_json::json!(rep));
            props.insert("by".into(), serde_json::json!(viewer.user.id));
            let action = pronto_store::LeadAction::Reassign {
                lead: view.lead.id,
                rep: rep.to_string(),
                by: viewer.user.id.clone(),
            };
            self.act(
                viewer.session.workspace_id,
                &view.lead,
                pronto_domain::sales::LEAD_REASSIGNED,
                props,
                action,
            )
            .await?;
        }
        self.lead_view(viewer.session.workspace_id, id).await
    }

    /// Sets the viewer's own away flag.
    pub async fn set_own_away(&self, viewer: &Viewer, away: bool) -> Result<(), ApiError> {
        let rep = self.rep_of(viewer)?;
        self.set_away(viewer.session.workspace_id, rep, away).await
    }
}
