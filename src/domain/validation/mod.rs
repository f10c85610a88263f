//! Defines how a raw schedule body becomes a `ScheduleSpec`, reporting every bad field at
//! once with the field paths of API.md: the wire bodies live in `body`, the field parsers in
//! `parse`, the per-kind target parsers in `target`.
//!
//! Pure: `now` and the default interval anchor are passed in. JSON *type* errors are the
//! deserialiser's (400 `bad_request`); everything else is a `FieldError` here.

mod body;
mod parse;
mod target;

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::schedule::ScheduleSpec;
use body::flat;
pub use body::{
    body_of, cadence_body_of, merge_patch, CadenceBody, PolicyBody, RetryBody, ScheduleBody,
    TargetBody,
};
pub use parse::parse_instant;
use parse::{int_field, parse_cadence, parse_optional_instant, parse_policy, parse_retry};
use target::parse_target;

/// Largest JSON size of `target.body`, `target.input`, `target.headers` and `target.args`.
pub const MAX_TARGET_PART_BYTES: usize = 64 * 1024;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// What validation needs from outside: the clock and the default interval anchor.
#[derive(Debug, Clone, Copy)]
pub struct ValidationContext {
    pub now: DateTime<Utc>,
    /// `anchor_at` when an interval omits it: the schedule's creation instant.
    pub default_anchor: DateTime<Utc>,
}

/// Parses a create or replace body into a spec, or every problem found.
pub fn parse_schedule(
    body: &ScheduleBody,
    ctx: &ValidationContext,
) -> Result<ScheduleSpec, Vec<FieldError>> {
    let mut errors = Vec::new();

    let name = match flat(&body.name) {
        Some(n) if !n.trim().is_empty() => {
            if n.chars().count() > 200 {
                errors.push(FieldError::new("name", "must be at most 200 characters"));
            }
            Some(n.trim().to_string())
        }
        Some(_) => {
            errors.push(FieldError::new("name", "must not be blank"));
            None
        }
        None => {
            errors.push(FieldError::new("name", "is required"));
            None
        }
    };

    let timezone = match flat(&body.timezone) {
        Some(tz) => match Tz::from_str(tz.trim()) {
            Ok(tz) => Some(tz),
            Err(_) => {
                errors.push(FieldError::new(
                    "timezone",
                    format!("must be a valid IANA timezone (got {tz:?})"),
                ));
                None
            }
        },
        None => {
            errors.push(FieldError::new("timezone", "is required"));
            None
        }
    };

    let cadence = match flat(&body.schedule) {
        Some(c) => parse_cadence(c, ctx, &mut errors),
        None => {
            errors.push(FieldError::new("schedule.kind", "is required"));
            None
        }
    };

    let target = match flat(&body.target) {
        Some(t) => parse_target(t, &mut errors),
        None => {
            errors.push(FieldError::new("target.kind", "is required"));
            None
        }
    };

    let policy = parse_policy(flat(&body.policy), &mut errors);
    let retry = parse_retry(flat(&body.retry), &mut errors);
    let start_at = parse_optional_instant("start_at", flat(&body.start_at), &mut errors);
    let end_at = parse_optional_instant("end_at", flat(&body.end_at), &mut errors);
    let max_occurrences = flat(&body.max_occurrences).map(|n| {
        int_field(
            "max_occurrences",
            Some(*n),
            1,
            1,
            i32::MAX.into(),
            &mut errors,
        )
    });
    if let (Some(s), Some(e)) = (start_at, end_at) {
        if s > e {
            errors.push(FieldError::new("start_at", "must not be after end_at"));
        }
    }
    let labels = flat(&body.labels).cloned().unwrap_or_default();
    for (field, message) in super::labels::problems(&labels) {
        errors.push(FieldError::new(&field, message));
    }
    let description = flat(&body.description).cloned();
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 1024)
    {
        errors.push(FieldError::new(
            "description",
            "must be at most 1024 characters",
        ));
    }

    match (name, timezone, cadence, target) {
        (Some(name), Some(timezone), Some(cadence), Some(target)) if errors.is_empty() => {
            Ok(ScheduleSpec {
                name,
                enabled: flat(&body.enabled).copied().unwrap_or(true),
                timezone,
                cadence,
                target,
                policy,
                retry,
                start_at,
                end_at,
                labels,
                description,
                max_occurrences,
            })
        }
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::cadence::Cadence;
    use crate::domain::schedule::{OverlapPolicy, Policy, RetryPolicy, Target};
    use chrono::TimeZone;
    use serde_json::{json, Value};

    fn ctx() -> ValidationContext {
        let now = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).single().unwrap();
        ValidationContext {
            now,
            default_anchor: now,
        }
    }

    fn body(v: Value) -> ScheduleBody {
        serde_json::from_value(v).unwrap()
    }

    fn fields(errs: Vec<FieldError>) -> Vec<String> {
        errs.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn minimal_body_gets_every_default() {
        let spec = parse_schedule(
            &body(json!({"name": "a", "timezone": "UTC",
                "schedule": {"kind": "interval", "every_seconds": 60},
                "target": {"kind": "workflow", "workflow_id": "builtin.noop"}})),
            &ctx(),
        )
        .unwrap();
        assert!(spec.enabled);
        assert_eq!(spec.policy, Policy::default());
        assert_eq!(spec.retry, RetryPolicy::default());
        assert_eq!(
            spec.cadence,
            Cadence::Interval {
                every_seconds: 60,
                anchor_at: ctx().default_anchor
            }
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errs = parse_schedule(
            &body(json!({"name": " ", "timezone": "Mars/Base",
                "schedule": {"kind": "cron", "expr": "61 * * * *"},
                "target": {"kind": "http", "method": "FETCH", "url": "ftp://x"},
                "policy": {"overlap": "sometimes", "misfire": "never", "timeout_seconds": 0, "max_concurrency": 0},
                "retry": {"max_attempts": -1, "strategy": "linear"},
                "start_at": "2027-02-01T00:00:00Z", "end_at": "2027-01-01T00:00:00Z"})),
            &ctx(),
        )
        .unwrap_err();
        assert_eq!(
            fields(errs),
            vec![
                "name",
                "timezone",
                "schedule.expr",
                "target.method",
                "target.url",
                "policy.overlap",
                "policy.misfire",
                "policy.timeout_seconds",
                "policy.max_concurrency",
                "retry.strategy",
                "retry.max_attempts",
                "start_at"
            ]
        );
    }

    #[test]
    fn header_values_with_control_characters_are_refused_at_create() {
        let errs = parse_schedule(
            &body(json!({"name": "h", "timezone": "UTC",
                "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
                "target": {"kind": "http", "method": "GET", "url": "http://127.0.0.1/",
                           "headers": {"X-A": "a\nb", "X-Tab": "a\tb"}}})),
            &ctx(),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "target.headers");
        assert!(errs[0].message.contains("X-A"), "{}", errs[0].message);
    }

    #[test]
    fn missing_required_fields() {
        let errs = parse_schedule(&body(json!({})), &ctx()).unwrap_err();
        assert_eq!(
            fields(errs),
            vec!["name", "timezone", "schedule.kind", "target.kind"]
        );
    }

    #[test]
    fn exponential_delays_must_be_ordered() {
        let errs = parse_schedule(
            &body(json!({"name": "a", "timezone": "UTC",
                "schedule": {"kind": "once", "at": "2027-06-01T09:00:00-07:00"},
                "target": {"kind": "shell", "command": "/bin/true"},
                "retry": {"initial_delay_seconds": 60, "max_delay_seconds": 10}})),
            &ctx(),
        )
        .unwrap_err();
        assert_eq!(fields(errs), vec!["retry.max_delay_seconds"]);
    }

    #[test]
    fn oversized_target_parts_are_rejected() {
        let big = "x".repeat(MAX_TARGET_PART_BYTES);
        let errs = parse_schedule(
            &body(json!({"name": "a", "timezone": "UTC",
                "schedule": {"kind": "interval", "every_seconds": 1},
                "target": {"kind": "workflow", "workflow_id": "w", "input": {"blob": big}}})),
            &ctx(),
        )
        .unwrap_err();
        assert_eq!(fields(errs), vec!["target.input"]);
    }

    #[test]
    fn stray_target_fields_are_named() {
        let errs = parse_schedule(
            &body(json!({"name": "a", "timezone": "UTC",
                "schedule": {"kind": "interval", "every_seconds": 1},
                "target": {"kind": "shell", "command": "/bin/true", "url": "http://x"}})),
            &ctx(),
        )
        .unwrap_err();
        assert_eq!(fields(errs), vec!["target.url"]);
    }

    #[test]
    fn method_is_upper_cased_and_once_is_utc() {
        let spec = parse_schedule(
            &body(json!({"name": "a", "timezone": "Europe/Berlin",
                "schedule": {"kind": "once", "at": "2027-06-01T09:00:00-07:00"},
                "target": {"kind": "http", "method": "post", "url": "http://127.0.0.1:1/x"}})),
            &ctx(),
        )
        .unwrap();
        assert!(matches!(spec.target, Target::Http { ref method, .. } if method == "POST"));
        assert_eq!(
            spec.cadence,
            Cadence::Once {
                at: Utc.with_ymd_and_hms(2027, 6, 1, 16, 0, 0).single().unwrap()
            }
        );
    }

    #[test]
    fn patch_merges_policy_fields_and_round_trips() {
        let spec = parse_schedule(
            &body(json!({"name": "a", "timezone": "UTC",
                "schedule": {"kind": "cron", "expr": "0 2 * * *"},
                "target": {"kind": "workflow", "workflow_id": "w", "input": {"k": 1}},
                "policy": {"overlap": "allow", "timeout_seconds": 10},
                "start_at": "2027-01-02T00:00:00Z"})),
            &ctx(),
        )
        .unwrap();
        let base = body_of(&spec);
        assert_eq!(parse_schedule(&base, &ctx()).unwrap(), spec);
        let patched = merge_patch(
            &base,
            &body(json!({"policy": {"max_concurrency": 3}, "start_at": null})),
        );
        let merged = parse_schedule(&patched, &ctx()).unwrap();
        assert_eq!(merged.policy.overlap, OverlapPolicy::Allow);
        assert_eq!(merged.policy.timeout_seconds, 10);
        assert_eq!(merged.policy.max_concurrency, 3);
        assert_eq!(merged.start_at, None);
        assert_eq!(merged.name, "a");
    }

    #[test]
    fn unknown_top_level_fields_are_rejected_but_server_fields_ignored() {
        assert!(serde_json::from_value::<ScheduleBody>(json!({"nme": "x"})).is_err());
        assert!(serde_json::from_value::<ScheduleBody>(
            json!({"id": "sch_1", "created_at": "x", "next_run_at": null, "actor": {}})
        )
        .is_ok());
    }
}
