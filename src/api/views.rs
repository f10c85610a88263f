//! Provides the JSON shapes of API.md (Schedule, ScheduleSummary, Run, RunSummary,
//! Receipt) built from store rows with `From`; rows themselves are never serialised.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::actors::schedule::ActorSnapshot;
use crate::domain::labels::Labels;
use crate::domain::validation::{cadence_body_of, CadenceBody, FieldError};
use crate::domain::{Policy, RetryPolicy, RunStatus, Target, TargetKind};
use crate::store::runs::{ReceiptRow, RunRow};
use crate::store::schedules::ScheduleRecord;
use crate::store::stats::StatsRow;

/// Timestamps are RFC 3339 UTC with `Z`.
mod instant {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::domain::ids::format_instant(*t))
    }

    pub mod option {
        use super::*;
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub timezone: String,
    pub schedule: CadenceBody,
    pub target: Target,
    pub policy: Policy,
    pub retry: RetryPolicy,
    #[serde(with = "instant::option")]
    pub start_at: Option<DateTime<Utc>>,
    #[serde(with = "instant::option")]
    pub end_at: Option<DateTime<Utc>>,
    pub labels: Labels,
    pub description: Option<String>,
    /// At most this many scheduled occurrences; null = unlimited.
    pub max_occurrences: Option<i32>,
    #[serde(with = "instant::option")]
    pub paused_at: Option<DateTime<Utc>>,
    /// Why it is paused (set by pause with a note, cleared on resume).
    pub pause_note: Option<String>,
    #[serde(with = "instant::option")]
    pub next_run_at: Option<DateTime<Utc>>,
    #[serde(with = "instant::option")]
    pub last_run_at: Option<DateTime<Utc>>,
    /// Scheduled occurrences left; null when unlimited, 0 when spent (finished).
    pub occurrences_remaining: Option<i32>,
    #[serde(with = "instant")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "instant")]
    pub updated_at: DateTime<Utc>,
    pub stats: StatsView,
    /// The schedule's live actor on this node (GET only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<ActorSnapshot>,
}

fn cadence_of(r: &ScheduleRecord) -> CadenceBody {
    cadence_body_of(&r.spec.cadence)
}

impl From<&ScheduleRecord> for ScheduleView {
    fn from(r: &ScheduleRecord) -> Self {
        ScheduleView {
            id: r.id.clone(),
            name: r.spec.name.clone(),
            enabled: r.spec.enabled,
            timezone: r.spec.timezone.name().to_string(),
            schedule: cadence_of(r),
            target: r.spec.target.clone(),
            policy: r.spec.policy,
            retry: r.spec.retry,
            start_at: r.spec.start_at,
            end_at: r.spec.end_at,
            labels: r.spec.labels.clone(),
            description: r.spec.description.clone(),
            max_occurrences: r.spec.max_occurrences,
            paused_at: r.paused_at,
            pause_note: r.pause_note.clone(),
            next_run_at: r.next_run_at,
            last_run_at: r.last_run_at,
            occurrences_remaining: r.occurrences_remaining,
            created_at: r.created_at,
            updated_at: r.updated_at,
            stats: StatsView::default(),
            actor: None,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleSummaryView {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub timezone: String,
    pub schedule: CadenceBody,
    pub target_kind: TargetKind,
    pub labels: Labels,
    #[serde(with = "instant::option")]
    pub paused_at: Option<DateTime<Utc>>,
    #[serde(with = "instant::option")]
    pub next_run_at: Option<DateTime<Utc>>,
    #[serde(with = "instant::option")]
    pub last_run_at: Option<DateTime<Utc>>,
    #[serde(with = "instant")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "instant")]
    pub updated_at: DateTime<Utc>,
    pub stats: StatsView,
}

impl From<&ScheduleRecord> for ScheduleSummaryView {
    fn from(r: &ScheduleRecord) -> Self {
        ScheduleSummaryView {
            id: r.id.clone(),
            name: r.spec.name.clone(),
            enabled: r.spec.enabled,
            timezone: r.spec.timezone.name().to_string(),
            schedule: cadence_of(r),
            target_kind: r.spec.target.kind(),
            labels: r.spec.labels.clone(),
            paused_at: r.paused_at,
            next_run_at: r.next_run_at,
            last_run_at: r.last_run_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            stats: StatsView::default(),
        }
    }
}

/// A schedule's run statistics (API.md, *Schedule*, `stats`): zeros and nulls until a
/// run ends.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct StatsView {
    pub runs_total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub dead_lettered: i64,
    pub cancelled: i64,
    pub skipped: i64,
    pub last_status: Option<String>,
    pub last_run_id: Option<String>,
    #[serde(with = "instant::option")]
    pub last_finished_at: Option<DateTime<Utc>>,
    pub last_duration_ms: Option<i64>,
}

impl From<StatsRow> for StatsView {
    fn from(r: StatsRow) -> Self {
        StatsView {
            runs_total: r.runs_total,
            succeeded: r.succeeded,
            failed: r.failed,
            dead_lettered: r.dead_lettered,
            cancelled: r.cancelled,
            skipped: r.skipped,
            last_status: r.last_status,
            last_run_id: r.last_run_id,
            last_finished_at: r.last_finished_at,
            last_duration_ms: r.last_duration_ms,
        }
    }
}

fn duration_ms(r: &RunRow) -> Option<i64> {
    match (r.started_at, r.finished_at) {
        (Some(s), Some(f)) => Some((f - s).num_milliseconds().max(0)),
        _ => None,
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunView {
    pub id: String,
    pub schedule_id: String,
    pub occurrence_key: String,
    #[serde(with = "instant")]
    pub nominal_time: DateTime<Utc>,
    #[serde(with = "instant")]
    pub due_time: DateTime<Utc>,
    #[schema(value_type = RunStatus)]
    pub status: String,
    pub attempt: i32,
    pub claimed_by_worker_id: Option<String>,
    #[serde(with = "instant::option")]
    pub claim_expires_at: Option<DateTime<Utc>>,
    #[serde(with = "instant::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "instant::option")]
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub http_status_code: Option<i32>,
    pub exit_code: Option<i32>,
    #[schema(value_type = Option<Object>)]
    pub result_json: Option<Value>,
    pub error_text: Option<String>,
    #[serde(with = "instant::option")]
    pub retry_available_at: Option<DateTime<Utc>>,
    pub trigger_reason: Option<String>,
    #[serde(with = "instant")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "instant")]
    pub updated_at: DateTime<Utc>,
}

impl From<RunRow> for RunView {
    fn from(r: RunRow) -> Self {
        RunView {
            duration_ms: duration_ms(&r),
            id: r.id,
            schedule_id: r.schedule_id,
            occurrence_key: r.occurrence_key,
            nominal_time: r.nominal_time,
            due_time: r.due_time,
            status: r.status.to_string(),
            attempt: r.attempt,
            claimed_by_worker_id: r.claimed_by_worker_id,
            claim_expires_at: r.claim_expires_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            http_status_code: r.http_status_code,
            exit_code: r.exit_code,
            result_json: r.result_json,
            error_text: r.error_text,
            retry_available_at: r.retry_available_at,
            trigger_reason: r.trigger_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunSummaryView {
    pub id: String,
    pub schedule_id: String,
    pub occurrence_key: String,
    #[serde(with = "instant")]
    pub nominal_time: DateTime<Utc>,
    #[schema(value_type = RunStatus)]
    pub status: String,
    pub attempt: i32,
    #[serde(with = "instant::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "instant::option")]
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    #[serde(with = "instant")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "instant")]
    pub updated_at: DateTime<Utc>,
}

impl From<RunRow> for RunSummaryView {
    fn from(r: RunRow) -> Self {
        RunSummaryView {
            duration_ms: duration_ms(&r),
            id: r.id,
            schedule_id: r.schedule_id,
            occurrence_key: r.occurrence_key,
            nominal_time: r.nominal_time,
            status: r.status.to_string(),
            attempt: r.attempt,
            started_at: r.started_at,
            finished_at: r.finished_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReceiptView {
    pub id: String,
    pub run_id: String,
    /// One of `stdout`, `stderr`, `http_response`, `workflow_result`, `summary`.
    #[schema(value_type = ReceiptKind)]
    pub receipt_kind: String,
    pub content_type: String,
    pub body: String,
    #[serde(with = "instant")]
    pub created_at: DateTime<Utc>,
}

impl From<ReceiptRow> for ReceiptView {
    fn from(r: ReceiptRow) -> Self {
        ReceiptView {
            id: r.id,
            run_id: r.run_id,
            receipt_kind: r.receipt_kind,
            content_type: r.content_type,
            body: r.body,
            created_at: r.created_at,
        }
    }
}

/// A page of schedules.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleList {
    pub items: Vec<ScheduleSummaryView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of runs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunList {
    pub items: Vec<RunSummaryView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A run's receipts, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReceiptList {
    pub items: Vec<ReceiptView>,
}

/// The next fire instants (UTC).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpcomingView {
    pub items: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedView {
    pub deleted: bool,
    pub id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PausedView {
    pub id: String,
    pub enabled: bool,
    #[serde(with = "instant::option")]
    pub paused_at: Option<DateTime<Utc>>,
    pub pause_note: Option<String>,
}

/// The optional body of `POST /v1/schedules/{id}/pause`.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    /// Why the schedule is paused; at most 1,024 characters; shown as `pause_note`.
    pub note: Option<String>,
}

/// Longest pause note.
const MAX_NOTE_CHARS: usize = 1024;

/// The note a pause body carries, trimmed; blank means none; too long names `note`.
pub fn pause_note(body: PauseBody) -> Result<Option<String>, FieldError> {
    let note = body
        .note
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    match note {
        Some(n) if n.chars().count() > MAX_NOTE_CHARS => Err(FieldError::new(
            "note",
            format!("must be at most {MAX_NOTE_CHARS} characters"),
        )),
        other => Ok(other),
    }
}

/// What a backfill did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BackfilledView {
    pub schedule_id: String,
    /// Runs this request created (`pending`).
    pub created: usize,
    /// Occurrences in the window that already existed (ran, or an earlier backfill).
    pub existing: usize,
    /// The created runs, oldest first.
    pub run_ids: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResumedView {
    pub id: String,
    pub enabled: bool,
    #[serde(with = "instant::option")]
    pub paused_at: Option<DateTime<Utc>>,
    #[serde(with = "instant::option")]
    pub next_run_at: Option<DateTime<Utc>>,
}

/// The body of `POST /v1/schedules/{id}/trigger`.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// Why the run was triggered; required, non-blank, at most 1000 characters.
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TriggeredView {
    pub run_id: String,
    pub schedule_id: String,
    pub occurrence_key: String,
    #[schema(value_type = RunStatus)]
    pub status: String,
    #[serde(with = "instant")]
    pub created_at: DateTime<Utc>,
}

crate::domain::schedule::text_enum!(
    /// The kind of an execution receipt.
    ReceiptKind {
        Stdout => "stdout",
        Stderr => "stderr",
        HttpResponse => "http_response",
        WorkflowResult => "workflow_result",
        Summary => "summary",
    }
);
