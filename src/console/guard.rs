//! Provides the console's access rule, the API's (`api::auth`) applied to a session: with
//! `WAKEPLANE_API_TOKENS` set a page needs a logged-in session and a form also its CSRF
//! token and the role the same API call needs (`required_role`); without tokens there is
//! no login, and forms still carry a CSRF token bound to an anonymous session.
//!
//! It reads the session map and the auth configuration; it changes nothing but sessions.

use actix_web::cookie::Cookie;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use super::error::ConsoleError;
use super::session::{session_cookie, Sessions, SESSION_COOKIE};
use crate::api::auth::{refusal, required_role, Auth, Role};

/// Who is looking at a page, and what they may do.
pub struct Visitor {
    /// `None` when auth is off: everything is allowed.
    pub role: Option<Role>,
    /// Whether the server has tokens (then there is a login and a logout).
    pub auth_on: bool,
    /// This session's CSRF token, put into every form.
    pub csrf: String,
    /// A new anonymous session's cookie to set (auth off, first visit).
    cookie: Option<Cookie<'static>>,
}

impl Visitor {
    /// Whether the visitor may make the API call `method path` (the API's own rule); pages
    /// hide the controls for which this is false.
    pub fn may(&self, method: &Method, api_path: &str) -> bool {
        match (self.role, required_role(method, api_path)) {
            (Some(role), Some(needed)) => role >= needed,
            _ => true,
        }
    }

    /// The role's name for the header, when there are roles.
    pub fn role_name(&self) -> Option<&'static str> {
        self.role.map(Role::as_str)
    }

    /// `page` as a response, setting the anonymous session's cookie if one was made.
    pub fn respond(&self, status: StatusCode, page: maud::Markup) -> HttpResponse {
        let mut res = super::html(status, page);
        if let Some(c) = &self.cookie {
            let _ = res.add_cookie(c);
        }
        res
    }
}

fn auth_on(req: &HttpRequest) -> bool {
    req.app_data::<web::Data<Auth>>()
        .is_some_and(|a| a.0.is_some())
}

fn sessions(req: &HttpRequest) -> Result<&Sessions, ConsoleError> {
    req.app_data::<web::Data<Sessions>>()
        .map(|s| s.get_ref())
        .ok_or_else(|| {
            ConsoleError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the console has no session store",
            )
        })
}

/// The session the request's cookie names, if it is live.
fn current(req: &HttpRequest) -> Result<Option<(String, super::session::Session)>, ConsoleError> {
    let sessions = sessions(req)?;
    Ok(req.cookie(SESSION_COOKIE).and_then(|c| {
        let id = c.value().to_string();
        sessions.find(&id).map(|s| (id, s))
    }))
}

fn no_randomness(e: getrandom::Error) -> ConsoleError {
    tracing::error!(error = %e, "no randomness for a console session");
    ConsoleError::new(StatusCode::SERVICE_UNAVAILABLE, "cannot start a session")
}

/// The visitor of a page (GET). Not logged in with auth on: to the login form and back.
pub fn page(req: &HttpRequest) -> Result<Visitor, ConsoleError> {
    let auth_on = auth_on(req);
    if let Some((_, s)) = current(req)? {
        // A session made while auth was off never outlives a restart with tokens: the
        // map is this process's.
        return Ok(Visitor {
            role: s.role,
            auth_on,
            csrf: s.csrf,
            cookie: None,
        });
    }
    if auth_on {
        let next = match req.query_string() {
            "" => req.path().to_string(),
            q => format!("{}?{q}", req.path()),
        };
        return Err(ConsoleError::Login { next });
    }
    let (id, s) = sessions(req)?.start(None).map_err(no_randomness)?;
    Ok(Visitor {
        role: None,
        auth_on,
        csrf: s.csrf,
        cookie: Some(session_cookie(req, id)),
    })
}

/// The visitor of a form (POST) that makes the API call `method api_path`: refused unless
/// the session is live, the form carries its CSRF token, and the session's role may make
/// that call. The granted role is attached to the request as the API's middleware does.
pub fn form(
    req: &HttpRequest,
    csrf: Option<&str>,
    method: &Method,
    api_path: &str,
) -> Result<Visitor, ConsoleError> {
    let auth_on = auth_on(req);
    let Some((_, session)) = current(req)? else {
        return Err(if auth_on {
            ConsoleError::new(
                StatusCode::UNAUTHORIZED,
                "not logged in (or the session ended): log in and try again",
            )
        } else {
            ConsoleError::forbidden("no console session: reload the page and try again")
        });
    };
    if !csrf.is_some_and(|t| session.csrf_matches(t)) {
        return Err(ConsoleError::forbidden(
            "the form's CSRF token does not belong to this session: reload the page and try again",
        ));
    }
    if let (Some(role), Some(needed)) = (session.role, required_role(method, api_path)) {
        if role < needed {
            return Err(ConsoleError::forbidden(refusal(
                role, needed, method, api_path,
            )));
        }
    }
    if let Some(role) = session.role {
        req.extensions_mut().insert(role);
    }
    Ok(Visitor {
        role: session.role,
        auth_on,
        csrf: session.csrf,
        cookie: None,
    })
}
