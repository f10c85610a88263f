//! Defines wakeplane's pure scheduling rules: schedule definitions and their validation,
//! cadence (cron dialect, intervals, once, time zones), run statuses, misfire and backoff.
//!
//! Nothing in here does I/O: no diesel, actix, HTTP or clocks. Callers pass `now` in.

pub mod backfill;
pub mod backoff;
pub mod cadence;
pub mod dispatch;
pub mod ids;
pub mod jitter;
pub mod labels;
pub mod lifecycle;
pub mod limited;
pub mod misfire;
pub mod partition;
pub mod run;
pub mod schedule;
pub mod validation;

pub use cadence::{Bounds, Cadence, CronExpr};
pub use run::RunStatus;
pub use schedule::{
    MisfirePolicy, OverlapPolicy, Policy, RetryPolicy, RetryStrategy, ScheduleSpec, Target,
    TargetKind,
};
