//! Provides a schedule's page: its definition, the next 10 fire times in its zone, its
//! actor, its stats and recent runs, and the controls the visitor's role allows (pause with
//! a note, resume, trigger with a reason, delete), each a plain form.
//!
//! Reads through the API's queries (`stats::schedule_with_stats`, `runs::list`,
//! `upcoming_of`, `actor_of`); the forms post to `actions`.

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::checked_id;
use crate::actors::schedule::ActorSnapshot;
use crate::api::schedules::{actor_of, upcoming_of};
use crate::api::views::{RunSummaryView, ScheduleView};
use crate::api::AppState;
use crate::console::error::ConsoleError;
use crate::console::guard::{self, Visitor};
use crate::console::layout::{self, Nav};
use crate::console::words;
use crate::domain::Target;
use crate::store::{runs, stats, StoreError};

/// Recent runs shown.
const RECENT_RUNS: i64 = 20;
/// Upcoming fire times shown.
const UPCOMING: usize = 10;

/// `GET /ui/schedules/{id}`.
pub async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let v = guard::page(&req)?;
    let id = checked_id(path.into_inner(), "sch_", "schedule")?;
    let lookup = id.clone();
    let (record, stats_row, recent) = state
        .store
        .run(move |conn| {
            let (record, stats_row) = stats::schedule_with_stats(conn, &lookup)?;
            let recent = runs::list(conn, Some(&lookup), None, None, RECENT_RUNS)?;
            Ok::<_, StoreError>((record, stats_row, recent))
        })
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ConsoleError::not_found("schedule not found"),
            other => other.into(),
        })?;
    let upcoming = upcoming_of(&record, UPCOMING);
    let actor = actor_of(&state, &id);
    let mut view = ScheduleView::from(&record);
    view.stats = stats_row.into();
    let runs: Vec<RunSummaryView> = recent.items.into_iter().map(RunSummaryView::from).collect();
    let now = Utc::now();
    let body = html! {
        div #schedule-head data-live {
            (summary(&view, now))
        }
        (controls(&v, &view))
        div #schedule-live data-live {
            div.grid {
                (definition(&view))
                section.panel #upcoming {
                    h2 { "Next fire times" }
                    @if upcoming.is_empty() {
                        p.quiet { "None: the schedule is paused or finished." }
                    } @else {
                        ol {
                            @for at in &upcoming {
                                li { (words::in_zone(*at, &view.timezone)) " " small { (words::utc(*at)) } }
                            }
                        }
                    }
                }
                (actor_block(actor.as_ref(), now))
            }
            (runs_table(&runs))
        }
    };
    Ok(v.respond(
        StatusCode::OK,
        layout::page(&v, &view.name, Nav::None, body),
    ))
}

fn summary(s: &ScheduleView, now: DateTime<Utc>) -> Markup {
    html! {
        p.summary {
            @if s.enabled { span.badge.ok #schedule-state { "enabled" } } @else { span.badge.idle #schedule-state { "paused" } }
            " " (words::cadence(&s.schedule, &s.timezone)) " · " code { (words::expression(&s.schedule)) } " · " (s.timezone)
            @if let Some(next) = s.next_run_at {
                " · next fire " (words::relative(next, now)) ", " (words::in_zone(next, &s.timezone))
            }
        }
        @if let Some(at) = s.paused_at {
            div.notice #pause-notice {
                "Paused " (words::relative(at, now)) " (" (words::utc(at)) ")"
                @if let Some(note) = &s.pause_note { ": " q #pause-note { (note) } }
            }
        }
        @if let Some(d) = &s.description { p.description { (d) } }
        p.stats #stats {
            (s.stats.succeeded) " succeeded of " (s.stats.runs_total) " ended runs · "
            (s.stats.failed) " failed · " (s.stats.dead_lettered) " dead-lettered · "
            (s.stats.cancelled) " cancelled · " (s.stats.skipped) " skipped"
            @if let Some(ms) = s.stats.last_duration_ms { " · last took " (words::duration_ms(ms)) }
        }
    }
}

fn target(t: &Target) -> Markup {
    html! {
        @match t {
            Target::Http { method, url, .. } => { "http " code { (method) " " (url) } }
            Target::Shell { command, args } => {
                "shell " code { (command) }
                @if !args.is_empty() {
                    " args " code { (serde_json::to_string(args).unwrap_or_default()) }
                }
            }
            Target::Workflow { workflow_id, .. } => { "workflow " code { (workflow_id) } }
        }
    }
}

fn definition(s: &ScheduleView) -> Markup {
    let opt = |t: Option<DateTime<Utc>>| t.map_or_else(|| "—".to_string(), words::utc);
    html! {
        section.panel #definition {
            h2 { "Definition" }
            dl.fields {
                dt { "id" } dd { code { (s.id) } }
                dt { "labels" } dd { (layout::labels(&s.labels)) }
                dt { "target" } dd { (target(&s.target)) }
                dt { "overlap" } dd { (s.policy.overlap.as_str()) ", at most " (s.policy.max_concurrency) " at once" }
                dt { "misfire" } dd { (s.policy.misfire.as_str()) }
                dt { "timeout" } dd { (s.policy.timeout_seconds) " s" }
                dt { "jitter" } dd { (s.policy.jitter_seconds) " s" }
                dt { "retry" } dd {
                    @if s.retry.max_attempts == 0 { "none" } @else {
                        "max_attempts " (s.retry.max_attempts) ", " (s.retry.strategy.as_str())
                        ", " (s.retry.initial_delay_seconds) "–" (s.retry.max_delay_seconds) " s"
                    }
                }
                dt { "bounds" } dd { (opt(s.start_at)) " → " (opt(s.end_at)) }
                dt { "occurrences" } dd {
                    @match (s.max_occurrences, s.occurrences_remaining) {
                        (Some(max), Some(left)) => { (left) " of " (max) " left" }
                        _ => "unlimited",
                    }
                }
                dt { "created" } dd { (words::utc(s.created_at)) }
                dt { "updated" } dd { (words::utc(s.updated_at)) }
            }
        }
    }
}

fn actor_block(a: Option<&ActorSnapshot>, now: DateTime<Utc>) -> Markup {
    html! {
        section.panel #actor {
            h2 { "Actor" }
            @match a {
                None => p.quiet { "No live view: no actor runs this schedule on this node, or it is busy." },
                Some(a) => dl.fields {
                    dt { "state" } dd #actor-state { (layout::badge(a.state)) }
                    dt { "next fire in" } dd { (a.next_fire_in_ms.map_or_else(|| "—".into(), words::duration_ms)) }
                    dt { "active runs" } dd { (a.active_runs) }
                    dt { "queued runs" } dd { (a.queued_runs) }
                    dt { "last fire" } dd {
                        @match a.last_fire_at {
                            Some(t) => { (words::relative(t, now)) " " small { (words::utc(t)) } }
                            None => "—",
                        }
                    }
                    dt { "last fire lag" } dd { (a.last_fire_lag_ms.map_or_else(|| "—".into(), |l| format!("{l:.1} ms"))) }
                    dt { "restarts" } dd { (a.restarts) }
                    dt { "last error" } dd { (a.last_error.as_deref().unwrap_or("—")) }
                },
            }
        }
    }
}

fn runs_table(runs: &[RunSummaryView]) -> Markup {
    html! {
        section.panel #recent-runs {
            h2 { "Recent runs" }
            @if runs.is_empty() {
                p.quiet { "No runs yet." }
            } @else {
                table {
                    thead { tr { th { "run" } th { "nominal time" } th { "status" } th { "attempt" } th { "started" } th { "duration" } } }
                    tbody {
                        @for r in runs {
                            tr data-run=(r.id) {
                                td { a href={ "/ui/runs/" (r.id) } { code { (r.id) } } }
                                td { (words::utc(r.nominal_time)) }
                                td { (layout::badge(&r.status)) }
                                td.num { (r.attempt) }
                                td { (r.started_at.map_or_else(|| "—".into(), words::utc)) }
                                td.num { (r.duration_ms.map_or_else(|| "—".into(), words::duration_ms)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The forms the visitor's role allows; the same rule refuses the others server-side.
fn controls(v: &Visitor, s: &ScheduleView) -> Markup {
    let base = format!("/v1/schedules/{}", s.id);
    let may_pause = v.may(&Method::POST, &format!("{base}/pause"));
    let may_resume = v.may(&Method::POST, &format!("{base}/resume"));
    let may_trigger = v.may(&Method::POST, &format!("{base}/trigger"));
    let may_delete = v.may(&Method::DELETE, &base);
    let action = |what: &str| format!("/ui/schedules/{}/{what}", s.id);
    html! {
        section.panel.controls #controls {
            h2 { "Controls" }
            @if !(may_pause || may_resume || may_trigger || may_delete) {
                p.quiet #read-only { "Your role (" (v.role_name().unwrap_or("none")) ") may read schedules but not change them." }
            }
            div.forms {
            @if s.enabled && may_pause {
                form #pause-form method="post" action=(action("pause")) {
                    (layout::csrf(v))
                    label for="note" { "Pause, with a note (optional)" }
                    textarea #note name="note" maxlength="1024" rows="2" placeholder="why, and until when" {}
                    button type="submit" { "Pause" }
                }
            }
            @if !s.enabled && may_resume {
                form #resume-form method="post" action=(action("resume")) {
                    (layout::csrf(v))
                    button type="submit" { "Resume" }
                }
            }
            @if may_trigger {
                form #trigger-form method="post" action=(action("trigger")) {
                    (layout::csrf(v))
                    label for="reason" { "Run now, because (required)" }
                    input #reason type="text" name="reason" required maxlength="1000";
                    button type="submit" { "Trigger" }
                }
            }
            @if may_delete {
                form #delete-form.danger method="post" action=(action("delete")) {
                    (layout::csrf(v))
                    label.check {
                        input #confirm type="checkbox" name="confirm" value="yes" required;
                        " delete " strong { (s.name) } " with all its runs and receipts"
                    }
                    button.danger type="submit" { "Delete" }
                }
            }
            }
        }
    }
}
