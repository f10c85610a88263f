//! Provides the `/v1/runs` handlers: the run ledger and receipts, read-only.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use super::input::{param, query};
use super::schedules::{cursor_param, status_param};
use super::views::{ListView, ReceiptView, RunSummaryView, RunView};
use super::AppState;
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
    Ok(HttpResponse::Ok().json(ListView {
        items: page.items.into_iter().map(RunSummaryView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

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
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}
