//! Provides the console's login form (an API token, checked like a bearer token), which
//! starts a session and sets its cookie, and the logout form, which ends it.
//!
//! The login form is protected by a double-submit cookie (there is no session yet); the
//! token itself is never stored, only the role it grants.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::error::ConsoleError;
use super::layout;
use super::session::{
    console_cookie, random_token, removal_cookie, session_cookie, Sessions, LOGIN_COOKIE,
    SESSION_COOKIE,
};
use crate::api::auth::Auth;

/// How long a login form stays good.
const LOGIN_FORM_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: Option<String>,
    csrf: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: Option<String>,
}

/// Only a console path is a place to go back to (never another host or scheme).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if crate::api::auth::is_console_path(n)
                && !n.contains("//")
                && !n.contains('\\')
                && n.chars().all(|c| !c.is_control()) =>
        {
            n.to_string()
        }
        _ => "/ui/".to_string(),
    }
}

fn login_page(
    req: &HttpRequest,
    status: StatusCode,
    next: &str,
    problem: Option<&str>,
) -> Result<HttpResponse, ConsoleError> {
    let csrf = random_token()
        .map_err(|_| ConsoleError::new(StatusCode::SERVICE_UNAVAILABLE, "cannot start a login"))?;
    let body = layout::bare(
        "Log in",
        html! {
            @if let Some(p) = problem { p.error role="alert" { (p) } }
            form.login method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                label for="token" { "API token" }
                input #token type="password" name="token" required autocomplete="current-password" autofocus;
                button type="submit" { "Log in" }
            }
            p.hint { "Any token of WAKEPLANE_API_TOKENS; the console allows what its role allows in the API." }
        },
    );
    let mut res = super::html(status, body);
    let _ = res.add_cookie(&console_cookie(
        req,
        LOGIN_COOKIE,
        csrf,
        LOGIN_FORM_LIFETIME,
    ));
    Ok(res)
}

/// `GET /ui/login`. Without tokens there is nothing to log in to.
pub async fn form(
    req: HttpRequest,
    auth: web::Data<Auth>,
    q: web::Query<NextQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let next = safe_next(q.next.as_deref());
    if auth.0.is_none() {
        return Ok(super::see_other(&next));
    }
    login_page(&req, StatusCode::OK, &next, None)
}

/// `POST /ui/login`: a known token starts a session with its role.
pub async fn submit(
    req: HttpRequest,
    auth: web::Data<Auth>,
    sessions: web::Data<Sessions>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let f: LoginForm = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ConsoleError::bad_request(format!("malformed form: {e}")))?;
    let next = safe_next(f.next.as_deref());
    let Some(tokens) = &auth.0 else {
        return Ok(super::see_other(&next));
    };
    let cookie = req.cookie(LOGIN_COOKIE).map(|c| c.value().to_string());
    let fresh_form = match (&cookie, &f.csrf) {
        (Some(c), Some(t)) => bool::from(c.as_bytes().ct_eq(t.as_bytes())),
        _ => false,
    };
    if !fresh_form {
        return login_page(
            &req,
            StatusCode::FORBIDDEN,
            &next,
            Some("This login form expired or came from another site: try again."),
        );
    }
    let token = f.token.as_deref().map(str::trim).unwrap_or("");
    let Some(role) = tokens.role_of(token.as_bytes()) else {
        tracing::info!("console login refused: unknown token");
        return login_page(
            &req,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("Unknown token."),
        );
    };
    let (id, _) = sessions.start(Some(role)).map_err(|_| {
        ConsoleError::new(StatusCode::SERVICE_UNAVAILABLE, "cannot start a session")
    })?;
    tracing::info!(role = role.as_str(), "console login");
    let mut res = super::see_other(&next);
    let _ = res.add_cookie(&session_cookie(&req, id));
    let _ = res.add_cookie(&removal_cookie(LOGIN_COOKIE));
    Ok(res)
}

/// `POST /ui/logout`: ends the session (its CSRF token required, like every form).
pub async fn logout(
    req: HttpRequest,
    sessions: web::Data<Sessions>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let f: LogoutForm = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ConsoleError::bad_request(format!("malformed form: {e}")))?;
    // Logging out needs no role: any session may end itself.
    super::guard::form(&req, f.csrf.as_deref(), &Method::GET, "/ui/logout")?;
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        sessions.end(c.value());
    }
    let mut res = super::see_other("/ui/login");
    let _ = res.add_cookie(&removal_cookie(SESSION_COOKIE));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_console_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/ui/schedules?x=1")), "/ui/schedules?x=1");
        assert_eq!(safe_next(Some("/ui")), "/ui");
        assert_eq!(safe_next(Some("https://evil.example/ui/")), "/ui/");
        assert_eq!(safe_next(Some("//evil.example/ui/")), "/ui/");
        assert_eq!(safe_next(Some("/ui//evil.example")), "/ui/");
        assert_eq!(safe_next(Some("/ui/\\evil")), "/ui/");
        assert_eq!(safe_next(Some("/v1/schedules")), "/ui/");
        assert_eq!(safe_next(None), "/ui/");
    }
}
