//! Provides the console's sessions: random session ids in an HttpOnly `SameSite=Strict`
//! cookie, mapped on this node to the role the login token granted and to a CSRF token
//! bound to the session. The cookie never holds an API token.
//!
//! Owns only this in-memory map (no database, no HTTP routing); `guard` decides what a
//! request may do with the session it presents.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::HttpRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::auth::Role;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "wakeplane_session";
/// The login form's double-submit cookie (there is no session before the login).
pub const LOGIN_COOKIE: &str = "wakeplane_login";
/// A session ends this long after its login, whatever happens in between.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest goes first when a new one would exceed it.
const MAX_SESSIONS: usize = 10_000;

/// What a session grants.
#[derive(Debug, Clone)]
pub struct Session {
    /// The login token's role; `None` when auth is off (everything is allowed, as in the
    /// API without tokens).
    pub role: Option<Role>,
    /// Sent back in every form; a POST without it is refused.
    pub csrf: String,
    created: Instant,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// Every live session of this node, keyed by the SHA-256 of its id (the id itself is only
/// in the browser's cookie). Created empty at start-up; a restart logs everyone out.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

/// 32 random bytes from the operating system, base64url.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<[u8; 32], Session>) -> T) -> T {
        let mut guard = match self.map.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Starts a session granting `role`; returns its id (for the cookie) and the session.
    pub fn start(&self, role: Option<Role>) -> Result<(String, Session), getrandom::Error> {
        let id = random_token()?;
        let session = Session {
            role,
            csrf: random_token()?,
            created: Instant::now(),
        };
        let stored = session.clone();
        self.with(|map| {
            map.retain(|_, s| s.created.elapsed() < SESSION_LIFETIME);
            if map.len() >= MAX_SESSIONS {
                if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
            map.insert(key(&id), stored);
        });
        Ok((id, session))
    }

    /// The live session with this id, if any.
    pub fn find(&self, id: &str) -> Option<Session> {
        let k = key(id);
        self.with(|map| match map.get(&k) {
            Some(s) if s.created.elapsed() < SESSION_LIFETIME => Some(s.clone()),
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        })
    }

    /// Ends the session with this id (logout).
    pub fn end(&self, id: &str) {
        let k = key(id);
        self.with(|map| map.remove(&k));
    }
}

/// The session cookie for `id`: HttpOnly, `SameSite=Strict`, scoped to the console, and
/// `Secure` when the request came over HTTPS.
pub fn session_cookie(req: &HttpRequest, id: String) -> Cookie<'static> {
    console_cookie(req, SESSION_COOKIE, id, SESSION_LIFETIME)
}

/// A console cookie with the same attributes as the session's.
pub fn console_cookie(
    req: &HttpRequest,
    name: &'static str,
    value: String,
    max_age: Duration,
) -> Cookie<'static> {
    let secure = req.connection_info().scheme() == "https";
    Cookie::build(name, value)
        .path("/ui")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ))
        .finish()
}

/// A cookie that makes the browser forget `name`.
pub fn removal_cookie(name: &'static str) -> Cookie<'static> {
    let mut c = Cookie::build(name, "").path("/ui").finish();
    c.make_removal();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_find_and_end() {
        let sessions = Sessions::default();
        let (id, s) = sessions.start(Some(Role::Viewer)).unwrap();
        assert_ne!(id, s.csrf);
        assert_eq!(id.len(), 43);
        let found = sessions.find(&id).unwrap();
        assert_eq!(found.role, Some(Role::Viewer));
        assert!(found.csrf_matches(&s.csrf));
        assert!(!found.csrf_matches(""));
        assert!(!found.csrf_matches(&id));
        assert!(sessions.find("not-a-session").is_none());
        sessions.end(&id);
        assert!(sessions.find(&id).is_none());
    }
}
