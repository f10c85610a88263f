//! Provides bearer-token auth (`WAKEPLANE_API_TOKENS="token:role,…"`) and the request-id
//! response header. Roles nest: viewer reads, operator also writes, admin also deletes.
//!
//! Deny by default: every path except exactly `/healthz` and `/readyz` (and the console's
//! `/ui`, which checks its own sessions by the same roles) needs a token, and
//! the role follows the method alone (reads, writes, deletes), never the raw path, so no
//! spelling of a path (`/%761/…`) can lower what it needs. Tokens are kept only as SHA-256
//! digests and compared in constant time, every configured one on every request. The
//! granted [`Role`] is attached to the request for handlers whose rule depends on the body
//! (shell targets need admin, see `guard`).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, ResponseError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing_actix_web::RequestId;

use super::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// The configured tokens as SHA-256 digests (the tokens themselves are not kept); `None`
/// inside `Auth` means auth is off.
#[derive(Clone)]
pub struct Tokens(Vec<([u8; 32], Role)>);

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Tokens {
    /// Parses `token:role,token:role`; every entry must be well formed.
    pub fn parse(spec: &str) -> Result<Tokens, String> {
        let mut out = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (token, role) = entry
                .rsplit_once(':')
                .ok_or_else(|| "each entry must be token:role".to_string())?;
            let role = match role.trim() {
                "viewer" => Role::Viewer,
                "operator" => Role::Operator,
                "admin" => Role::Admin,
                other => {
                    return Err(format!(
                        "unknown role {other:?} (viewer, operator or admin)"
                    ))
                }
            };
            if token.len() < 8 {
                return Err("tokens must be at least 8 characters".into());
            }
            out.push((digest(token.as_bytes()), role));
        }
        if out.is_empty() {
            return Err("no tokens given".into());
        }
        Ok(Tokens(out))
    }

    /// The role of a presented token, comparing its digest against every token's in
    /// constant time.
    pub fn role_of(&self, presented: &[u8]) -> Option<Role> {
        let presented = digest(presented);
        let mut found = None;
        for (token, role) in &self.0 {
            if bool::from(token.ct_eq(&presented)) {
                found = Some(*role);
            }
        }
        found
    }
}

/// Auth configuration shared with the middleware.
pub struct Auth(pub Option<Tokens>);

/// Where the operators' console lives. Its paths are not bearer-token routes: the console
/// authenticates with its own session cookie and applies [`required_role`] and
/// [`refusal`] itself, to every page and form (the `console` module).
pub const CONSOLE_PREFIX: &str = "/ui";

/// Whether `path` is the console's (exactly `/ui` or under `/ui/`).
pub fn is_console_path(path: &str) -> bool {
    path.strip_prefix(CONSOLE_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The role a request needs, or `None` for the two open probes. Every other path, known
/// or not, is guarded; the only DELETE route deletes a schedule (admin).
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    if path == "/healthz" || path == "/readyz" {
        return None;
    }
    if method == Method::GET || method == Method::HEAD {
        Some(Role::Viewer)
    } else if method == Method::DELETE {
        Some(Role::Admin)
    } else {
        Some(Role::Operator)
    }
}

/// Why `role` may not `method path`, which needs `needed` (the 403 message).
pub fn refusal(role: Role, needed: Role, method: &Method, path: &str) -> String {
    format!(
        "role {} may not {method} {path}; it needs {}",
        role.as_str(),
        needed.as_str()
    )
}

/// Refuses requests without a good enough bearer token (when auth is configured). The
/// console's paths pass through: it checks its own session against the same roles.
pub async fn require_token(
    auth: web::Data<Auth>,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(tokens) = auth.0.as_ref().filter(|_| !is_console_path(req.path())) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let Some(needed) = required_role(req.method(), req.path()) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().as_bytes().to_vec());
    let refusal = match presented.as_deref().map(|t| tokens.role_of(t)) {
        None => Some(ApiError::Unauthorized(
            "missing bearer token: send Authorization: Bearer <token>".into(),
        )),
        Some(None) => Some(ApiError::Unauthorized("unknown bearer token".into())),
        Some(Some(role)) if role < needed => Some(ApiError::Forbidden(refusal(
            role,
            needed,
            req.method(),
            req.path(),
        ))),
        Some(Some(role)) => {
            req.extensions_mut().insert(role);
            None
        }
    };
    match refusal {
        Some(e) => {
            let response = e.error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
    }
}

/// Returns the request id tracing-actix-web assigned as `X-Request-Id`.
pub async fn request_id_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req.extensions().get::<RequestId>().map(|id| id.to_string());
    let mut res = next.call(req).await?;
    if let Some(value) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_the_route() {
        assert_eq!(required_role(&Method::GET, "/healthz"), None);
        assert_eq!(required_role(&Method::GET, "/readyz"), None);
        assert_eq!(
            required_role(&Method::GET, "/v1/schedules"),
            Some(Role::Viewer)
        );
        assert_eq!(
            required_role(&Method::POST, "/v1/schedules"),
            Some(Role::Operator)
        );
        assert_eq!(
            required_role(&Method::POST, "/v1/schedules/sch_1/trigger"),
            Some(Role::Operator)
        );
        assert_eq!(
            required_role(&Method::DELETE, "/v1/schedules/sch_1"),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(&Method::PATCH, "/v1/schedules/sch_1"),
            Some(Role::Operator)
        );
        // Encoded or odd spellings of a route never need less than the method does.
        assert_eq!(
            required_role(&Method::GET, "/%761/schedules"),
            Some(Role::Viewer)
        );
        assert_eq!(
            required_role(&Method::DELETE, "/v1/%73chedules/sch_1"),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(&Method::POST, "/v%31/schedules/x/pause"),
            Some(Role::Operator)
        );
        assert_eq!(
            required_role(&Method::GET, "/%68ealthz"),
            Some(Role::Viewer)
        );
    }

    #[test]
    fn only_the_console_prefix_is_the_consoles() {
        assert!(is_console_path("/ui"));
        assert!(is_console_path("/ui/"));
        assert!(is_console_path("/ui/schedules/sch_1/pause"));
        assert!(!is_console_path("/uix"));
        assert!(!is_console_path("/v1/ui/"));
        assert!(!is_console_path("/%75i/"));
        assert!(!is_console_path("/UI/"));
    }

    #[test]
    fn tokens_parse_and_match_exactly() {
        let t =
            Tokens::parse("viewer-token:viewer, op-token-123:operator,admin-token:admin").unwrap();
        assert_eq!(t.role_of(b"viewer-token"), Some(Role::Viewer));
        assert_eq!(t.role_of(b"op-token-123"), Some(Role::Operator));
        assert_eq!(t.role_of(b"admin-token"), Some(Role::Admin));
        assert_eq!(t.role_of(b"admin-toke"), None);
        assert_eq!(t.role_of(b""), None);
        assert!(Tokens::parse("short:admin").is_err());
        assert!(Tokens::parse("long-enough:root").is_err());
        assert!(Tokens::parse("no-role-here").is_err());
        assert!(Tokens::parse(" , ").is_err());
    }
}
