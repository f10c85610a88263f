//! Black-box tests of the running scheduler: timers fire, targets execute with their
//! identity, and every policy (overlap, misfire, timeout, retry) holds — real PostgreSQL,
//! real processes, real HTTP.

#[path = "../api/helpers.rs"]
mod helpers;

mod boot;
mod claims;
mod controls;
mod misfire;
mod overlap;
mod retry;
mod support;
mod targets;
