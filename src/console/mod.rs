//! Provides the operators' console at `/ui/` (API.md, *Console*): server-rendered pages
//! (maud templates compiled into the binary), a stylesheet and one small script, also
//! compiled in, that refreshes the live parts of a page. Every page works without it.
//!
//! It reads through the same store queries and views as the API and writes only through
//! [`crate::commands::Commands`], never the database; who may do what is the API's rule
//! (`api::auth`), checked by `guard` on every page and form.

mod actions;
mod error;
mod guard;
mod layout;
mod login;
mod pages;
pub mod session;
mod words;

use actix_web::http::header::{self, ContentType};
use actix_web::{middleware, web, HttpRequest, HttpResponse};

pub use error::ConsoleError;
pub use session::Sessions;

/// The Content-Security-Policy of every console response: nothing but this origin's own
/// files (no inline script or style, no other host), never framed.
pub const CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// Registers the console under `/ui` (the path `api::auth::CONSOLE_PREFIX` names).
pub fn configure(cfg: &mut web::ServiceConfig) {
    use actix_web::web::{get, post};
    cfg.service(
        web::scope(crate::api::auth::CONSOLE_PREFIX)
            .wrap(
                middleware::DefaultHeaders::new()
                    .add(("Content-Security-Policy", CSP))
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("X-Frame-Options", "DENY"))
                    .add(("Referrer-Policy", "same-origin")),
            )
            .route("", get().to(to_root))
            .route("/", get().to(pages::overview::page))
            .route("/login", get().to(login::form))
            .route("/login", post().to(login::submit))
            .route("/logout", post().to(login::logout))
            .route("/assets/console.css", get().to(stylesheet))
            .route("/assets/console.js", get().to(script))
            .route("/schedules", get().to(pages::schedules::page))
            .route("/schedules/{id}", get().to(pages::schedule::page))
            .route("/schedules/{id}/pause", post().to(actions::pause))
            .route("/schedules/{id}/resume", post().to(actions::resume))
            .route("/schedules/{id}/trigger", post().to(actions::trigger))
            .route("/schedules/{id}/delete", post().to(actions::delete))
            .route("/runs/{id}", get().to(pages::run::page))
            .default_service(web::to(not_found)),
    );
}

async fn to_root() -> HttpResponse {
    see_other("/ui/")
}

/// A 303 to `location` (after a form, and to the login page).
pub(crate) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

async fn stylesheet() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(body)
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    Err(ConsoleError::not_found(format!(
        "the console has no page {} {}",
        req.method(),
        req.path()
    )))
}

/// An HTML response that is never cached (pages show live state and a CSRF token).
pub(crate) fn html(status: actix_web::http::StatusCode, body: maud::Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body.into_string())
}
