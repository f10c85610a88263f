//! Provides the `/v1/runs` handlers: the run ledger and receipts, read-only.

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::error::ErrorEnvelope;
use super::input::{param, query};
use super::schedules::{cursor_param, status_param};
use super::views::{ReceiptList, ReceiptView, RunList, RunSummaryView, RunView};
use super::AppState;
use crate::domain::RunStatus;
use crate::store::paging::clamp_limit;
use crate::store::{runs, StoreError};

fn run_id(path: web::Path<String>) -> Result<String, ApiError> {
    let id = path.into_inner();
    if id.starts_with("run_")
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(ApiError::NotFound("run not found".into()))
    }
}

fn run_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("run not found".into()),
        other => other.into(),
    }
}

#[utoipa::path(get, path = "/v1/runs", tag = "runs",
    params(("schedule_id" = Option<String>, Query, description = "Only this schedule's runs"), ("status" = Option<RunStatus>, Query, description = "Only runs in this status"), ("limit" = Option<i64>, Query, description = "Page size, default 50, max 500"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "A page of runs, newest first", body = RunList), (status = 400, description = "Bad query parameter", body = ErrorEnvelope)))]
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = query(&req, &["schedule_id", "status", "limit", "cursor"])?;
    let schedule_id = param(&q, "schedule_id").map(str::to_string);
    let status = status_param(&q)?;
    let cursor = cursor_param(&q)?;
    let limit = clamp_limit(param(&q, "limit"));
    let page = state
        .store
        .run(move |conn| runs::list(conn, schedule_id.as_deref(), status, cursor.as_ref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(RunList {
        items: page.items.into_iter().map(RunSummaryView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path, description = "Run id (`run_…`)")),
    responses((status = 200, description = "The run", body = RunView), (status = 404, description = "No such run", body = ErrorEnvelope), (status = 503, description = "Database unavailable", body = ErrorEnvelope)))]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = run_id(path)?;
    let run = state
        .store
        .run(move |conn| runs::find(conn, &id))
        .await
        .map_err(run_not_found)?;
    Ok(HttpResponse::Ok().json(RunView::from(run)))
}

#[utoipa::path(get, path = "/v1/runs/{id}/receipts", tag = "runs", params(("id" = String, Path, description = "Run id (`run_…`)")),
    responses((status = 200, description = "Receipts, oldest first", body = ReceiptList), (status = 404, description = "No such run", body = ErrorEnvelope), (status = 503, description = "Database unavailable", body = ErrorEnvelope)))]
pub async fn receipts(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = run_id(path)?;
    let rows = state
        .store
        .run(move |conn| {
            runs::find(conn, &id)?;
            runs::receipts(conn, &id)
        })
        .await
        .map_err(run_not_found)?;
    let items: Vec<ReceiptView> = rows.into_iter().map(ReceiptView::from).collect();
    Ok(HttpResponse::Ok().json(ReceiptList { items }))
}
