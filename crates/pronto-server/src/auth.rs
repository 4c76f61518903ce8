//! Who is using the web app: sign-in by a mailed link, by password or with the admin key; sessions;
//! the CSRF token every form of a session carries.
//!
//! Tokens (a link's, a session cookie's) are 32 random bytes; the store keeps only their SHA-256. A link
//! signs in once and only within `[app] sign_in_link`; opening it shows a button and signs nobody in, because
//! mail scanners open links. The sign-in form answers the same whether or not the address belongs to a user,
//! so it cannot be used to learn who works here. The admin key is posted once to open an admin session and
//! is never kept in the browser.
//!
//! A session's CSRF token is derived from its cookie token (SHA-256 with a label), so it needs no storage,
//! changes with every session and cannot be computed without the cookie, which scripts cannot read
//! (HttpOnly).

use crate::error::ApiError;
use crate::service::Service;
use base64::Engine;
use pronto_domain::access::{User, Users};
use pronto_domain::{Email, Invalid};
use pronto_store::{NewSession, Session};
use std::sync::Arc;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "pronto_session";
/// The cookie that protects the sign-in forms (there is no session yet to bind a token to).
pub const PRE_SESSION_COOKIE: &str = "pronto_signin";

/// A signed-in person on one request.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: User,
    pub session: Session,
    /// What every form of this session must send back as `csrf`.
    pub csrf: String,
}

/// A session just opened: the cookie to set.
#[derive(Debug)]
pub struct SignedIn {
    pub token: String,
    pub max_age: std::time::Duration,
}

/// What the sign-in form's "email me a link" did.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkSent {
    /// A link went out if the address is a user's (the answer does not say which).
    Mailed,
    /// No SMTP server is configured, so no link can be mailed.
    NoMailServer,
}

/// 32 random bytes, URL-safe.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap_or_else(|e| panic!("the OS random source failed: {e}"));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// What the store keeps of a token: its SHA-256, as API keys are kept ([`crate::keys::hash`]).
pub fn token_hash(token: &str) -> String {
    crate::keys::hash(token)
}

/// The CSRF token of the session whose cookie holds `token`.
pub fn csrf_of(token: &str) -> String {
    token_hash(&format!("csrf\0{token}"))[..32].to_string()
}

/// Compares secrets in time that depends only on their lengths (the service's comparison).
pub fn same_secret(a: &str, b: &str) -> bool {
    crate::service::constant_time_eq(a.as_bytes(), b.as_bytes())
}

/// Makes a sign-in link for `user`, valid from `now` for `ttl`, under `public_url`: the store keeps its
/// token's hash. The service mails it; `pronto sign-in-link` prints it for a server without SMTP.
pub async fn new_sign_in_link(
    store: &dyn pronto_store::Store,
    ws: pronto_domain::WorkspaceId,
    user: &User,
    public_url: &str,
    ttl: chrono::Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, pronto_store::StoreError> {
    let token = new_token();
    store
        .add_sign_in(ws, &user.id, &token_hash(&token), now, now + ttl)
        .await?;
    Ok(format!(
        "{}/app/sign-in/{token}",
        public_url.trim_end_matches('/')
    ))
}

/// An argon2id hash of `password` (PHC string) for `[[user]] password_hash`.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn password_matches(hash: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

impl Service {
    /// Everyone who may sign in, as the configuration now says.
    pub fn users(&self) -> Arc<Users> {
        self.users.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The person behind a session cookie: `None` when there is no live session or its user is no longer
    /// configured (taking someone out of the configuration ends their access at once).
    pub async fn viewer(&self, token: Option<&str>) -> Result<Option<Viewer>, ApiError> {
        let Some(token) = token.filter(|t| !t.is_empty() && t.len() <= 100) else {
            return Ok(None);
        };
        let Some(session) = self
            .store
            .session(&token_hash(token), self.clock.now())
            .await?
        else {
            return Ok(None);
        };
        Ok(self.users().get(&session.user).map(|user| Viewer {
            user,
            session,
            csrf: csrf_of(token),
        }))
    }

    fn new_session<'a>(
        &self,
        hash: &'a str,
        method: &'a str,
        agent: Option<&'a str>,
    ) -> NewSession<'a> {
        let now = self.clock.now();
        NewSession {
            token_hash: hash,
            method,
            agent,
            now,
            expires_at: now + self.app.session_ttl,
        }
    }

    fn signed_in(&self, token: String) -> SignedIn {
        SignedIn {
            token,
            max_age: self
                .app
                .session_ttl
                .to_std()
                .unwrap_or(std::time::Duration::from_secs(86_400)),
        }
    }

    /// Sign-in attempts per client IP per minute and per address per hour: a form that mails links must not
    /// become a way to flood someone's inbox, nor a password form a way to guess.
    async fn admit_sign_in(&self, ip: std::net::IpAddr, who: Option<&str>) -> Result<(), ApiError> {
        let mut buckets = vec![(
            format!("ip:sign-in:{ip}"),
            std::time::Duration::from_secs(60),
            10,
        )];
        if let Some(w) = who {
            buckets.push((
                format!("sign-in:{w}"),
                std::time::Duration::from_secs(3600),
                10,
            ));
        }
        self.admit(buckets).await
    }

    /// "Email me a link": mails a sign-in link to `email` if it is a user's. Answers the same either way.
    pub async fn mail_sign_in_link(
        &self,
        email: &str,
        ip: std::net::IpAddr,
    ) -> Result<LinkSent, ApiError> {
        let address = Email::parse(email).map_err(|why| Invalid::one("email", why))?;
        self.admit_sign_in(ip, Some(address.as_str())).await?;
        let Some(smtp) = &self.app.smtp else {
            return Ok(LinkSent::NoMailServer);
        };
        let Some(user) = self.users().get(address.as_str()) else {
            tracing::info!("sign-in link asked for an address that is no user's");
            return Ok(LinkSent::Mailed);
        };
        let link = self.sign_in_link(&user).await?;
        let program = self.store.shared().program();
        let mail = pronto_channels::email::Email {
            from: program.messages.from.clone(),
            to: user.id.clone(),
            reply_to: None,
            subject: "Your pronto sign-in link".into(),
            text: format!(
                "Hello {},\n\nOpen this link to sign in to pronto. It works once, within {}:\n\n{link}\n\n\
                 If you did not ask for it, ignore this message: nobody can sign in without the link.\n",
                user.name,
                humantime::format_duration(
                    self.app.sign_in_ttl.to_std().unwrap_or_default()
                )
            ),
            html: None,
            idempotency_key: uuid::Uuid::now_v7().to_string(),
            list_unsubscribe: None,
            list_unsubscribe_mailto: None,
        };
        smtp.send(&mail).await.map_err(|e| {
            tracing::warn!(error = %e, "a sign-in link could not be mailed");
            ApiError::NotReady(format!("the sign-in link could not be mailed ({e})"))
        })?;
        Ok(LinkSent::Mailed)
    }

    /// A new sign-in link for `user` (mailed by [`Service::mail_sign_in_link`]).
    pub async fn sign_in_link(&self, user: &User) -> Result<String, ApiError> {
        let base = self.store.shared().program().messages.public_url.clone();
        Ok(new_sign_in_link(
            &*self.store,
            self.default_workspace,
            user,
            &base,
            self.app.sign_in_ttl,
            self.clock.now(),
        )
        .await?)
    }

    /// Who a sign-in link is for, if it still works; it stays unused.
    pub async fn sign_in_link_user(&self, token: &str) -> Result<Option<User>, ApiError> {
        if token.len() > 100 {
            return Ok(None);
        }
        let found = self
            .store
            .sign_in_user(&token_hash(token), self.clock.now())
            .await?;
        Ok(found.and_then(|(_, user)| self.users().get(&user)))
    }

    /// Uses a sign-in link: a new session, or `None` for a used, expired or unknown link (or a user no
    /// longer configured).
    pub async fn redeem_sign_in_link(
        &self,
        token: &str,
        agent: Option<&str>,
    ) -> Result<Option<SignedIn>, ApiError> {
        if token.len() > 100 || self.sign_in_link_user(token).await?.is_none() {
            return Ok(None);
        }
        let session_token = new_token();
        let hash = token_hash(&session_token);
        let opened = self
            .store
            .redeem_sign_in(&token_hash(token), self.new_session(&hash, "link", agent))
            .await?;
        Ok(opened.map(|_| self.signed_in(session_token)))
    }

    /// Signs in with an email and a password (only users given a `password_hash`).
    pub async fn password_sign_in(
        &self,
        email: &str,
        password: &str,
        agent: Option<&str>,
        ip: std::net::IpAddr,
    ) -> Result<Option<SignedIn>, ApiError> {
        let address = Email::parse(email).map_err(|why| Invalid::one("email", why))?;
        self.admit_sign_in(ip, Some(address.as_str())).await?;
        let user = self.users().get(address.as_str());
        let Some(hash) = user.as_ref().and_then(|u| u.password_hash.clone()) else {
            return Ok(None);
        };
        let candidate = password.to_string();
        // argon2 takes tens of milliseconds of CPU on purpose: off the async threads.
        let ok = tokio::task::spawn_blocking(move || password_matches(&hash, &candidate))
            .await
            .unwrap_or(false);
        if !ok {
            return Ok(None);
        }
        let token = new_token();
        let hash = token_hash(&token);
        let user = user.map(|u| u.id).unwrap_or_default();
        self.store
            .start_session(
                self.default_workspace,
                &user,
                self.new_session(&hash, "password", agent),
            )
            .await?;
        Ok(Some(self.signed_in(token)))
    }

    /// Opens an admin session with the admin key (checked as the API checks it).
    pub async fn admin_key_sign_in(
        &self,
        key: &str,
        agent: Option<&str>,
        ip: std::net::IpAddr,
    ) -> Result<Option<SignedIn>, ApiError> {
        self.admit_sign_in(ip, None).await?;
        let ws = match self.admin(Some(key)).await {
            Ok(ws) => ws,
            Err(ApiError::BadAdminKey) => return Ok(None),
            Err(e) => return Err(e),
        };
        let token = new_token();
        let hash = token_hash(&token);
        self.store
            .start_session(
                ws,
                pronto_domain::access::ADMIN_KEY_USER,
                self.new_session(&hash, "admin-key", agent),
            )
            .await?;
        Ok(Some(self.signed_in(token)))
    }

    /// Ends the viewer's own session.
    pub async fn sign_out(&self, viewer: &Viewer) -> Result<(), ApiError> {
        self.store
            .end_session(
                viewer.session.workspace_id,
                &viewer.session.id,
                self.clock.now(),
            )
            .await?;
        Ok(())
    }

    /// The workspace's live sessions (admins only).
    pub async fn sessions(&self, viewer: &Viewer) -> Result<Vec<Session>, ApiError> {
        self.require_admin(viewer)?;
        Ok(self
            .store
            .sessions(viewer.session.workspace_id, self.clock.now())
            .await?)
    }

    /// Ends someone's session at once (admins only).
    pub async fn revoke_session(&self, viewer: &Viewer, id: &str) -> Result<Session, ApiError> {
        self.require_admin(viewer)?;
        self.store
            .end_session(viewer.session.workspace_id, id, self.clock.now())
            .await?
            .ok_or(ApiError::NotFound("session"))
    }

    fn require_admin(&self, viewer: &Viewer) -> Result<(), ApiError> {
        if viewer.user.role == pronto_domain::access::Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("only an admin may do this"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_verifies_its_password_and_nothing_else() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches(&h, "correct horse"));
        assert!(!password_matches(&h, "correct horse "));
        assert!(!password_matches("not a hash", "correct horse"));
    }

    #[test]
    fn tokens_are_random_and_only_their_hashes_and_csrf_derive_from_them() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_ne!(csrf_of(&a), csrf_of(&b));
        assert!(!token_hash(&a).contains(&a));
        assert!(same_secret(&csrf_of(&a), &csrf_of(&a)));
        assert!(!same_secret(&csrf_of(&a), &csrf_of(&b)));
        assert!(!same_secret("abc", "abcd"));
    }
}
