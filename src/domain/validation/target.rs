//! Provides the target parser: checks `target.kind`, names every field that kind does not
//! allow, then hands the body to one parser per kind (http, shell, workflow).
//! Pure: it reports problems as `FieldError`s and never resolves hosts or looks at files.

use std::collections::BTreeMap;

use serde_json::Value;

use super::body::{flat, TargetBody};
use super::parse::{check_size, required_text};
use super::FieldError;
use crate::domain::schedule::{Target, HTTP_METHODS};

/// Parses one kind's fields; the kind and stray fields are already checked.
type KindParser = fn(&TargetBody, &mut Vec<FieldError>) -> Option<Target>;

pub(super) fn parse_target(t: &TargetBody, errors: &mut Vec<FieldError>) -> Option<Target> {
    let kind = match t.kind.as_deref().map(str::trim) {
        Some(k) => k,
        None => {
            errors.push(FieldError::new("target.kind", "is required"));
            return None;
        }
    };
    let (allowed, parse): (&[&str], KindParser) = match kind {
        "http" => (&["method", "url", "headers", "body"], parse_http),
        "shell" => (&["command", "args"], parse_shell),
        "workflow" => (&["workflow_id", "input"], parse_workflow),
        other => {
            errors.push(FieldError::new(
                "target.kind",
                format!("must be one of http, shell, workflow (got {other:?})"),
            ));
            return None;
        }
    };
    report_stray_fields(t, kind, allowed, errors);
    parse(t, errors)
}

/// One error per field that is present but not allowed for `kind`.
fn report_stray_fields(t: &TargetBody, kind: &str, allowed: &[&str], errors: &mut Vec<FieldError>) {
    let present_fields: &[(&str, bool)] = &[
        ("method", t.method.is_some()),
        ("url", t.url.is_some()),
        ("headers", t.headers.is_some()),
        ("body", t.body.is_some()),
        ("command", t.command.is_some()),
        ("args", t.args.is_some()),
        ("workflow_id", t.workflow_id.is_some()),
        ("input", t.input.is_some()),
    ];
    for (field, present) in present_fields {
        if *present && !allowed.contains(field) {
            errors.push(FieldError::new(
                &format!("target.{field}"),
                format!("is not allowed for kind {kind}"),
            ));
        }
    }
}

fn parse_http(t: &TargetBody, errors: &mut Vec<FieldError>) -> Option<Target> {
    let method = parse_method(t.method.as_deref(), errors);
    let url =
        required_text("target.url", t.url.as_ref(), errors).and_then(|u| match check_url(u) {
            Ok(()) => Some(u.to_string()),
            Err(m) => {
                errors.push(FieldError::new("target.url", m));
                None
            }
        });
    let headers = t.headers.clone().unwrap_or_default();
    check_size("target.headers", &headers, errors);
    check_headers(&headers, errors);
    let body = flat(&t.body).cloned();
    check_size("target.body", &body, errors);
    Some(Target::Http {
        method: method?,
        url: url?,
        headers,
        body,
    })
}

/// Required, one of `HTTP_METHODS` in any case; returned upper-cased.
fn parse_method(method: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    let Some(m) = method else {
        errors.push(FieldError::new("target.method", "is required"));
        return None;
    };
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

/// Header names must be tokens and values free of control characters.
fn check_headers(headers: &BTreeMap<String, String>, errors: &mut Vec<FieldError>) {
    for (name, value) in headers {
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
}

fn parse_shell(t: &TargetBody, errors: &mut Vec<FieldError>) -> Option<Target> {
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

fn parse_workflow(t: &TargetBody, errors: &mut Vec<FieldError>) -> Option<Target> {
    let workflow_id = required_text("target.workflow_id", t.workflow_id.as_ref(), errors);
    let input = flat(&t.input).cloned().unwrap_or(Value::Null);
    check_size("target.input", &input, errors);
    Some(Target::Workflow {
        workflow_id: workflow_id?.to_string(),
        input,
    })
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
