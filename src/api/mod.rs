//! Provides the HTTP API of API.md: routes, handlers, the error envelope, input parsing and
//! views.
//!
//! Handlers are thin: parse, then send a command to [`Commands`] or read the store, then
//! answer with a view. Every error, including unknown routes (404) and wrong methods (405),
//! is the JSON envelope.

pub mod auth;
pub mod cluster;
pub mod error;
pub mod guard;
pub mod health;
pub mod input;
pub mod openapi;
pub mod runs;
pub mod schedules;
pub mod views;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse, Route};
use chrono::{DateTime, Utc};

use crate::actors::Scheduler;
use crate::commands::Commands;
use crate::security::TargetPolicy;
use crate::store::Store;
use error::ApiError;

/// What every handler can reach. Set once at start-up; never changes.
pub struct AppState {
    pub store: Store,
    pub commands: Commands,
    pub scheduler: Scheduler,
    pub node_id: String,
    pub started_at: DateTime<Utc>,
    /// What targets may do; checked on every create, replace and patch.
    pub targets: Arc<TargetPolicy>,
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(format!(
        "method {} is not allowed on {}",
        req.method(),
        req.path()
    )))
}

/// A resource whose other methods answer 405 in the envelope.
fn resource(path: &str, routes: Vec<Route>) -> actix_web::Resource {
    let mut r = web::resource(path);
    for route in routes {
        r = r.route(route);
    }
    r.default_service(web::to(method_not_allowed))
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use actix_web::web::{delete, get, patch, post, put};
    cfg.service(resource("/healthz", vec![get().to(health::healthz)]))
        .service(resource("/readyz", vec![get().to(health::readyz)]))
        .service(resource("/v1/status", vec![get().to(health::status)]))
        .service(resource("/v1/metrics", vec![get().to(health::metrics)]))
        .service(resource(
            "/v1/openapi.json",
            vec![get().to(openapi::openapi_json)],
        ))
        .service(resource(
            "/v1/schedules",
            vec![get().to(schedules::list), post().to(schedules::create)],
        ))
        .service(resource(
            "/v1/schedules/{id}",
            vec![
                get().to(schedules::get),
                put().to(schedules::replace),
                patch().to(schedules::patch),
                delete().to(schedules::delete),
            ],
        ))
        .service(resource(
            "/v1/schedules/{id}/pause",
            vec![post().to(schedules::pause)],
        ))
        .service(resource(
            "/v1/schedules/{id}/resume",
            vec![post().to(schedules::resume)],
        ))
        .service(resource(
            "/v1/schedules/{id}/trigger",
            vec![post().to(schedules::trigger)],
        ))
        .service(resource(
            "/v1/schedules/{id}/backfill",
            vec![post().to(schedules::backfill)],
        ))
        .service(resource(
            "/v1/schedules/{id}/upcoming",
            vec![get().to(schedules::upcoming)],
        ))
        .service(resource(
            "/v1/schedules/{id}/runs",
            vec![get().to(schedules::runs)],
        ))
        .service(resource("/v1/runs", vec![get().to(runs::list)]))
        .service(resource("/v1/runs/{id}", vec![get().to(runs::get)]))
        .service(resource(
            "/v1/runs/{id}/receipts",
            vec![get().to(runs::receipts)],
        ))
        .default_service(web::to(not_found));
}
