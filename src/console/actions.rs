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

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ConsoleError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| ConsoleError::bad_request(format!("malformed form: {e}")))
}

/// The schedule id and its API path, checked like the API checks it.
fn schedule(path: web::Path<String>) -> Result<(String, String), ConsoleError> {
    let id = checked_id(path.into_inner(), "sch_", "schedule")?;
    let api = format!("/v1/schedules/{id}");
    Ok((id, api))
}

/// `POST /ui/schedules/{id}/pause`, as `POST /v1/schedules/{id}/pause`.
pub async fn pause(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let (id, api) = schedule(path)?;
    let f: PauseForm = parse(&body)?;
    guard::form(
        &req,
        f.csrf.as_deref(),
        &Method::POST,
        &format!("{api}/pause"),
    )?;
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
    let (id, api) = schedule(path)?;
    let f: PlainForm = parse(&body)?;
    guard::form(
        &req,
        f.csrf.as_deref(),
        &Method::POST,
        &format!("{api}/resume"),
    )?;
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
    let (id, api) = schedule(path)?;
    let f: TriggerForm = parse(&body)?;
    guard::form(
        &req,
        f.csrf.as_deref(),
        &Method::POST,
        &format!("{api}/trigger"),
    )?;
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
    let (id, api) = schedule(path)?;
    let f: DeleteForm = parse(&body)?;
    guard::form(&req, f.csrf.as_deref(), &Method::DELETE, &api)?;
    if f.confirm.as_deref() != Some("yes") {
        return Err(ConsoleError::bad_request(
            "tick the box to confirm the deletion",
        ));
    }
    state.commands.delete(id.clone()).await?;
    tracing::info!(schedule_id = %id, "schedule deleted from the console");
    Ok(see_other("/ui/schedules"))
}
