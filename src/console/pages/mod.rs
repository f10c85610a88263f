//! Provides the console's pages, one module each: the overview, the schedules table, a
//! schedule, a run. Each handler checks the visitor (`guard::page`), reads through the
//! API's own store queries and views, and renders; none of them writes anything.

pub mod overview;
pub mod run;
pub mod schedule;
pub mod schedules;

use super::error::ConsoleError;

/// The id in a page's path, refused (404) before the database when it cannot exist, as the
/// API refuses it.
pub(crate) fn checked_id(raw: String, prefix: &str, what: &str) -> Result<String, ConsoleError> {
    if raw.starts_with(prefix)
        && raw.len() <= 64
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(raw)
    } else {
        Err(ConsoleError::not_found(format!("{what} not found")))
    }
}
