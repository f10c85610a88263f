//! Provides the one JSON error envelope `{code, error, details}` and the mapping from every
//! lower-layer error onto it.
//!
//! Messages never carry SQL or stack traces; unexpected errors are logged with their cause
//! chain and answered with a generic 500.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::domain::validation::FieldError;
use crate::store::StoreError;

/// An error an API handler can return.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the database is unavailable; retry later, nothing was lost")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The JSON body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    pub code: ErrorCode,
    /// A human-readable message; never SQL or a stack trace.
    pub error: String,
    /// One entry per bad field for `validation_failed`; empty otherwise.
    pub details: Vec<FieldError>,
}

crate::domain::schedule::text_enum!(
    /// The machine-readable error code.
    ErrorCode {
        BadRequest => "bad_request",
        ValidationFailed => "validation_failed",
        Unauthorized => "unauthorized",
        Forbidden => "forbidden",
        NotFound => "not_found",
        MethodNotAllowed => "method_not_allowed",
        Conflict => "conflict",
        PayloadTooLarge => "payload_too_large",
        UnsupportedMediaType => "unsupported_media_type",
        InternalError => "internal_error",
        Unavailable => "unavailable",
    }
);

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::Validation(_) => ErrorCode::ValidationFailed,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::Unavailable => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::InternalError,
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> ApiError {
        ApiError::Internal(e.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(e) = self {
            tracing::error!(error.cause_chain = ?e, "request failed unexpectedly");
        }
        let details = match self {
            ApiError::Validation(d) => d.clone(),
            _ => Vec::new(),
        };
        let mut builder = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unavailable => {
                builder.insert_header(("Retry-After", "1"));
            }
            ApiError::Unauthorized(_) => {
                builder.insert_header(("WWW-Authenticate", "Bearer"));
            }
            _ => {}
        }
        builder.json(ErrorEnvelope {
            code: self.code(),
            error: self.to_string(),
            details,
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                ApiError::Unavailable
            }
            StoreError::NotFound => ApiError::NotFound("not found".into()),
            e @ StoreError::NameTaken(_) => ApiError::Conflict(e.to_string()),
            StoreError::Conflict(c) => {
                ApiError::Conflict(format!("conflicts with an existing row ({c})"))
            }
            other => ApiError::internal(other),
        }
    }
}
