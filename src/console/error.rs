//! Provides `ConsoleError`, what a console page or form answers when it cannot do what was
//! asked: an HTML page with the status and message the API would give (its 4xx/5xx rules,
//! through `From<ApiError>`), or a redirect to the login form.
//!
//! Messages are the API's own; an unexpected error is logged with its cause chain and shown
//! only as "internal error".

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use maud::html;

use super::layout;
use crate::api::error::ApiError;

#[derive(Debug)]
pub enum ConsoleError {
    /// Not logged in (auth on): GET pages go to the login form, then back to `next`.
    Login { next: String },
    /// Anything else, shown as a page.
    Page { status: StatusCode, message: String },
}

impl ConsoleError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ConsoleError {
        ConsoleError::Page {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ConsoleError {
        ConsoleError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ConsoleError {
        ConsoleError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn bad_request(message: impl Into<String>) -> ConsoleError {
        ConsoleError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsoleError::Login { .. } => f.write_str("login required"),
            ConsoleError::Page { message, .. } => f.write_str(message),
        }
    }
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        let status = e.status_code();
        let message = match &e {
            ApiError::Internal(cause) => {
                tracing::error!(error.cause_chain = ?cause, "console request failed unexpectedly");
                e.to_string()
            }
            ApiError::Validation(details) => details
                .iter()
                .map(|d| format!("{}: {}", d.field, d.message))
                .collect::<Vec<_>>()
                .join("; "),
            _ => e.to_string(),
        };
        ConsoleError::Page { status, message }
    }
}

impl From<crate::commands::CommandError> for ConsoleError {
    fn from(e: crate::commands::CommandError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<crate::store::StoreError> for ConsoleError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::Login { .. } => StatusCode::SEE_OTHER,
            ConsoleError::Page { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ConsoleError::Login { next } => {
                let target = format!("/ui/login?next={}", layout::encode_query(next));
                super::see_other(&target)
            }
            ConsoleError::Page { status, message } => {
                let mut res = super::html(
                    *status,
                    layout::bare(
                        &format!("{} {}", status.as_u16(), reason(*status)),
                        html! {
                            p.error role="alert" { (message) }
                            @if *status == StatusCode::UNAUTHORIZED {
                                p { a href="/ui/login" { "Log in" } }
                            } @else {
                                p { a href="/ui/" { "Back to the overview" } }
                            }
                        },
                    ),
                );
                if *status == StatusCode::SERVICE_UNAVAILABLE {
                    res.headers_mut().insert(
                        actix_web::http::header::RETRY_AFTER,
                        actix_web::http::header::HeaderValue::from_static("1"),
                    );
                }
                res
            }
        }
    }
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("error")
}
