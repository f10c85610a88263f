//! Provides the target executors: each call runs one target (http, shell or workflow)
//! under a timeout and a cancellation token and returns an `Outcome` with its receipts.
//! Executors never touch the database and know nothing about actors.

mod guard;
pub mod http;
pub mod shell;
mod spawner;
pub mod workflow;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::domain::schedule::Target;
use crate::security::TargetPolicy;

pub use workflow::{WorkflowContext, WorkflowRegistry, WorkflowResult};

/// How much of a body a receipt keeps (stdout, stderr, http response body).
pub const RECEIPT_BODY_LIMIT: usize = 64 * 1024;

/// Who is executing: passed to targets so they can deduplicate.
#[derive(Debug, Clone)]
pub struct RunIdentity {
    pub schedule_id: String,
    pub run_id: String,
    pub occurrence_key: String,
    pub attempt: i32,
    pub nominal_time: DateTime<Utc>,
}

impl RunIdentity {
    /// The nominal time as RFC 3339 UTC (`2024-01-01T00:00:00Z`).
    pub fn nominal_time_rfc3339(&self) -> String {
        self.nominal_time
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }
}

/// How one execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeStatus {
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

/// A receipt to be stored with the run.
///
/// Kinds: "stdout", "stderr", "http_response", "workflow_result", "summary".
#[derive(Debug, Clone)]
pub struct ReceiptDraft {
    pub kind: &'static str,
    pub content_type: String,
    pub body: String,
}

/// The result of executing one target.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: OutcomeStatus,
    pub http_status_code: Option<i32>,
    pub exit_code: Option<i32>,
    pub result_json: Option<serde_json::Value>,
    pub error_text: Option<String>,
    pub receipts: Vec<ReceiptDraft>,
}

impl Outcome {
    /// A bare outcome with the given status and nothing else.
    pub fn new(status: OutcomeStatus) -> Outcome {
        Outcome {
            status,
            http_status_code: None,
            exit_code: None,
            result_json: None,
            error_text: None,
            receipts: Vec::new(),
        }
    }

    /// `Failed` with the given error text.
    pub fn failed(error_text: impl Into<String>) -> Outcome {
        Outcome {
            error_text: Some(error_text.into()),
            ..Outcome::new(OutcomeStatus::Failed)
        }
    }

    /// `TimedOut` with "timed out after N seconds".
    pub fn timed_out(timeout: Duration) -> Outcome {
        Outcome {
            error_text: Some(format!(
                "timed out after {} seconds",
                format_seconds(timeout)
            )),
            ..Outcome::new(OutcomeStatus::TimedOut)
        }
    }

    /// `Cancelled` with error text "cancelled".
    pub fn cancelled() -> Outcome {
        Outcome {
            error_text: Some("cancelled".to_string()),
            ..Outcome::new(OutcomeStatus::Cancelled)
        }
    }

    pub fn is_success(&self) -> bool {
        self.status == OutcomeStatus::Succeeded
    }
}

/// Why execution was stopped before the work ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupt {
    Cancelled,
    TimedOut,
}

impl Interrupt {
    pub(crate) fn outcome(self, timeout: Duration) -> Outcome {
        match self {
            Interrupt::Cancelled => Outcome::cancelled(),
            Interrupt::TimedOut => Outcome::timed_out(timeout),
        }
    }
}

/// Seconds as text: whole seconds without a fraction ("30"), otherwise as needed ("0.5").
pub(crate) fn format_seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}", d.as_secs_f64())
    }
}

/// Keeps the first `RECEIPT_BODY_LIMIT` bytes of a stream and counts the rest.
#[derive(Debug, Default)]
pub(crate) struct CappedBuffer {
    kept: Vec<u8>,
    dropped: u64,
}

impl CappedBuffer {
    pub(crate) fn new() -> CappedBuffer {
        CappedBuffer::default()
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        let room = RECEIPT_BODY_LIMIT.saturating_sub(self.kept.len());
        let take = room.min(chunk.len());
        self.kept.extend_from_slice(&chunk[..take]);
        self.dropped += (chunk.len() - take) as u64;
    }

    /// The kept bytes as UTF-8 (lossy) and the number of bytes not shown. When the cut
    /// falls inside a multi-byte character, that character's bytes count as not shown.
    pub(crate) fn finish(mut self) -> (String, u64) {
        if self.dropped > 0 {
            let cut = incomplete_utf8_tail(&self.kept);
            if cut > 0 {
                self.kept.truncate(self.kept.len() - cut);
                self.dropped += cut as u64;
            }
        }
        (
            String::from_utf8_lossy(&self.kept).into_owned(),
            self.dropped,
        )
    }

    /// Text for a plain-text receipt: a cut body ends with
    /// `\n[truncated: N bytes not shown]`.
    pub(crate) fn into_receipt_text(self) -> String {
        let (mut text, dropped) = self.finish();
        if dropped > 0 {
            text.push_str(&format!("\n[truncated: {dropped} bytes not shown]"));
        }
        text
    }
}

/// How many trailing bytes form the start of a UTF-8 character that is cut off.
fn incomplete_utf8_tail(bytes: &[u8]) -> usize {
    let n = bytes.len();
    for back in 1..=n.min(4) {
        let b = bytes[n - back];
        if b & 0xC0 == 0x80 {
            continue; // continuation byte: keep looking for the lead byte
        }
        let expected = if b & 0x80 == 0 {
            1
        } else if b & 0xE0 == 0xC0 {
            2
        } else if b & 0xF0 == 0xE0 {
            3
        } else if b & 0xF8 == 0xF0 {
            4
        } else {
            return 0; // not a valid lead byte: leave it to the lossy conversion
        };
        return if back < expected { back } else { 0 };
    }
    0
}

/// Cheap to clone (Arc inside); one per process.
#[derive(Clone)]
pub struct Executors {
    client: reqwest::Client,
    workflows: WorkflowRegistry,
    policy: Arc<TargetPolicy>,
}

impl std::fmt::Debug for Executors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executors")
            .field("workflows", &self.workflows)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Executors {
    /// Builds the executors under `policy`, with one shared HTTP client that checks every
    /// address it connects to (redirects followed, up to 10, each hop checked).
    pub fn new(workflows: WorkflowRegistry, policy: TargetPolicy) -> Executors {
        Executors {
            client: guard::http_client(&policy.net),
            workflows,
            policy: Arc::new(policy),
        }
    }

    pub fn workflows(&self) -> &WorkflowRegistry {
        &self.workflows
    }

    /// Runs the target. Returns when the work has ended: on `timeout` expiry the work is
    /// stopped (as for cancellation) and status is TimedOut with error_text "timed out
    /// after N seconds"; when `cancel` fires the work is stopped and status is Cancelled
    /// (error_text "cancelled"). A token already cancelled on entry starts nothing.
    pub async fn execute(
        &self,
        target: &Target,
        identity: &RunIdentity,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> Outcome {
        tracing::debug!(
            run_id = %identity.run_id,
            schedule_id = %identity.schedule_id,
            attempt = identity.attempt,
            kind = target_kind(target),
            timeout_secs = timeout.as_secs_f64(),
            "executing target"
        );
        let outcome = match target {
            Target::Http {
                method,
                url,
                headers,
                body,
            } => {
                let request = http::HttpRequest {
                    method,
                    url,
                    headers,
                    body: body.as_ref(),
                };
                let net = &self.policy.net;
                http::execute(&self.client, net, request, identity, timeout, cancel).await
            }
            Target::Shell { command, args } => {
                let policy = &self.policy.shell;
                shell::execute(policy, command, args, identity, timeout, cancel).await
            }
            Target::Workflow { workflow_id, input } => {
                workflow::execute(
                    &self.workflows,
                    workflow_id,
                    input,
                    identity,
                    timeout,
                    cancel,
                )
                .await
            }
        };
        tracing::debug!(
            run_id = %identity.run_id,
            status = ?outcome.status,
            error = outcome.error_text.as_deref().unwrap_or(""),
            "target execution ended"
        );
        outcome
    }
}

fn target_kind(target: &Target) -> &'static str {
    match target {
        Target::Http { .. } => "http",
        Target::Shell { .. } => "shell",
        Target::Workflow { .. } => "workflow",
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::{Executors, Outcome, RunIdentity, WorkflowRegistry};
    use crate::domain::schedule::Target;
    use crate::security::TargetPolicy;
    use chrono::TimeZone;

    /// Executes `target` (20 s timeout, never cancelled) under `policy`.
    pub(crate) async fn execute_under(policy: TargetPolicy, target: &Target) -> Outcome {
        let cancel = tokio_util::sync::CancellationToken::new();
        let timeout = std::time::Duration::from_secs(20);
        Executors::new(WorkflowRegistry::new(), policy)
            .execute(target, &identity(), timeout, cancel)
            .await
    }

    pub(crate) fn identity() -> RunIdentity {
        RunIdentity {
            schedule_id: "sch_01".to_string(),
            run_id: "run_01".to_string(),
            occurrence_key: "sch_01:2024-01-02T03:04:05Z".to_string(),
            attempt: 2,
            nominal_time: chrono::Utc
                .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
                .single()
                .unwrap_or_default(),
        }
    }

    /// Alive = exists and is not a zombie (a zombie may linger if nobody reaps orphans).
    pub(crate) fn is_alive(pid: i32) -> bool {
        // SAFETY: signal 0 only checks for existence.
        if unsafe { libc::kill(pid, 0) } != 0 {
            return false;
        }
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
                .unwrap_or(true),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_buffer_keeps_limit_and_counts_rest() {
        let mut b = CappedBuffer::new();
        b.push(&vec![b'a'; RECEIPT_BODY_LIMIT - 10]);
        b.push(&[b'b'; 30]);
        b.push(&[b'c'; 5]);
        let (text, dropped) = b.finish();
        assert_eq!(text.len(), RECEIPT_BODY_LIMIT);
        assert_eq!(dropped, 25);
        assert!(text.ends_with("bbbbbbbbbb"));
    }

    #[test]
    fn capped_buffer_untruncated_has_no_marker() {
        let mut b = CappedBuffer::new();
        b.push(b"hello\n");
        assert_eq!(b.into_receipt_text(), "hello\n");
    }

    #[test]
    fn capped_buffer_marker_and_split_character() {
        let mut b = CappedBuffer::new();
        b.push(&vec![b'a'; RECEIPT_BODY_LIMIT - 1]);
        b.push("é!".as_bytes()); // 2-byte char cut after its first byte
        let text = b.into_receipt_text();
        let expected = format!(
            "{}\n[truncated: 3 bytes not shown]",
            "a".repeat(RECEIPT_BODY_LIMIT - 1)
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn format_seconds_whole_and_fraction() {
        assert_eq!(format_seconds(Duration::from_secs(30)), "30");
        assert_eq!(format_seconds(Duration::from_millis(500)), "0.5");
        assert_eq!(
            Outcome::timed_out(Duration::from_secs(2))
                .error_text
                .as_deref(),
            Some("timed out after 2 seconds")
        );
    }
}
