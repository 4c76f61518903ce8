//! Who may use the web app and what each person may see and do: users, their roles, and the one rule that
//! decides whether a lead is theirs to see.
//!
//! Users come from two places. Every `[[rep]]` with an email is a user with the role `rep`; a rep named as a
//! team's `manager` also manages that team. `[[user]]` adds managers and admins who are not reps (an owner,
//! a sales lead) and may give anyone a password. A `[[user]]` with a rep's email is that rep, with the
//! role and password it states. The admin key signs in as the built-in [`User::admin_key`].
//!
//! Users are read from the configuration on every request, so removing someone from it takes their access
//! away at once, even with a live session.

use crate::error::{FieldError, Invalid};
use crate::identity::Email;
use crate::sales::lead::LeadState;
use crate::sales::Sales;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Works their own and their teams' leads.
    Rep,
    /// Sees and reassigns the leads of the teams they manage (every team when none is named).
    Manager,
    /// Sees everything and manages sessions.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rep => "rep",
            Self::Manager => "manager",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "rep" => Ok(Self::Rep),
            "manager" => Ok(Self::Manager),
            "admin" => Ok(Self::Admin),
            _ => Err(()),
        }
    }
}

/// `[[user]]` as written.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub email: String,
    pub name: Option<String>,
    /// `rep`, `manager` or `admin`; default `manager`.
    pub role: Option<String>,
    /// For a manager: the teams they manage (default: every team).
    #[serde(default)]
    pub teams: Vec<String>,
    /// An argon2 hash (PHC string, as `pronto password-hash` prints): this user may also sign in with a
    /// password. Without it, only a mailed link signs them in.
    pub password_hash: Option<String>,
}

/// A person who may sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Their email, lower-cased: what sessions and sign-in links name.
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The rep they are, if any: their leads, alerts and call tasks.
    pub rep: Option<String>,
    /// The teams they see: a rep's own teams plus those they manage; empty for an admin or a manager of
    /// every team (who see all).
    pub teams: Vec<String>,
    pub password_hash: Option<String>,
}

/// The id of the user the admin key signs in as. Not an email, so no configured user can take it.
pub const ADMIN_KEY_USER: &str = "admin-key";

impl User {
    /// The user a session opened with the admin key belongs to.
    pub fn admin_key() -> Self {
        Self {
            id: ADMIN_KEY_USER.into(),
            name: "Administrator (admin key)".into(),
            role: Role::Admin,
            rep: None,
            teams: Vec::new(),
            password_hash: None,
        }
    }

    /// Whether this user sees every team's leads.
    pub fn sees_all(&self) -> bool {
        self.role == Role::Admin || (self.role == Role::Manager && self.teams.is_empty())
    }

    /// The one visibility rule: a lead is visible to an admin, to a manager of its team (or of every team),
    /// and to a rep who owns it or is in its team. A lead with no team and no owner is only for those who
    /// see everything.
    pub fn may_see(&self, lead: &LeadState) -> bool {
        self.may_see_held(lead.owner.as_deref(), lead.team.as_deref())
    }

    /// [`User::may_see`] for a lead owned by `owner` in `team`.
    pub fn may_see_held(&self, owner: Option<&str>, team: Option<&str>) -> bool {
        if self.sees_all() {
            return true;
        }
        let owns = self.rep.is_some() && owner == self.rep.as_deref();
        let in_team = team.is_some_and(|t| self.teams.iter().any(|m| m == t));
        owns || in_team
    }

    /// Whether this user may hand a lead to someone else.
    pub fn may_reassign(&self, lead: &LeadState) -> bool {
        self.role >= Role::Manager && self.may_see(lead)
    }
}

/// Everyone who may sign in, built from the reps and `[[user]]`s.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Users {
    users: Vec<User>,
}

impl Users {
    /// Checks `[[user]]`s against the reps and teams; every problem names `user[i].field`.
    pub fn build(configs: &[UserConfig], sales: &Sales) -> Result<Self, Invalid> {
        let mut errors = Vec::new();
        let mut users: Vec<User> = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let field = |f: &str| format!("user[{i}].{f}");
            let email = match Email::parse(&c.email) {
                Ok(e) => e.as_str().to_string(),
                Err(why) => {
                    errors.push(FieldError::new(field("email"), why));
                    continue;
                }
            };
            if users.iter().any(|u| u.id == email) {
                errors.push(FieldError::new(
                    field("email"),
                    format!("`{email}` is listed twice"),
                ));
            }
            let role = match c.role.as_deref().unwrap_or("manager").parse::<Role>() {
                Ok(r) => r,
                Err(()) => {
                    errors.push(FieldError::new(
                        field("role"),
                        "must be rep, manager or admin",
                    ));
                    continue;
                }
            };
            let rep = rep_with_email(sales, &email);
            if role == Role::Rep && rep.is_none() {
                errors.push(FieldError::new(
                    field("role"),
                    format!("is rep, but no [[rep]] has the email `{email}`"),
                ));
            }
            for t in &c.teams {
                if !sales.teams.iter().any(|team| team.id == *t) {
                    errors.push(FieldError::new(field("teams"), format!("no team `{t}`")));
                }
            }
            if !c.teams.is_empty() && role != Role::Manager {
                errors.push(FieldError::new(
                    field("teams"),
                    "only a manager is limited to teams",
                ));
            }
            if let Some(h) = &c.password_hash {
                if !h.starts_with("$argon2") {
                    errors.push(FieldError::new(
                        field("password_hash"),
                        "must be an argon2 hash (`pronto password-hash` prints one)",
                    ));
                }
            }
            let name = c
                .name
                .clone()
                .or_else(|| rep.and_then(|r| sales.rep(r)).map(|r| r.name.clone()))
                .unwrap_or_else(|| email.clone());
            let mut teams = if role == Role::Manager {
                c.teams.clone()
            } else {
                Vec::new()
            };
            if role == Role::Rep || (role == Role::Manager && !c.teams.is_empty()) {
                if let Some(r) = rep {
                    teams.extend(rep_teams(sales, r));
                }
            }
            teams.sort();
            teams.dedup();
            users.push(User {
                id: email,
                name,
                role,
                rep: rep.map(str::to_string),
                teams,
                password_hash: c.password_hash.clone(),
            });
        }
        if !errors.is_empty() {
            return Err(Invalid(errors));
        }
        for r in &sales.reps {
            let Some(email) = r.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
                continue;
            };
            let id = email.as_str().to_string();
            if users.iter().any(|u| u.id == id) {
                continue;
            }
            let manages = sales
                .teams
                .iter()
                .any(|t| t.manager.as_deref() == Some(r.id.as_str()));
            users.push(User {
                id,
                name: r.name.clone(),
                role: if manages { Role::Manager } else { Role::Rep },
                rep: Some(r.id.clone()),
                teams: rep_teams(sales, &r.id),
                password_hash: None,
            });
        }
        Ok(Self { users })
    }

    /// The user with this id (an email, any case), or the admin key's user.
    pub fn get(&self, id: &str) -> Option<User> {
        if id == ADMIN_KEY_USER {
            return Some(User::admin_key());
        }
        let id = id.trim().to_lowercase();
        self.users.iter().find(|u| u.id == id).cloned()
    }

    pub fn all(&self) -> &[User] {
        &self.users
    }
}

fn rep_with_email<'a>(sales: &'a Sales, email: &str) -> Option<&'a str> {
    sales
        .reps
        .iter()
        .find(|r| {
            r.email
                .as_deref()
                .and_then(|e| Email::parse(e).ok())
                .is_some_and(|e| e.as_str() == email)
        })
        .map(|r| r.id.as_str())
}

/// The teams a rep is a member of, and those they manage.
fn rep_teams(sales: &Sales, rep: &str) -> Vec<String> {
    sales
        .teams
        .iter()
        .filter(|t| t.members.iter().any(|(m, _)| m == rep) || t.manager.as_deref() == Some(rep))
        .map(|t| t.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sales::{Rep, Team};

    fn rep(id: &str, email: Option<&str>) -> Rep {
        Rep {
            id: id.into(),
            name: format!("Rep {id}"),
            email: email.map(str::to_string),
            phone: None,
            webhook: None,
            timezone: chrono_tz::UTC,
            hours: None,
            capacity: None,
            alerts: Vec::new(),
            away: false,
        }
    }

    fn sales() -> Sales {
        Sales {
            reps: vec![
                rep("ann", Some("Ann@Example.com")),
                rep("bo", Some("bo@example.com")),
                rep("cy", Some("cy@example.com")),
                rep("dee", None),
            ],
            teams: vec![
                Team {
                    id: "north".into(),
                    members: vec![("ann".into(), 1), ("bo".into(), 1)],
                    manager: Some("bo".into()),
                },
                Team {
                    id: "south".into(),
                    members: vec![("cy".into(), 1)],
                    manager: None,
                },
            ],
            ..Sales::default()
        }
    }

    fn lead(team: Option<&str>, owner: Option<&str>) -> LeadState {
        let lead = crate::Lead::bare(7, None, None);
        let mut l = LeadState::arrived(
            &lead,
            lead.id,
            crate::WorkspaceId(uuid::Uuid::from_u128(1)),
            crate::ContactId(uuid::Uuid::from_u128(2)),
            chrono::Utc::now(),
        );
        l.team = team.map(str::to_string);
        l.owner = owner.map(str::to_string);
        l
    }

    #[test]
    fn reps_with_an_email_are_users_and_a_team_manager_manages() {
        let users = Users::build(&[], &sales()).unwrap();
        let ann = users.get("ANN@example.com").unwrap();
        assert_eq!((ann.role, ann.rep.as_deref()), (Role::Rep, Some("ann")));
        assert_eq!(ann.teams, vec!["north"]);
        let bo = users.get("bo@example.com").unwrap();
        assert_eq!(bo.role, Role::Manager);
        assert!(
            users.all().iter().all(|u| u.rep.as_deref() != Some("dee")),
            "a rep without an email cannot sign in"
        );
        assert_eq!(users.get("admin-key").unwrap().role, Role::Admin);
        assert!(users.get("nobody@example.com").is_none());
    }

    #[test]
    fn who_sees_which_lead() {
        let users = Users::build(
            &[
                UserConfig {
                    email: "owner@example.com".into(),
                    role: Some("admin".into()),
                    ..UserConfig::default()
                },
                UserConfig {
                    email: "south-lead@example.com".into(),
                    teams: vec!["south".into()],
                    ..UserConfig::default()
                },
                UserConfig {
                    email: "vp@example.com".into(),
                    ..UserConfig::default()
                },
            ],
            &sales(),
        )
        .unwrap();
        // (user, lead team, lead owner, sees it)
        let cases = [
            ("ann@example.com", Some("north"), None, true),
            ("ann@example.com", Some("north"), Some("bo"), true),
            ("ann@example.com", Some("south"), None, false),
            ("ann@example.com", Some("south"), Some("ann"), true),
            ("ann@example.com", None, None, false),
            ("cy@example.com", Some("north"), None, false),
            ("bo@example.com", Some("north"), None, true),
            ("bo@example.com", Some("south"), None, false),
            ("south-lead@example.com", Some("south"), None, true),
            ("south-lead@example.com", Some("north"), None, false),
            ("vp@example.com", Some("north"), None, true),
            ("vp@example.com", None, None, true),
            ("owner@example.com", None, None, true),
            ("admin-key", Some("south"), None, true),
        ];
        for (who, team, owner, sees) in cases {
            let u = users.get(who).unwrap();
            assert_eq!(
                u.may_see(&lead(team, owner)),
                sees,
                "{who} and a lead of team {team:?} owned by {owner:?}"
            );
        }
        assert!(!users
            .get("ann@example.com")
            .unwrap()
            .may_reassign(&lead(Some("north"), None)));
        assert!(users
            .get("bo@example.com")
            .unwrap()
            .may_reassign(&lead(Some("north"), None)));
    }

    #[test]
    fn a_user_entry_that_does_not_add_up_names_its_field() {
        let cases = [
            (
                UserConfig {
                    email: "not-an-email".into(),
                    ..UserConfig::default()
                },
                "user[0].email",
            ),
            (
                UserConfig {
                    email: "x@example.com".into(),
                    role: Some("boss".into()),
                    ..UserConfig::default()
                },
                "user[0].role",
            ),
            (
                UserConfig {
                    email: "x@example.com".into(),
                    role: Some("rep".into()),
                    ..UserConfig::default()
                },
                "user[0].role",
            ),
            (
                UserConfig {
                    email: "x@example.com".into(),
                    teams: vec!["west".into()],
                    ..UserConfig::default()
                },
                "user[0].teams",
            ),
            (
                UserConfig {
                    email: "x@example.com".into(),
                    password_hash: Some("hunter2".into()),
                    ..UserConfig::default()
                },
                "user[0].password_hash",
            ),
        ];
        for (config, field) in cases {
            let err = Users::build(&[config], &sales()).unwrap_err();
            assert!(
                err.0.iter().any(|e| e.field == field),
                "expected an error on {field}: {err:?}"
            );
        }
    }

    #[test]
    fn a_user_entry_with_a_reps_email_is_that_rep_with_its_role_and_password() {
        let users = Users::build(
            &[UserConfig {
                email: "ann@example.com".into(),
                role: Some("rep".into()),
                password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$x$y".into()),
                ..UserConfig::default()
            }],
            &sales(),
        )
        .unwrap();
        let ann = users.get("ann@example.com").unwrap();
        assert_eq!(ann.rep.as_deref(), Some("ann"));
        assert_eq!(ann.name, "Rep ann");
        assert!(ann.password_hash.is_some());
        assert_eq!(
            users
                .all()
                .iter()
                .filter(|u| u.id == "ann@example.com")
                .count(),
            1
        );
    }
}
