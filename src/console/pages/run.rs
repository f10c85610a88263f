//! Provides a run's page: every field of the run and its receipts (stdout, stderr, HTTP
//! response, workflow result) shown as text. A receipt is data a target printed: it is
//! HTML-escaped like every other value, never rendered.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::checked_id;
use crate::api::views::{ReceiptView, RunView};
use crate::api::AppState;
use crate::console::error::ConsoleError;
use crate::console::guard;
use crate::console::layout::{self, Nav};
use crate::console::words;
use crate::store::{runs, schedules, StoreError};

/// `GET /ui/runs/{id}`.
pub async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let v = guard::page(&req)?;
    let id = checked_id(path.into_inner(), "run_", "run")?;
    let (run, receipts, schedule_name) = state
        .store
        .run(move |conn| {
            let run = runs::find(conn, &id)?;
            let receipts = runs::receipts(conn, &id)?;
            let name = schedules::find(conn, &run.schedule_id)
                .map(|s| s.spec.name)
                .ok();
            Ok::<_, StoreError>((run, receipts, name))
        })
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ConsoleError::not_found("run not found"),
            other => other.into(),
        })?;
    let run = RunView::from(run);
    let receipts: Vec<ReceiptView> = receipts.into_iter().map(ReceiptView::from).collect();
    let title = format!("Run {}", run.id);
    let body = html! {
        div #run-live data-live {
            p.summary {
                (layout::badge(&run.status)) " attempt " (run.attempt) " of "
                a #schedule-link href={ "/ui/schedules/" (run.schedule_id) } {
                    (schedule_name.as_deref().unwrap_or(&run.schedule_id))
                }
                @if let Some(ms) = run.duration_ms { " · took " (words::duration_ms(ms)) }
            }
            div.grid {
                (fields(&run))
            }
            section.panel #receipts {
                h2 { "Receipts" }
                @if receipts.is_empty() {
                    p.quiet { "No receipts yet." }
                }
                @for r in &receipts {
                    section.receipt data-kind=(r.receipt_kind) {
                        h3 { (r.receipt_kind) " " small { (r.content_type) " · " (words::utc(r.created_at)) } }
                        pre.receipt-body { (r.body) }
                    }
                }
            }
        }
    };
    Ok(v.respond(StatusCode::OK, layout::page(&v, &title, Nav::None, body)))
}

fn fields(r: &RunView) -> Markup {
    let t = |at: Option<DateTime<Utc>>| at.map_or_else(|| "—".to_string(), words::utc);
    let n = |x: Option<i32>| x.map_or_else(|| "—".to_string(), |x| x.to_string());
    html! {
        section.panel #fields {
            h2 { "Fields" }
            dl.fields {
                dt { "status" } dd #run-status { (r.status) }
                dt { "occurrence" } dd { code { (r.occurrence_key) } }
                dt { "nominal time" } dd { (words::utc(r.nominal_time)) }
                dt { "due time" } dd { (words::utc(r.due_time)) }
                dt { "claimed by" } dd { (r.claimed_by_worker_id.as_deref().unwrap_or("—")) }
                dt { "claim expires" } dd { (t(r.claim_expires_at)) }
                dt { "started" } dd { (t(r.started_at)) }
                dt { "finished" } dd { (t(r.finished_at)) }
                dt { "duration" } dd { (r.duration_ms.map_or_else(|| "—".into(), words::duration_ms)) }
                dt { "HTTP status" } dd { (n(r.http_status_code)) }
                dt { "exit code" } dd { (n(r.exit_code)) }
                dt { "error" } dd { (r.error_text.as_deref().unwrap_or("—")) }
                dt { "retry at" } dd { (t(r.retry_available_at)) }
                dt { "trigger reason" } dd #trigger-reason { (r.trigger_reason.as_deref().unwrap_or("—")) }
                dt { "result" } dd {
                    @match &r.result_json {
                        Some(j) => pre { (serde_json::to_string_pretty(j).unwrap_or_default()) },
                        None => "—",
                    }
                }
                dt { "created" } dd { (words::utc(r.created_at)) }
                dt { "updated" } dd { (words::utc(r.updated_at)) }
            }
        }
    }
}
