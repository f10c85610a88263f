//! Defines a schedule's validated parts: target, policies, retry and the whole spec.
//!
//! Everything here is already checked: a `ScheduleSpec` can only be built by
//! `validation::parse_schedule`, which reports every bad field at once. No I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cadence::Cadence;

/// Declares a text enum with exactly one string mapping per variant.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one text form used in JSON and in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The accepted values, for error messages.
            pub fn expected() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("must be one of {} (got {:?})", Self::expected(), other)),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                ::utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(::utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl ::utoipa::ToSchema for $name {}
    };
}
pub(crate) use text_enum;

text_enum!(
    /// What to do with a due run while the schedule's active runs fill its capacity.
    OverlapPolicy { Forbid => "forbid", Allow => "allow", QueueLatest => "queue_latest", Replace => "replace" }
);

text_enum!(
    /// What to do with occurrences that became due while the schedule could not fire.
    MisfirePolicy { Skip => "skip", RunOnceIfLate => "run_once_if_late", CatchUp => "catch_up" }
);

text_enum!(
    /// How failed runs are retried.
    RetryStrategy { Exponential => "exponential", None => "none" }
);

text_enum!(
    /// The kind of a target, as listed in summaries.
    TargetKind { Http => "http", Shell => "shell", Workflow => "workflow" }
);

/// HTTP methods a target may use (stored upper-case).
pub const HTTP_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// What a run executes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    Http {
        /// Upper-case, one of `HTTP_METHODS`.
        method: String,
        /// Absolute http(s) URL.
        url: String,
        headers: BTreeMap<String, String>,
        /// JSON body sent as `application/json`; `None` sends no body.
        #[schema(value_type = Option<Object>)]
        body: Option<Value>,
    },
    Shell {
        /// The program, spawned directly (no shell).
        command: String,
        args: Vec<String>,
    },
    Workflow {
        workflow_id: String,
        #[schema(value_type = Object)]
        input: Value,
    },
}

impl Target {
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Http { .. } => TargetKind::Http,
            Target::Shell { .. } => TargetKind::Shell,
            Target::Workflow { .. } => TargetKind::Workflow,
        }
    }
}

/// Dispatch and execution limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Policy {
    pub overlap: OverlapPolicy,
    pub misfire: MisfirePolicy,
    pub timeout_seconds: i32,
    pub max_concurrency: i32,
    /// Each scheduled occurrence is due up to this many seconds after its nominal time
    /// (`domain::jitter`); 0 = none.
    pub jitter_seconds: i32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            overlap: OverlapPolicy::Forbid,
            misfire: MisfirePolicy::RunOnceIfLate,
            timeout_seconds: 300,
            max_concurrency: 1,
            jitter_seconds: 0,
        }
    }
}

/// Retry rules for failed runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RetryPolicy {
    pub max_attempts: i32,
    pub strategy: RetryStrategy,
    pub initial_delay_seconds: i32,
    pub max_delay_seconds: i32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 0,
            strategy: RetryStrategy::Exponential,
            initial_delay_seconds: 30,
            max_delay_seconds: 900,
        }
    }
}

/// A fully validated schedule definition (what a create or replace body means).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    pub name: String,
    pub enabled: bool,
    pub timezone: Tz,
    pub cadence: Cadence,
    pub target: Target,
    pub policy: Policy,
    pub retry: RetryPolicy,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub labels: super::labels::Labels,
    pub description: Option<String>,
    /// At most this many scheduled occurrences, then finished; `None` = unlimited.
    pub max_occurrences: Option<i32>,
}

impl ScheduleSpec {
    /// The cadence bounds as the cadence module wants them.
    pub fn bounds(&self) -> super::cadence::Bounds {
        super::cadence::Bounds {
            start_at: self.start_at,
            end_at: self.end_at,
        }
    }

    /// The first occurrence strictly after `after`, inside the bounds.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cadence
            .next_after(self.timezone, &self.bounds(), after)
    }
}
