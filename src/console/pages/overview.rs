//! Provides the overview page: this node (and, once `/v1/status` carries the cluster, every
//! node), actor states, fire-lag percentiles, the unhealthy schedules with their reasons,
//! schedule and run counts. It renders exactly what `/v1/status` reports.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use crate::api::health::{status_view, StatusView};
use crate::api::AppState;
use crate::console::error::ConsoleError;
use crate::console::guard;
use crate::console::layout::{self, Nav};
use crate::console::words;

/// `GET /ui/`.
pub async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    let v = guard::page(&req)?;
    let status = status_view(&state).await;
    let now = Utc::now();
    let body = html! {
        div #overview-live data-live {
            @if !status.database.ok {
                p.error role="alert" { "The database is unreachable: stored counts are unknown until it returns." }
            }
            (nodes_panel(&status, now))
            div.grid {
                (actors_panel(&status))
                (counts_panel(&status))
            }
            (unhealthy_panel(&status))
        }
    };
    Ok(v.respond(
        StatusCode::OK,
        layout::page(&v, "Overview", Nav::Overview, body),
    ))
}

fn parse(at: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn ago(at: Option<&str>, now: DateTime<Utc>) -> Markup {
    match at.and_then(parse) {
        Some(t) => html! { (words::relative(t, now)) " " small { (words::utc(t)) } },
        None => html! { "never" },
    }
}

fn count(n: Option<i64>) -> String {
    n.map_or_else(|| "?".to_string(), |n| n.to_string())
}

/// The nodes panel: every node of `status.cluster` (this node marked), with its heartbeat and the schedules it owns; this node's housekeeping and
/// database below.
pub fn nodes_panel(status: &StatusView, now: DateTime<Utc>) -> Markup {
    html! {
        section.panel #nodes {
            h2 { "Nodes" }
            table {
                thead { tr { th { "node" } th { "state" } th { "address" } th { "version" } th { "started" } th { "heartbeat" } th { "owned schedules" } } }
                tbody {
                    @for node in &status.cluster.nodes {
                        tr.node {
                            td {
                                code { (node.node_id) }
                                @if node.node_id == status.cluster.node_id { " " span.badge.ok { "this node" } }
                            }
                            td {
                                @if node.state == "alive" { span.badge.ok { "alive" } } @else { span.badge.bad { (node.state) } }
                            }
                            td { code { (node.http_addr) } }
                            td { (node.version) }
                            td { (ago(Some(&node.started_at), now)) }
                            td { (ago(Some(&node.heartbeat_at), now)) }
                            td { (node.owned_schedules) }
                        }
                    }
                }
            }
            p.small {
                "housekeeping " (ago(status.scheduler.last_tick_at.as_deref(), now)) " · database "
                @if status.database.ok { span.badge.ok { "ok" } } @else { span.badge.bad { "unreachable" } }
                " " (status.database.path)
            }
            p.small {
                "workers " (status.workers.active) "/" (status.workers.capacity) " busy · pool "
                (status.database.pool.idle) "/" (status.database.pool.size) " idle"
                @if let (Some(id), Some(at)) = (&status.scheduler.next_due_schedule_id, &status.scheduler.next_due_run_at) {
                    " · next fire " a href={ "/ui/schedules/" (id) } { (ago(Some(at), now)) }
                }
            }
        }
    }
}

fn actors_panel(status: &StatusView) -> Markup {
    let a = &status.actors;
    html! {
        section.panel #actors {
            h2 { "Schedule actors" }
            dl.counts {
                div { dt { "total" } dd #actors-total { (a.total) } }
                div { dt { "armed" } dd { (a.armed) } }
                div { dt { "paused" } dd #actors-paused { (a.paused) } }
                div { dt { "firing" } dd { (a.firing) } }
                div { dt { "finished" } dd { (a.finished) } }
                div { dt { "restarting" } dd { (a.restarting) } }
                div { dt { "restarts" } dd { (a.restarts_total) } }
                div { dt { "max mailbox" } dd { (a.max_mailbox) } }
            }
            h3 { "Fire lag" }
            dl.counts #fire-lag {
                div { dt { "p50" } dd { (format!("{:.1} ms", a.fire_lag_ms.p50)) } }
                div { dt { "p99" } dd { (format!("{:.1} ms", a.fire_lag_ms.p99)) } }
                div { dt { "max" } dd { (format!("{:.1} ms", a.fire_lag_ms.max)) } }
            }
        }
    }
}

fn counts_panel(status: &StatusView) -> Markup {
    let r = &status.runs;
    html! {
        section.panel #runs {
            h2 { "Runs now" }
            dl.counts {
                div { dt { "pending" } dd { (count(r.pending)) } }
                div { dt { "running" } dd { (count(r.running)) } }
                div { dt { "failed" } dd { (count(r.failed)) } }
                div { dt { "retry queued" } dd { (count(r.retry_queued)) } }
                div { dt { "dead letters" } dd { (count(r.dead_letter)) } }
            }
            h3 { "Schedules" }
            dl.counts {
                div { dt { "total" } dd #schedules-total { (count(status.schedules.total)) } }
                div { dt { "enabled" } dd { (count(status.schedules.enabled)) } }
            }
        }
    }
}

fn unhealthy_panel(status: &StatusView) -> Markup {
    html! {
        section.panel #unhealthy {
            h2 { "Unhealthy schedules" }
            @if status.actors.unhealthy.is_empty() {
                p.quiet { "None: every timer is on time, no schedule keeps failing or restarting." }
            } @else {
                table {
                    thead { tr { th { "schedule" } th { "state" } th { "reason" } } }
                    tbody {
                        @for u in &status.actors.unhealthy {
                            tr {
                                td { a href={ "/ui/schedules/" (u.schedule_id) } { (u.name) } }
                                td { (layout::badge(u.state)) }
                                td { (u.reason) }
                            }
                        }
                    }
                }
            }
        }
    }
}
