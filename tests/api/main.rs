//! Black-box tests of the HTTP API against a real PostgreSQL and real HTTP.

mod controls;
mod creates;
mod deletes;
mod errors;
mod health;
mod helpers;
mod labels;
mod openapi;
mod operator;
mod retention;
mod runs;
mod schedules;
mod security;
mod stats;
mod totals;
