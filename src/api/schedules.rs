//! Provides the `/v1/schedules` handlers: parse the request, hand the command to
//! [`Commands`] or read the store, and answer with a view.

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::error::ErrorEnvelope;
use super::guard::{check_write, Write};
use super::input::{json_body, param, query, read_body, require_object};
use super::views::{
    pause_note, BackfilledView, DeletedView, PauseBody, PausedView, ResumedView, RunList,
    RunSummaryView, ScheduleList, ScheduleSummaryView, ScheduleView, TriggerBody, TriggeredView,
    UpcomingView,
};
use super::AppState;
use crate::actors::schedule::ActorSnapshot;
use crate::commands::CommandError;
use crate::domain::backfill::{self, BackfillBody};
use crate::domain::labels::Selector;
use crate::domain::validation::ScheduleBody;
use crate::domain::RunStatus;
use crate::domain::TargetKind;
use crate::store::paging::{clamp_limit, clamp_param, Cursor};
use crate::store::schedules::{ScheduleFilter, ScheduleRecord};
use crate::store::{runs, schedules, stats, StoreError};

/// The fields of a schedule body that are objects.
const BODY_OBJECTS: &[&str] = &["schedule", "target", "policy", "retry"];

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Validation(details) => ApiError::Validation(details),
            e @ CommandError::NameTaken(_) => ApiError::Conflict(e.to_string()),
            CommandError::NotFound => ApiError::NotFound("schedule not found".into()),
            CommandError::SchedulerUnavailable => ApiError::Unavailable,
            CommandError::Store(e) => e.into(),
        }
    }
}

/// Rejects ids that cannot exist before touching the database.
fn schedule_id(path: web::Path<String>) -> Result<String, ApiError> {
    let id = path.into_inner();
    if id.starts_with("sch_")
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(ApiError::NotFound("schedule not found".into()))
    }
}

#[utoipa::path(post, path = "/v1/schedules", tag = "schedules", request_body = ScheduleBody,
    responses((status = 201, description = "Created", body = ScheduleView), (status = 403, description = "A shell target needs the admin role", body = ErrorEnvelope), (status = 400, description = "Malformed JSON or validation failed", body = ErrorEnvelope), (status = 409, description = "Name taken", body = ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = ErrorEnvelope), (status = 415, description = "Not JSON", body = ErrorEnvelope), (status = 503, description = "Database unavailable", body = ErrorEnvelope)))]
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: ScheduleBody = json_body(&req, payload, BODY_OBJECTS).await?;
    check_write(&state, &req, Write::Create, &body).await?;
    let record = state.commands.create(body).await?;
    tracing::info!(schedule_id = %record.id, name = %record.spec.name, "schedule created");
    Ok(HttpResponse::Created().json(ScheduleView::from(&record)))
}

#[utoipa::path(get, path = "/v1/schedules", tag = "schedules",
    params(("enabled" = Option<bool>, Query, description = "Only enabled (true) or paused (false) schedules"), ("target_kind" = Option<String>, Query, description = "http, shell or workflow"), ("workflow_id" = Option<String>, Query, description = "Workflow targets with this handler id"), ("label_selector" = Option<String>, Query, description = "Kubernetes label selector: k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k; comma-joined"), ("limit" = Option<i64>, Query, description = "Page size, default 50, max 500"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "A page, newest first", body = ScheduleList), (status = 400, description = "Bad query parameter", body = ErrorEnvelope)))]
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = query(
        &req,
        &[
            "enabled",
            "limit",
            "cursor",
            "target_kind",
            "workflow_id",
            "label_selector",
        ],
    )?;
    let enabled = match param(&q, "enabled") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "enabled must be true or false (got {other:?})"
            )))
        }
    };
    let filter = ScheduleFilter {
        enabled,
        target_kind: match param(&q, "target_kind") {
            None => None,
            Some(k) => Some(
                k.parse::<TargetKind>()
                    .map_err(|e| ApiError::BadRequest(format!("target_kind {e}")))?,
            ),
        },
        workflow_id: param(&q, "workflow_id").map(str::to_string),
        selector: param(&q, "label_selector")
            .map(selector_param)
            .transpose()?,
    };
    let cursor = cursor_param(&q)?;
    let limit = clamp_limit(param(&q, "limit"));
    Ok(HttpResponse::Ok().json(summaries(&state, filter, cursor, limit).await?))
}

/// Parses a `label_selector` parameter (400 naming the parameter and the problem).
pub fn selector_param(raw: &str) -> Result<Selector, ApiError> {
    Selector::parse(raw).map_err(|e| ApiError::BadRequest(format!("label_selector: {e}")))
}

/// One page of schedule summaries with their stats: what `GET /v1/schedules` answers (the
/// console's schedules table reads the same).
pub async fn summaries(
    state: &AppState,
    filter: ScheduleFilter,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<ScheduleList, ApiError> {
    let (page, mut stats) = state
        .store
        .run(move |conn| {
            let page = schedules::list(conn, &filter, cursor.as_ref(), limit)?;
            let ids: Vec<&str> = page.items.iter().map(|r| r.id.as_str()).collect();
            let stats = stats::of(conn, &ids)?;
            Ok::<_, StoreError>((page, stats))
        })
        .await?;
    Ok(ScheduleList {
        items: page
            .items
            .iter()
            .map(|r| {
                let mut view = ScheduleSummaryView::from(r);
                if let Some(s) = stats.remove(&r.id) {
                    view.stats = s.into();
                }
                view
            })
            .collect(),
        next_cursor: page.next_cursor,
    })
}

/// The full view of `record` with its stats as stored now.
async fn with_stats(state: &AppState, record: &ScheduleRecord) -> Result<ScheduleView, ApiError> {
    let id = record.id.clone();
    let stats = state.store.run(move |conn| stats::one(conn, &id)).await?;
    let mut view = ScheduleView::from(record);
    view.stats = stats.into();
    Ok(view)
}

pub fn cursor_param(q: &[(String, String)]) -> Result<Option<Cursor>, ApiError> {
    match param(q, "cursor") {
        None | Some("") => Ok(None),
        Some(c) => Cursor::decode(c)
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest("cursor is not valid".into())),
    }
}

#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path, description = "Schedule id (`sch_…`)")),
    responses((status = 200, description = "The schedule with its actor", body = ScheduleView), (status = 404, description = "No such schedule", body = ErrorEnvelope), (status = 503, description = "Database unavailable", body = ErrorEnvelope)))]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = schedule_id(path)?;
    let lookup = id.clone();
    // The row with its counters in one round trip; the actor block as the actor last
    // published it on the health board, so a read never waits behind an actor busy in a
    // transaction (or behind the Supervisor's mailbox).
    let (record, stats) = state
        .store
        .run(move |conn| stats::schedule_with_stats(conn, &lookup))
        .await
        .map_err(CommandError::from)?;
    let mut view = ScheduleView::from(&record);
    view.stats = stats.into();
    view.actor = actor_of(&state, &id);
    Ok(HttpResponse::Ok().json(view))
}

/// The live view of schedule `id`'s actor, as the actor last published it on the health
/// board (no message to the actor, so a busy one never stalls a read); `None` when no
/// actor runs it on this node.
pub fn actor_of(state: &AppState, id: &str) -> Option<ActorSnapshot> {
    state.scheduler.board().actor_view(id, chrono::Utc::now())
}

#[utoipa::path(put, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path, description = "Schedule id (`sch_…`)")), request_body = ScheduleBody,
    responses((status = 200, description = "Replaced", body = ScheduleView), (status = 403, description = "Choosing a shell command needs the admin role", body = ErrorEnvelope), (status = 400, description = "Malformed JSON or validation failed", body = ErrorEnvelope), (status = 409, description = "Name taken", body = ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = ErrorEnvelope), (status = 415, description = "Not JSON", body = ErrorEnvelope), (status = 404, description = "No such schedule", body = ErrorEnvelope), (status = 503, description = "Database unavailable", body = ErrorEnvelope)))]
pub async fn replace(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = schedule_id(path)?;
    let body: ScheduleBody = json_body(&req, payload, BODY_OBJECTS).await?;
    check_write(&state, &req, Write::Replace { id: &id }, &body).await?;
    let record = state.commands.replace(id, body).await?;
    Ok(HttpResponse::Ok().json(with_stats(&state, &record).await?))
}

#[utoipa::path(patch, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path, description = "Schedule id (`sch_…`)")), request_body = ScheduleBody,
    responses((status = 200, description = "Patched", body = ScheduleView), (status = 403, description = "Choosing a shell command needs the admin role", body = ErrorEnvelope), (status = 400, description = "Malformed JSON or validation failed", body = ErrorEnvelope), (status = 409, description = "Name taken", body = ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = ErrorEnvelope), (status = 415, description = "Not JSON", body = ErrorEnvelope), (status = 404, description = "No such schedule", body = ErrorEnvelope), (status = 503, description = "Database unavailable", body = ErrorEnvelope)))]
pub async fn patch(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = schedule_id(path)?;
    let body: ScheduleBody = json_body(&req, payload, BODY_OBJECTS).await?;
    check_write(&state, &req, Write::Patch { id: &id }, &body).await?;
    let record = state.commands.patch(id, body).await?;
    Ok(HttpResponse::Ok().json(with_stats(&state, &record).await?))
}

#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "schedules", params(("id" = String, Path, description = "Schedule id (`sch_…`)")),
    responses((status = 200, description = "Deleted with its history", body = DeletedView), (status = 404, description = "No such schedule", body = ErrorEnvelope), (status = 503, description = "Database unavailable", body = ErrorEnvelope)))]
pub async fn delete(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = schedule_id(path)?;
    state.commands.delete(id.clone()).await?;
    tracing::info!(schedule_id = %id, "schedule deleted");
    Ok(HttpResponse::Ok().json(DeletedView { deleted: true, id }))
}

#[utoipa::path(post, path = "/v1/schedules/{id}/pause", tag = "schedules", params(("id" = String, Path, description = "Schedule id (`sch_…`)")), request_body(content = Option<PauseBody>, description = "Optional: why it is paused"),
    responses((status = 200, description = "Paused (idempotent)", body = PausedView), (status = 400, description = "Malformed body or note too long", body = ErrorEnvelope), (status = 404, description = "No such schedule", body = ErrorEnvelope), (status = 503, description = "Database unavailable", body = ErrorEnvelope)))]
pub async fn pause(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = schedule_id(path)?;
    let bytes = read_body(&req, &mut payload).await?;
    let note = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        require_object(&bytes)?;
        let body: PauseBody = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
        pause_note(body).map_err(|e| ApiError::Validation(vec![e]))?
    };
    let r = state.commands.pause(id, note).await?;
    Ok(HttpResponse::Ok().json(PausedView {
        id: r.id,
        enabled: false,
        paused_at: r.paused_at,
        pause_note: r.pause_note,
    }))
}

#[utoipa::path(post, path = "/v1/schedules/{id}/backfill", tag = "schedules", params(("id" = String, Path, description = "Schedule id (`sch_…`)")), request_body = BackfillBody,
    responses((status = 200, description = "The window's missing occurrences, created as pending runs", body = BackfilledView), (status = 400, description = "Malformed JSON or validation failed (start, end, reason)", body = ErrorEnvelope), (status = 404, description = "No such schedule", body = ErrorEnvelope), (status = 413, description = "Body over 1 MiB", body = ErrorEnvelope), (status = 415, description = "Not JSON", body = ErrorEnvelope), (status = 503, description = "Database unavailable", body = ErrorEnvelope)))]
pub async fn backfill(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = schedule_id(path)?;
    let body: BackfillBody = json_body(&req, payload, &[]).await?;
    let request = backfill::parse(&body, crate::store::now()).map_err(ApiError::Validation)?;
    let crate::actors::messages::Backfilled { run_ids, existing } =
        state.commands.backfill(id.clone(), request).await?;
    Ok(HttpResponse::Ok().json(BackfilledView {
        schedule_id: id,
        created: run_ids.len(),
        existing,
        run_ids,
    }))
}

#[utoipa::path(post, path = "/v1/schedules/{id}/resume", tag = "schedules", params(("id" = String, Path, description = "Schedule id (`sch_…`)")),
    responses((status = 200, description = "Resumed (idempotent)", body = ResumedView), (status = 404, description = "No such schedule", body = ErrorEnvelope), (status = 503, description = "Database unavailable", body = ErrorEnvelope)))]
pub async fn resume(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = schedule_id(path)?;
    let r = state.commands.resume(id).await?;
    Ok(HttpResponse::Ok().json(ResumedView {
        id: r.id,
        enabled: true,
        paused_at: None,
        next_run_at: r.next_run_at,
    }))
}

#[utoipa::path(post, path = "/v1/schedules/{id}/trigger", tag = "schedules", params(("id" = String, Path, description = "Schedule id (`sch_…`)")), request_body = TriggerBody,
    responses((status = 200, description = "A pending manual run", body = TriggeredView), (status = 400, description = "Missing or blank reason", body = ErrorEnvelope), (status = 404, description = "No such schedule", body = ErrorEnvelope), (status = 503, description = "Database unavailable", body = ErrorEnvelope)))]
pub async fn trigger(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = schedule_id(path)?;
    let bytes = read_body(&req, &mut payload).await?;
    let blank = || ApiError::BadRequest("reason is required and must not be blank".into());
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(blank());
    }
    require_object(&bytes)?;
    let body: TriggerBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let reason = trigger_reason(body.reason)?;
    let run = state.commands.trigger(id, reason).await?;
    tracing::info!(schedule_id = %run.schedule_id, run_id = %run.id, "manual run triggered");
    Ok(HttpResponse::Ok().json(TriggeredView {
        run_id: run.id,
        schedule_id: run.schedule_id,
        occurrence_key: run.occurrence_key,
        status: run.status.to_string(),
        created_at: run.created_at,
    }))
}

/// A trigger's reason, trimmed: required, non-blank, at most 1000 characters.
pub fn trigger_reason(raw: Option<String>) -> Result<String, ApiError> {
    let reason = raw
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::BadRequest("reason is required and must not be blank".into()))?;
    if reason.chars().count() > 1000 {
        return Err(ApiError::BadRequest(
            "reason must be at most 1000 characters".into(),
        ));
    }
    Ok(reason)
}

#[utoipa::path(get, path = "/v1/schedules/{id}/upcoming", tag = "schedules", params(("id" = String, Path, description = "Schedule id (`sch_…`)"), ("count" = Option<i64>, Query, description = "How many, default 10; missing, non-numeric or <= 0 -> 10, above 100 -> 100")),
    responses((status = 200, description = "Next fire instants; empty when paused or finished", body = UpcomingView), (status = 400, description = "Unknown query parameter", body = ErrorEnvelope), (status = 404, description = "No such schedule", body = ErrorEnvelope), (status = 503, description = "Database unavailable", body = ErrorEnvelope)))]
pub async fn upcoming(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = schedule_id(path)?;
    let q = query(&req, &["count"])?;
    let count = usize::try_from(clamp_param(param(&q, "count"), 10, 100)).unwrap_or(10);
    let record = state
        .store
        .run(move |conn| schedules::find(conn, &id))
        .await
        .map_err(CommandError::from)?;
    let items = upcoming_of(&record, count)
        .into_iter()
        .map(crate::domain::ids::format_instant)
        .collect();
    Ok(HttpResponse::Ok().json(UpcomingView { items }))
}

/// The next `count` fire instants of `record` (none when paused or finished; a limited
/// schedule has no more than it has occurrences left).
pub fn upcoming_of(record: &ScheduleRecord, count: usize) -> Vec<chrono::DateTime<chrono::Utc>> {
    let count = record
        .occurrences_remaining
        .map_or(count, |left| count.min(usize::try_from(left).unwrap_or(0)));
    match record.next_run_at {
        Some(next) if record.paused_at.is_none() => {
            let after = next - chrono::Duration::microseconds(1);
            record
                .spec
                .cadence
                .upcoming(record.spec.timezone, &record.spec.bounds(), after, count)
        }
        _ => Vec::new(),
    }
}

#[utoipa::path(get, path = "/v1/schedules/{id}/runs", tag = "runs", params(("id" = String, Path, description = "Schedule id (`sch_…`)"), ("status" = Option<RunStatus>, Query, description = "Only runs in this status"), ("limit" = Option<i64>, Query, description = "Page size, default 50, max 500"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "A page of the schedule's runs, newest first", body = RunList), (status = 400, description = "Bad query parameter", body = ErrorEnvelope), (status = 404, description = "No such schedule", body = ErrorEnvelope), (status = 503, description = "Database unavailable", body = ErrorEnvelope)))]
pub async fn runs(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = schedule_id(path)?;
    let q = query(&req, &["status", "limit", "cursor"])?;
    let status = status_param(&q)?;
    let cursor = cursor_param(&q)?;
    let limit = clamp_limit(param(&q, "limit"));
    let page = state
        .store
        .run(move |conn| {
            schedules::find(conn, &id)?;
            runs::list(conn, Some(&id), status, cursor.as_ref(), limit)
        })
        .await
        .map_err(CommandError::from)?;
    Ok(HttpResponse::Ok().json(RunList {
        items: page.items.into_iter().map(RunSummaryView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

pub fn status_param(q: &[(String, String)]) -> Result<Option<RunStatus>, ApiError> {
    param(q, "status")
        .map(|s| {
            s.parse::<RunStatus>()
                .map_err(|m| ApiError::BadRequest(format!("status {m}")))
        })
        .transpose()
}
