//! Defines the wire bodies clients send for a schedule (create, replace, patch) and their
//! inverse: merging a PATCH onto the current definition, and the body that recreates a spec.
//! Only shapes and serde rules live here; checking values is the parsers' job.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::domain::cadence::Cadence;
use crate::domain::labels::Labels;
use crate::domain::schedule::{ScheduleSpec, Target};

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
    pub jitter_seconds: Option<i64>,
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
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub labels: Option<Option<Labels>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub max_occurrences: Option<Option<i64>>,
    // Server-owned, ignored.
    #[serde(default, rename = "pause_note")]
    #[schema(ignore)]
    _pause_note: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "occurrences_remaining")]
    #[schema(ignore)]
    _occurrences_remaining: Option<serde::de::IgnoredAny>,
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
    #[serde(default, rename = "stats")]
    #[schema(ignore)]
    _stats: Option<serde::de::IgnoredAny>,
}

/// Merges a PATCH body onto the current definition (as a body): `policy` and `retry`
/// merge field by field, everything else present replaces.
pub fn merge_patch(current: &ScheduleBody, patch: &ScheduleBody) -> ScheduleBody {
    let mut merged = current.clone();
    macro_rules! replace_if_present {
        ($($field:ident),+) => { $(if patch.$field.is_some() { merged.$field = patch.$field.clone(); })+ };
    }
    replace_if_present!(
        name,
        enabled,
        timezone,
        schedule,
        target,
        start_at,
        end_at,
        labels,
        description,
        max_occurrences
    );
    if let Some(p) = &patch.policy {
        let base = flat(&current.policy).cloned().unwrap_or_default();
        merged.policy = Some(p.as_ref().map(|p| PolicyBody {
            overlap: p.overlap.clone().or(base.overlap),
            misfire: p.misfire.clone().or(base.misfire),
            timeout_seconds: p.timeout_seconds.or(base.timeout_seconds),
            max_concurrency: p.max_concurrency.or(base.max_concurrency),
            jitter_seconds: p.jitter_seconds.or(base.jitter_seconds),
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

/// The cadence as a body would state it (what a view shows of it).
pub fn cadence_body_of(cadence: &Cadence) -> CadenceBody {
    use crate::domain::ids::format_instant;
    match cadence {
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
    }
}

/// The body that would recreate `spec` exactly (used as the base of a PATCH).
pub fn body_of(spec: &ScheduleSpec) -> ScheduleBody {
    use crate::domain::ids::format_instant;
    let schedule = cadence_body_of(&spec.cadence);
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
            jitter_seconds: Some(spec.policy.jitter_seconds.into()),
        })),
        retry: Some(Some(RetryBody {
            max_attempts: Some(spec.retry.max_attempts.into()),
            strategy: Some(spec.retry.strategy.as_str().into()),
            initial_delay_seconds: Some(spec.retry.initial_delay_seconds.into()),
            max_delay_seconds: Some(spec.retry.max_delay_seconds.into()),
        })),
        start_at: Some(spec.start_at.map(format_instant)),
        end_at: Some(spec.end_at.map(format_instant)),
        labels: Some(Some(spec.labels.clone())),
        description: Some(spec.description.clone()),
        max_occurrences: Some(spec.max_occurrences.map(i64::from)),
        ..Default::default()
    }
}

pub(super) fn flat<T>(v: &Option<Option<T>>) -> Option<&T> {
    v.as_ref().and_then(|v| v.as_ref())
}
