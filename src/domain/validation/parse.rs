//! Provides the field parsers shared by every part of a schedule body: instants, the cadence,
//! policy and retry, required text, enum and bounded-integer fields, and JSON size limits.
//! Pure: each parser pushes a `FieldError` per problem and returns what it could parse.

use std::str::FromStr;

use chrono::{DateTime, Datelike, DurationRound, Timelike, Utc};
use serde::Serialize;

use super::body::{CadenceBody, PolicyBody, RetryBody};
use super::{FieldError, ValidationContext, MAX_TARGET_PART_BYTES};
use crate::domain::cadence::{Cadence, CronExpr};
use crate::domain::schedule::{MisfirePolicy, OverlapPolicy, Policy, RetryPolicy, RetryStrategy};

/// Largest accepted `schedule.every_seconds` (100 years).
const MAX_EVERY_SECONDS: i64 = 100 * 366 * 86_400;
/// Largest accepted `policy.timeout_seconds` (7 days).
const MAX_TIMEOUT_SECONDS: i64 = 7 * 86_400;

/// RFC 3339 with an explicit offset, truncated to the database's microseconds.
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    let parsed = DateTime::parse_from_rfc3339(s.trim()).map_err(|e| {
        format!("must be an RFC 3339 timestamp with offset, e.g. 2027-06-01T09:00:00Z ({e})")
    })?;
    if parsed.nanosecond() >= 1_000_000_000 {
        return Err("must not be a leap second (:60)".into());
    }
    let utc = parsed.with_timezone(&Utc);
    if !(1..=9999).contains(&utc.year()) {
        return Err("must lie between the years 0001 and 9999 in UTC".into());
    }
    Ok(utc
        .duration_trunc(chrono::Duration::microseconds(1))
        .unwrap_or(utc))
}

pub(super) fn parse_optional_instant(
    field: &str,
    value: Option<&String>,
    errors: &mut Vec<FieldError>,
) -> Option<DateTime<Utc>> {
    let s = value?;
    match parse_instant(s) {
        Ok(t) => Some(t),
        Err(m) => {
            errors.push(FieldError::new(field, m));
            None
        }
    }
}

pub(super) fn parse_cadence(
    c: &CadenceBody,
    ctx: &ValidationContext,
    errors: &mut Vec<FieldError>,
) -> Option<Cadence> {
    let kind = match c.kind.as_deref().map(str::trim) {
        Some(k) => k,
        None => {
            errors.push(FieldError::new("schedule.kind", "is required"));
            return None;
        }
    };
    let mut stray = |field: &str, present: bool| {
        if present {
            errors.push(FieldError::new(
                &format!("schedule.{field}"),
                format!("is not allowed for kind {kind}"),
            ));
        }
    };
    match kind {
        "cron" => {
            stray("every_seconds", c.every_seconds.is_some());
            stray("anchor_at", c.anchor_at.is_some());
            stray("at", c.at.is_some());
            match c.expr.as_deref() {
                None => errors.push(FieldError::new("schedule.expr", "is required")),
                Some(e) => match CronExpr::parse(e) {
                    Ok(expr) => return Some(Cadence::Cron(expr)),
                    Err(m) => errors.push(FieldError::new("schedule.expr", m)),
                },
            }
            None
        }
        "interval" => {
            stray("expr", c.expr.is_some());
            stray("at", c.at.is_some());
            let every = match c.every_seconds {
                None => {
                    errors.push(FieldError::new("schedule.every_seconds", "is required"));
                    None
                }
                Some(n) if n <= 0 => {
                    errors.push(FieldError::new("schedule.every_seconds", "must be > 0"));
                    None
                }
                Some(n) if n > MAX_EVERY_SECONDS => {
                    errors.push(FieldError::new(
                        "schedule.every_seconds",
                        format!("must be at most {MAX_EVERY_SECONDS} (100 years)"),
                    ));
                    None
                }
                Some(n) => Some(n),
            };
            let anchor = match c.anchor_at.as_deref() {
                None => Some(ctx.default_anchor),
                Some(s) => match parse_instant(s) {
                    Ok(t) => Some(t),
                    Err(m) => {
                        errors.push(FieldError::new("schedule.anchor_at", m));
                        None
                    }
                },
            };
            Some(Cadence::Interval {
                every_seconds: every?,
                anchor_at: anchor?,
            })
        }
        "once" => {
            stray("expr", c.expr.is_some());
            stray("every_seconds", c.every_seconds.is_some());
            stray("anchor_at", c.anchor_at.is_some());
            match c.at.as_deref() {
                None => {
                    errors.push(FieldError::new("schedule.at", "is required"));
                    None
                }
                Some(s) => match parse_instant(s) {
                    Ok(at) => Some(Cadence::Once { at }),
                    Err(m) => {
                        errors.push(FieldError::new("schedule.at", m));
                        None
                    }
                },
            }
        }
        other => {
            errors.push(FieldError::new(
                "schedule.kind",
                format!("must be one of cron, interval, once (got {other:?})"),
            ));
            None
        }
    }
}

fn json_size(v: &impl Serialize) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

pub(super) fn check_size(field: &str, v: &impl Serialize, errors: &mut Vec<FieldError>) {
    let size = json_size(v);
    if size > MAX_TARGET_PART_BYTES {
        errors.push(FieldError::new(
            field,
            format!("must be at most {MAX_TARGET_PART_BYTES} bytes of JSON (got {size})"),
        ));
    }
}

pub(super) fn required_text<'a>(
    field: &str,
    value: Option<&'a String>,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match value.map(|s| s.trim()) {
        Some(s) if !s.is_empty() => Some(s),
        Some(_) => {
            errors.push(FieldError::new(field, "must not be blank"));
            None
        }
        None => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
    }
}

fn enum_field<T: FromStr<Err = String>>(
    field: &str,
    value: Option<&String>,
    default: T,
    errors: &mut Vec<FieldError>,
) -> T {
    match value {
        None => default,
        Some(v) => match v.trim().parse::<T>() {
            Ok(x) => x,
            Err(m) => {
                errors.push(FieldError::new(field, m));
                default
            }
        },
    }
}

pub(super) fn int_field(
    field: &str,
    value: Option<i64>,
    default: i32,
    min: i64,
    max: i64,
    errors: &mut Vec<FieldError>,
) -> i32 {
    match value {
        None => default,
        Some(v) if v < min => {
            let rule = if min == 0 {
                ">= 0"
            } else if min == 1 {
                "> 0"
            } else {
                "in range"
            };
            errors.push(FieldError::new(field, format!("must be {rule} (got {v})")));
            default
        }
        Some(v) if v > max => {
            errors.push(FieldError::new(
                field,
                format!("must be at most {max} (got {v})"),
            ));
            default
        }
        Some(v) => i32::try_from(v).unwrap_or(default),
    }
}

pub(super) fn parse_policy(p: Option<&PolicyBody>, errors: &mut Vec<FieldError>) -> Policy {
    let d = Policy::default();
    let Some(p) = p else { return d };
    Policy {
        overlap: enum_field::<OverlapPolicy>(
            "policy.overlap",
            p.overlap.as_ref(),
            d.overlap,
            errors,
        ),
        misfire: enum_field::<MisfirePolicy>(
            "policy.misfire",
            p.misfire.as_ref(),
            d.misfire,
            errors,
        ),
        timeout_seconds: int_field(
            "policy.timeout_seconds",
            p.timeout_seconds,
            d.timeout_seconds,
            1,
            MAX_TIMEOUT_SECONDS,
            errors,
        ),
        max_concurrency: int_field(
            "policy.max_concurrency",
            p.max_concurrency,
            d.max_concurrency,
            1,
            10_000,
            errors,
        ),
        jitter_seconds: int_field(
            "policy.jitter_seconds",
            p.jitter_seconds,
            d.jitter_seconds,
            0,
            crate::domain::jitter::MAX_JITTER_SECONDS,
            errors,
        ),
    }
}

pub(super) fn parse_retry(r: Option<&RetryBody>, errors: &mut Vec<FieldError>) -> RetryPolicy {
    let d = RetryPolicy::default();
    let Some(r) = r else { return d };
    let strategy =
        enum_field::<RetryStrategy>("retry.strategy", r.strategy.as_ref(), d.strategy, errors);
    let exponential = strategy == RetryStrategy::Exponential;
    let min_delay = if exponential { 1 } else { 0 };
    let retry = RetryPolicy {
        max_attempts: int_field(
            "retry.max_attempts",
            r.max_attempts,
            d.max_attempts,
            0,
            1000,
            errors,
        ),
        strategy,
        initial_delay_seconds: int_field(
            "retry.initial_delay_seconds",
            r.initial_delay_seconds,
            d.initial_delay_seconds,
            min_delay,
            MAX_TIMEOUT_SECONDS,
            errors,
        ),
        max_delay_seconds: int_field(
            "retry.max_delay_seconds",
            r.max_delay_seconds,
            d.max_delay_seconds,
            min_delay,
            MAX_TIMEOUT_SECONDS,
            errors,
        ),
    };
    if exponential
        && retry.max_delay_seconds < retry.initial_delay_seconds
        && !errors
            .iter()
            .any(|e| e.field.starts_with("retry.") && e.field.ends_with("delay_seconds"))
    {
        errors.push(FieldError::new(
            "retry.max_delay_seconds",
            format!(
                "must be >= initial_delay_seconds ({} < {})",
                retry.max_delay_seconds, retry.initial_delay_seconds
            ),
        ));
    }
    retry
}
