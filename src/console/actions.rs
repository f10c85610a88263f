//! Provides the console's forms: pause (with a note), resume, trigger (with a reason) and
//! delete. Each one is refused unless `guard::form` accepts the session, its CSRF token and
//! the role the equivalent API call needs; then it checks its input with the API's own
//! rules and sends the API's command through [`crate::commands::Commands`].
//!
//! Nothing here touches the database; after a write the browser is sent (303) to the page
//! that shows its outcome.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::ConsoleError;
use super::guard;
use super::pages::checked_id;
use super::see_other;
use crate::api::error::ApiError;
use crate::api::schedules::trigger_reason;
use crate::api::views::{pause_note, PauseBody};
use crate::api::AppState;

#[derive(Deserialize)]
pub struct PauseForm {
    csrf: Option<String>,
    note: Option<String>,
}

#[derive(Deserialize)]
pub struct PlainForm {
    csrf: Option<String>,
}

#[derive(Deserialize)]
pub struct TriggerForm {
    csrf: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
pub struct DeleteForm {
    csrf: Option<String>,
    confirm: Option<String>,
}

/// A console form: every one carries the session's CSRF token.
trait Form: DeserializeOwned {
    fn csrf(&self) -> Option<&str>;
}

macro_rules! form_with_csrf {
    ($($form:ty),*) => {
        $(impl Form for $form {
            fn csrf(&self) -> Option<&str> {
                self.csrf.as_deref()
            }
        })*
    };
}
form_with_csrf!(PauseForm, PlainForm, TriggerForm, DeleteForm);

/// The schedule id and the parsed form, once `guard::form` has accepted the session, its
/// CSRF token and the role that `method` on the API path (`/v1/schedules/{id}` + `suffix`)
/// needs.
fn accept<F: Form>(
    req: &HttpRequest,
    path: web::Path<String>,
    body: &[u8],
    method: &Method,
    suffix: &str,
) -> Result<(String, F), ConsoleError> {
    let id = checked_id(path.into_inner(), "sch_", "schedule")?;
    let form: F = serde_urlencoded::from_bytes(body)
        .map_err(|e| ConsoleError::bad_request(format!("malformed form: {e}")))?;
    guard::form(
        req,
        form.csrf(),
        method,
        &format!("/v1/schedules/{id}{suffix}"),
    )?;
    Ok((id, form))
}

/// `POST /ui/schedules/{id}/pause`, as `POST /v1/schedules/{id}/pause`.
pub async fn pause(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let (id, f): (_, PauseForm) = accept(&req, path, &body, &Method::POST, "/pause")?;
    let note = pause_note(PauseBody { note: f.note }).map_err(|e| ApiError::Validation(vec![e]))?;
    state.commands.pause(id.clone(), note).await?;
    tracing::info!(schedule_id = %id, "schedule paused from the console");
    Ok(see_other(&format!("/ui/schedules/{id}")))
}

/// `POST /ui/schedules/{id}/resume`, as `POST /v1/schedules/{id}/resume`.
pub async fn resume(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let (id, _): (_, PlainForm) = accept(&req, path, &body, &Method::POST, "/resume")?;
    state.commands.resume(id.clone()).await?;
    tracing::info!(schedule_id = %id, "schedule resumed from the console");
    Ok(see_other(&format!("/ui/schedules/{id}")))
}

/// `POST /ui/schedules/{id}/trigger`, as `POST /v1/schedules/{id}/trigger`; then to the
/// new run's page.
pub async fn trigger(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let (id, f): (_, TriggerForm) = accept(&req, path, &body, &Method::POST, "/trigger")?;
    let reason = trigger_reason(f.reason)?;
    let run = state.commands.trigger(id, reason).await?;
    tracing::info!(schedule_id = %run.schedule_id, run_id = %run.id, "manual run triggered from the console");
    Ok(see_other(&format!("/ui/runs/{}", run.id)))
}

/// `POST /ui/schedules/{id}/delete`, as `DELETE /v1/schedules/{id}` (admin); the form must
/// be confirmed.
pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let (id, f): (_, DeleteForm) = accept(&req, path, &body, &Method::DELETE, "")?;
    if f.confirm.as_deref() != Some("yes") {
        return Err(ConsoleError::bad_request(
            "tick the box to confirm the deletion",
        ));
    }
    state.commands.delete(id.clone()).await?;
    tracing::info!(schedule_id = %id, "schedule deleted from the console");
    Ok(see_other("/ui/schedules"))
}
