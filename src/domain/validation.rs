//! Defines the raw schedule bodies clients send and turns them into a `ScheduleSpec`,
//! reporting every bad field at once with the field paths of API.md.
//!
//! Pure: `now` and the default interval anchor are passed in. JSON *type* errors are the
//! deserialiser's (400 `bad_request`); everything else is a `FieldError` here.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Datelike, DurationRound, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::cadence::{Cadence, CronExpr};
use super::schedule::{
    MisfirePolicy, OverlapPolicy, Policy, RetryPolicy, RetryStrategy, ScheduleSpec, Target,
    HTTP_METHODS,
};

/// Largest JSON size of `target.body`, `target.input`, `target.headers` and `target.args`.
pub const MAX_TARGET_PART_BYTES: usize = 64 * 1024;
/// Largest accepted `schedule.every_seconds` (100 years).
const MAX_EVERY_SECONDS: i64 = 100 * 366 * 86_400;
/// Largest accepted `policy.timeout_seconds` (7 days).
const MAX_TIMEOUT_SECONDS: i64 = 7 * 86_400;

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

/// Deserialises a present field (even `null`) as `Some(..)`, so PATCH can tell
/// "set to null" from "absent".
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The cadence as sent: one flat object so a missing or unknown `kind` is a field error.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CadenceBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// The target as sent.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub body: Option<Option<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub input: Option<Option<Value>>,
}

/// Policy fields as sent; each omitted one takes its default.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    pub overlap: Option<String>,
    pub misfire: Option<String>,
    pub timeout_seconds: Option<i64>,
    pub max_concurrency: Option<i64>,
}

/// Retry fields as sent; each omitted one takes its default.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    pub max_attempts: Option<i64>,
    pub strategy: Option<String>,
    pub initial_delay_seconds: Option<i64>,
    pub max_delay_seconds: Option<i64>,
}

/// A create, replace or patch body. Server-owned fields (`id`, `created_at`, …) are
/// accepted and ignored so a fetched schedule can be sent back as a PUT; any other unknown
/// field is a `bad_request`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    pub enabled: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<CadenceBody>)]
    pub schedule: Option<Option<CadenceBody>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<TargetBody>)]
    pub target: Option<Option<TargetBody>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<PolicyBody>)]
    pub policy: Option<Option<PolicyBody>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RetryBody>)]
    pub retry: Option<Option<RetryBody>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub start_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub end_at: Option<Option<String>>,
    // Server-owned, ignored.
    #[serde(default, rename = "id")]
    #[schema(ignore)]
    _id: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "paused_at")]
    #[schema(ignore)]
    _paused_at: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "next_run_at")]
    #[schema(ignore)]
    _next_run_at: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "last_run_at")]
    #[schema(ignore)]
    _last_run_at: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "created_at")]
    #[schema(ignore)]
    _created_at: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    #[schema(ignore)]
    _updated_at: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "actor")]
    #[schema(ignore)]
    _actor: Option<serde::de::IgnoredAny>,
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
    if let (Some(s), Some(e)) = (start_at, end_at) {
        if s > e {
            errors.push(FieldError::new("start_at", "must not be after end_at"));
        }
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
            })
        }
        _ => Err(errors),
    }
}

/// Merges a PATCH body onto the current definition (as a body): `policy` and `retry`
/// merge field by field, everything else present replaces.
pub fn merge_patch(current: &ScheduleBody, patch: &ScheduleBody) -> ScheduleBody {
    let mut merged = current.clone();
    macro_rules! replace_if_present {
        ($($field:ident),+) => { $(if patch.$field.is_some() { merged.$field = patch.$field.clone(); })+ };
    }
    replace_if_present!(name, enabled, timezone, schedule, target, start_at, end_at);
    if let Some(p) = &patch.policy {
        let base = flat(&current.policy).cloned().unwrap_or_default();
        merged.policy = Some(p.as_ref().map(|p| PolicyBody {
            overlap: p.overlap.clone().or(base.overlap),
            misfire: p.misfire.clone().or(base.misfire),
            timeout_seconds: p.timeout_seconds.or(base.timeout_seconds),
            max_concurrency: p.max_concurrency.or(base.max_concurrency),
        }));
    }
    if let Some(r) = &patch.retry {
        let base = flat(&current.retry).cloned().unwrap_or_default();
        merged.retry = Some(r.as_ref().map(|r| RetryBody {
            max_attempts: r.max_attempts.or(base.max_attempts),
            strategy: r.strategy.clone().or(base.strategy),
            initial_delay_seconds: r.initial_delay_seconds.or(base.initial_delay_seconds),
            max_delay_seconds: r.max_delay_seconds.or(base.max_delay_seconds),
        }));
    }
    merged
}

/// The body that would recreate `spec` exactly (used as the base of a PATCH).
pub fn body_of(spec: &ScheduleSpec) -> ScheduleBody {
    use super::ids::format_instant;
    let schedule = match &spec.cadence {
        Cadence::Cron(expr) => CadenceBody {
            kind: Some("cron".into()),
            expr: Some(expr.as_str().to_string()),
            ..Default::default()
        },
        Cadence::Interval {
            every_seconds,
            anchor_at,
        } => CadenceBody {
            kind: Some("interval".into()),
            every_seconds: Some(*every_seconds),
            anchor_at: Some(format_instant(*anchor_at)),
            ..Default::default()
        },
        Cadence::Once { at } => CadenceBody {
            kind: Some("once".into()),
            at: Some(format_instant(*at)),
            ..Default::default()
        },
    };
    let target = match &spec.target {
        Target::Http {
            method,
            url,
            headers,
            body,
        } => TargetBody {
            kind: Some("http".into()),
            method: Some(method.clone()),
            url: Some(url.clone()),
            headers: Some(headers.clone()),
            body: Some(body.clone()),
            ..Default::default()
        },
        Target::Shell { command, args } => TargetBody {
            kind: Some("shell".into()),
            command: Some(command.clone()),
            args: Some(args.clone()),
            ..Default::default()
        },
        Target::Workflow { workflow_id, input } => TargetBody {
            kind: Some("workflow".into()),
            workflow_id: Some(workflow_id.clone()),
            input: Some(Some(input.clone())),
            ..Default::default()
        },
    };
    ScheduleBody {
        name: Some(Some(spec.name.clone())),
        enabled: Some(Some(spec.enabled)),
        timezone: Some(Some(spec.timezone.name().to_string())),
        schedule: Some(Some(schedule)),
        target: Some(Some(target)),
        policy: Some(Some(PolicyBody {
            overlap: Some(spec.policy.overlap.as_str().into()),
            misfire: Some(spec.policy.misfire.as_str().into()),
            timeout_seconds: Some(spec.policy.timeout_seconds.into()),
            max_concurrency: Some(spec.policy.max_concurrency.into()),
        })),
        retry: Some(Some(RetryBody {
            max_attempts: Some(spec.retry.max_attempts.into()),
            strategy: Some(spec.retry.strategy.as_str().into()),
            initial_delay_seconds: Some(spec.retry.initial_delay_seconds.into()),
            max_delay_seconds: Some(spec.retry.max_delay_seconds.into()),
        })),
        start_at: Some(spec.start_at.map(format_instant)),
        end_at: Some(spec.end_at.map(format_instant)),
        ..Default::default()
    }
}

fn flat<T>(v: &Option<Option<T>>) -> Option<&T> {
    v.as_ref().and_then(|v| v.as_ref())
}

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

fn parse_optional_instant(
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

fn parse_cadence(
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

fn check_size(field: &str, v: &impl Serialize, errors: &mut Vec<FieldError>) {
    let size = json_size(v);
    if size > MAX_TARGET_PART_BYTES {
        errors.push(FieldError::new(
            field,
            format!("must be at most {MAX_TARGET_PART_BYTES} bytes of JSON (got {size})"),
        ));
    }
}

fn required_text<'a>(
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

fn parse_target(t: &TargetBody, errors: &mut Vec<FieldError>) -> Option<Target> {
    let kind = match t.kind.as_deref().map(str::trim) {
        Some(k) => k,
        None => {
            errors.push(FieldError::new("target.kind", "is required"));
            return None;
        }
    };
    let stray_fields: &[(&str, bool)] = &[
        ("method", t.method.is_some()),
        ("url", t.url.is_some()),
        ("headers", t.headers.is_some()),
        ("body", t.body.is_some()),
        ("command", t.command.is_some()),
        ("args", t.args.is_some()),
        ("workflow_id", t.workflow_id.is_some()),
        ("input", t.input.is_some()),
    ];
    let allowed: &[&str] = match kind {
        "http" => &["method", "url", "headers", "body"],
        "shell" => &["command", "args"],
        "workflow" => &["workflow_id", "input"],
        other => {
            errors.push(FieldError::new(
                "target.kind",
                format!("must be one of http, shell, workflow (got {other:?})"),
            ));
            return None;
        }
    };
    for (field, present) in stray_fields {
        if *present && !allowed.contains(field) {
            errors.push(FieldError::new(
                &format!("target.{field}"),
                format!("is not allowed for kind {kind}"),
            ));
        }
    }
    match kind {
        "http" => {
            let method = match t.method.as_deref() {
                None => {
                    errors.push(FieldError::new("target.method", "is required"));
                    None
                }
                Some(m) => {
                    let upper = m.trim().to_ascii_uppercase();
                    if HTTP_METHODS.contains(&upper.as_str()) {
                        Some(upper)
                    } else {
                        errors.push(FieldError::new(
                            "target.method",
                            format!("must be one of {} (got {m:?})", HTTP_METHODS.join(", ")),
                        ));
                        None
                    }
                }
            };
            let url = required_text("target.url", t.url.as_ref(), errors).and_then(|u| {
                match check_url(u) {
                    Ok(()) => Some(u.to_string()),
                    Err(m) => {
                        errors.push(FieldError::new("target.url", m));
                        None
                    }
                }
            });
            let headers = t.headers.clone().unwrap_or_default();
            check_size("target.headers", &headers, errors);
            for (name, value) in &headers {
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                {
                    errors.push(FieldError::new(
                        "target.headers",
                        format!("{name:?} is not a valid header name"),
                    ));
                } else if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                    // What an HTTP client would refuse at every run (CR/LF would split it).
                    errors.push(FieldError::new(
                        "target.headers",
                        format!("the value of {name:?} must not contain control characters"),
                    ));
                }
            }
            let body = flat(&t.body).cloned();
            check_size("target.body", &body, errors);
            Some(Target::Http {
                method: method?,
                url: url?,
                headers,
                body,
            })
        }
        "shell" => {
            let command = required_text("target.command", t.command.as_ref(), errors);
            let args = t.args.clone().unwrap_or_default();
            check_size("target.args", &args, errors);
            if command.is_some_and(|c| c.contains('\0')) {
                errors.push(FieldError::new(
                    "target.command",
                    "must not contain NUL characters",
                ));
            }
            if args.iter().any(|a| a.contains('\0')) {
                errors.push(FieldError::new(
                    "target.args",
                    "must not contain NUL characters",
                ));
            }
            Some(Target::Shell {
                command: command?.to_string(),
                args,
            })
        }
        _ => {
            let workflow_id = required_text("target.workflow_id", t.workflow_id.as_ref(), errors);
            let input = flat(&t.input).cloned().unwrap_or(Value::Null);
            check_size("target.input", &input, errors);
            Some(Target::Workflow {
                workflow_id: workflow_id?.to_string(),
                input,
            })
        }
    }
}

/// Absolute http(s) URL with a host, checked without a URL crate: scheme, then a
/// non-empty authority, no whitespace.
fn check_url(u: &str) -> Result<(), String> {
    let lower = u.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(|| format!("must be an absolute http(s) URL (got {u:?})"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("must include a host (got {u:?})"));
    }
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace".to_string());
    }
    Ok(())
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

fn int_field(
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

fn parse_policy(p: Option<&PolicyBody>, errors: &mut Vec<FieldError>) -> Policy {
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
    }
}

fn parse_retry(r: Option<&RetryBody>, errors: &mut Vec<FieldError>) -> RetryPolicy {
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

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
