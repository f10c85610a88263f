//! Provides the schedules table: filtered by a label selector and by state (enabled or
//! paused), paged by the API's cursor, through the same query as `GET /v1/schedules`.
//! Each row: name, labels, cadence in words and exactly, next fire relative and in the
//! schedule's zone, actor state on this node, last status, successes.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;

use crate::api::schedules::{selector_param, summaries};
use crate::api::views::ScheduleSummaryView;
use crate::api::AppState;
use crate::console::error::ConsoleError;
use crate::console::guard;
use crate::console::layout::{self, encode_query, Nav};
use crate::console::words;
use crate::store::paging::Cursor;
use crate::store::schedules::ScheduleFilter;

/// Rows per page.
const PAGE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    selector: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
}

/// `GET /ui/schedules`.
pub async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    let v = guard::page(&req)?;
    let q = web::Query::<ListQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let selector_text = q.selector.as_deref().map(str::trim).unwrap_or("");
    let state_text = q.state.as_deref().unwrap_or("all");
    let mut problem = None;
    let selector = match selector_text {
        "" => None,
        s => match selector_param(s) {
            Ok(sel) => Some(sel),
            Err(e) => {
                problem = Some(e.to_string());
                None
            }
        },
    };
    let enabled = match state_text {
        "enabled" => Some(true),
        "paused" => Some(false),
        _ => None,
    };
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            Cursor::decode(c)
                .ok_or_else(|| ConsoleError::bad_request("the page cursor is not valid"))?,
        ),
    };
    let list = match problem {
        Some(_) => None,
        None => Some(
            summaries(
                &state,
                ScheduleFilter {
                    enabled,
                    selector,
                    ..Default::default()
                },
                cursor,
                PAGE,
            )
            .await
            .map_err(ConsoleError::from)?,
        ),
    };
    let filters = html! {
        form.filters method="get" action="/ui/schedules" {
            label for="selector" { "Label selector" }
            input #selector type="text" name="selector" value=(selector_text)
                placeholder="team=data,env in (prod,dev)" spellcheck="false";
            label for="state" { "State" }
            select #state name="state" {
                @for (value, text) in [("all", "all"), ("enabled", "enabled"), ("paused", "paused")] {
                    option value=(value) selected[state_text == value] { (text) }
                }
            }
            button type="submit" { "Filter" }
        }
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = html! {
        (filters)
        @if let Some(p) = &problem { p.error #selector-error role="alert" { (p) } }
        @if let Some(list) = &list {
            div #schedules-live data-live {
                (table(&state, &list.items))
            }
            @if let Some(next) = &list.next_cursor {
                p.paging {
                    a #next-page href={ "/ui/schedules?selector=" (encode_query(selector_text))
                        "&state=" (encode_query(state_text)) "&cursor=" (encode_query(next)) } { "Next page →" }
                }
            }
        }
    };
    Ok(v.respond(status, layout::page(&v, "Schedules", Nav::Schedules, body)))
}

fn table(state: &AppState, items: &[ScheduleSummaryView]) -> Markup {
    let now = Utc::now();
    let ids: Vec<&str> = items.iter().map(|s| s.id.as_str()).collect();
    let actors = state.scheduler.board().states_of(&ids);
    html! {
        @if items.is_empty() {
            p.quiet #no-schedules { "No schedule matches." }
        } @else {
            table.schedules {
                thead { tr {
                    th { "name" } th { "labels" } th { "cadence" } th { "next fire" }
                    th { "actor" } th { "last" } th { "succeeded" }
                } }
                tbody {
                    @for (s, actor) in items.iter().zip(actors) {
                        tr data-schedule=(s.id) {
                            td {
                                a.name href={ "/ui/schedules/" (s.id) } { (s.name) }
                                br; small { (s.target_kind.as_str()) }
                            }
                            td { (layout::labels(&s.labels)) }
                            td {
                                (words::cadence(&s.schedule, &s.timezone))
                                br; small { code { (words::expression(&s.schedule)) } " " (s.timezone) }
                            }
                            td {
                                @match s.next_run_at {
                                    Some(at) => {
                                        (words::relative(at, now))
                                        br; small { (words::in_zone(at, &s.timezone)) }
                                    }
                                    None => span.quiet { "—" },
                                }
                            }
                            td { (layout::badge(actor.unwrap_or(if s.enabled { "unknown" } else { "paused" }))) }
                            td {
                                @match &s.stats.last_status {
                                    Some(st) => {
                                        @if let Some(run) = &s.stats.last_run_id {
                                            a href={ "/ui/runs/" (run) } { (layout::badge(st)) }
                                        } @else { (layout::badge(st)) }
                                        @if let Some(at) = s.stats.last_finished_at {
                                            br; small { (words::relative(at, now)) }
                                        }
                                    }
                                    None => span.quiet { "—" },
                                }
                            }
                            td.num { (s.stats.succeeded) " / " (s.stats.runs_total) }
                        }
                    }
                }
            }
        }
    }
}
