//! Executes workflow targets: in-process handlers registered by id. Cancellation is
//! cooperative (the handler's token is cancelled and the handler is awaited until it
//! ends); a timeout cancels the token and stops awaiting. Panics become failures.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Interrupt, Outcome, OutcomeStatus, ReceiptDraft, RunIdentity};

/// What a workflow handler returns: a result JSON or an error message.
pub type WorkflowResult = Result<Value, String>;

/// What a handler is given.
#[derive(Debug, Clone)]
pub struct WorkflowContext {
    pub identity: RunIdentity,
    pub input: Value,
    /// Cancelled when the run is cancelled or times out; handlers should stop promptly.
    pub cancel: CancellationToken,
}

type Handler = Arc<dyn Fn(WorkflowContext) -> BoxFuture<'static, WorkflowResult> + Send + Sync>;

/// Workflow handlers by id. Cheap to clone.
#[derive(Clone, Default)]
pub struct WorkflowRegistry {
    handlers: Arc<HashMap<String, Handler>>,
}

impl std::fmt::Debug for WorkflowRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowRegistry")
            .field("ids", &self.ids())
            .finish()
    }
}

impl WorkflowRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with `builtin.noop`, `builtin.echo`, `builtin.sleep` and `builtin.fail`.
    pub fn with_builtins() -> Self {
        let mut registry = Self::new();
        registry.register("builtin.noop", |_ctx| async { Ok(Value::Null) });
        registry.register("builtin.echo", |ctx| async move { Ok(ctx.input) });
        registry.register("builtin.sleep", builtin_sleep);
        registry.register("builtin.fail", |ctx| async move {
            let message = ctx
                .input
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("builtin.fail was asked to fail");
            Err(message.to_string())
        });
        registry
    }

    /// Registers (or replaces) the handler for `id`.
    pub fn register<F, Fut>(&mut self, id: impl Into<String>, handler: F)
    where
        F: Fn(WorkflowContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = WorkflowResult> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ctx| handler(ctx).boxed());
        Arc::make_mut(&mut self.handlers).insert(id.into(), handler);
    }

    pub fn contains(&self, id: &str) -> bool {
        self.handlers.contains_key(id)
    }

    /// Registered ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.handlers.keys().cloned().collect();
        ids.sort();
        ids
    }

    fn get(&self, id: &str) -> Option<Handler> {
        self.handlers.get(id).cloned()
    }
}

/// `builtin.sleep`: input `{"seconds": n}`; sleeps, returning `Err("cancelled")` promptly
/// when cancelled.
async fn builtin_sleep(ctx: WorkflowContext) -> WorkflowResult {
    let seconds = ctx.input.get("seconds").and_then(Value::as_f64);
    let duration = seconds
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
            format!(
                "builtin.sleep needs input {{\"seconds\": <non-negative number>}} (got {})",
                ctx.input
            )
        })?;
    tokio::select! {
        _ = ctx.cancel.cancelled() => Err("cancelled".to_string()),
        _ = tokio::time::sleep(duration) => Ok(serde_json::json!({ "slept_seconds": duration.as_secs_f64() })),
    }
}

/// Runs the handler registered as `workflow_id`.
pub(crate) async fn execute(
    registry: &WorkflowRegistry,
    workflow_id: &str,
    input: &Value,
    identity: &RunIdentity,
    timeout: Duration,
    cancel: CancellationToken,
) -> Outcome {
    let Some(handler) = registry.get(workflow_id) else {
        return Outcome::failed(format!("workflow {workflow_id:?} is not registered"));
    };
    if cancel.is_cancelled() {
        return Outcome::cancelled();
    }
    // A child token: cancelling the run cancels it, and a timeout cancels only it.
    let handler_cancel = cancel.child_token();
    let ctx = WorkflowContext {
        identity: identity.clone(),
        input: input.clone(),
        cancel: handler_cancel.clone(),
    };
    tracing::debug!(run_id = %identity.run_id, workflow_id, "starting workflow handler");

    let call = std::panic::catch_unwind(AssertUnwindSafe(|| handler(ctx)));
    let future = match call {
        Ok(future) => AssertUnwindSafe(future).catch_unwind(),
        Err(panic) => return panicked(panic),
    };
    let mut future = std::pin::pin!(future);
    let deadline = tokio::time::sleep(timeout);
    let mut deadline = std::pin::pin!(deadline);
    let mut cancelled = false;

    let ended = loop {
        tokio::select! {
            biased;
            ended = &mut future => break ended,
            _ = &mut deadline => {
                handler_cancel.cancel();
                tracing::debug!(run_id = %identity.run_id, workflow_id, "workflow handler timed out");
                return Interrupt::TimedOut.outcome(timeout);
            }
            _ = cancel.cancelled(), if !cancelled => {
                // Cooperative: signal the handler, then keep awaiting it.
                cancelled = true;
                handler_cancel.cancel();
                tracing::debug!(run_id = %identity.run_id, workflow_id, "workflow handler cancellation signalled");
            }
        }
    };

    // The handler's token is a child of `cancel`, so the handler may have seen the
    // cancellation (and ended) before the select above did.
    let cancelled = cancelled || cancel.is_cancelled();
    let result = match ended {
        Ok(result) => result,
        Err(panic) => {
            let outcome = panicked(panic);
            return if cancelled {
                Outcome {
                    error_text: outcome.error_text.map(|e| format!("cancelled ({e})")),
                    ..Outcome::cancelled()
                }
            } else {
                outcome
            };
        }
    };
    match (result, cancelled) {
        (Ok(value), cancelled) => {
            let receipt = ReceiptDraft {
                kind: "workflow_result",
                content_type: "application/json".to_string(),
                body: value.to_string(),
            };
            let base = if cancelled {
                Outcome::cancelled()
            } else {
                Outcome::new(OutcomeStatus::Succeeded)
            };
            Outcome {
                result_json: Some(value),
                receipts: vec![receipt],
                ..base
            }
        }
        (Err(message), false) => Outcome::failed(message),
        (Err(message), true) if message == "cancelled" => Outcome::cancelled(),
        (Err(message), true) => Outcome {
            error_text: Some(format!("cancelled (handler returned: {message})")),
            ..Outcome::cancelled()
        },
    }
}

fn panicked(panic: Box<dyn std::any::Any + Send>) -> Outcome {
    let message = if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    };
    Outcome::failed(format!("workflow handler panicked: {message}"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use super::*;
    use crate::domain::schedule::Target;
    use crate::executors::test_support::identity;
    use crate::executors::Executors;

    fn workflow(id: &str, input: Value) -> Target {
        Target::Workflow {
            workflow_id: id.to_string(),
            input,
        }
    }

    async fn run_with(
        registry: WorkflowRegistry,
        target: &Target,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> Outcome {
        Executors::new(registry, crate::security::TargetPolicy::unrestricted())
            .execute(target, &identity(), timeout, cancel)
            .await
    }

    async fn run(target: &Target) -> Outcome {
        run_with(
            WorkflowRegistry::with_builtins(),
            target,
            Duration::from_secs(10),
            CancellationToken::new(),
        )
        .await
    }

    fn cancel_after(ms: u64) -> CancellationToken {
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            trigger.cancel();
        });
        cancel
    }

    #[test]
    fn registry_lists_builtins() {
        let registry = WorkflowRegistry::with_builtins();
        assert_eq!(
            registry.ids(),
            vec![
                "builtin.echo",
                "builtin.fail",
                "builtin.noop",
                "builtin.sleep"
            ]
        );
        assert!(registry.contains("builtin.noop"));
        assert!(!registry.contains("builtin.nope"));
        assert!(WorkflowRegistry::new().ids().is_empty());
        // Clones share nothing mutable: registering on a clone leaves the original alone.
        let mut copy = registry.clone();
        copy.register("custom", |_ctx| async { Ok(Value::Bool(true)) });
        assert!(copy.contains("custom"));
        assert!(!registry.contains("custom"));
    }

    #[tokio::test]
    async fn noop_returns_null() {
        let outcome = run(&workflow("builtin.noop", Value::Null)).await;
        assert_eq!(outcome.status, OutcomeStatus::Succeeded, "{outcome:?}");
        assert_eq!(outcome.result_json, Some(Value::Null));
        assert_eq!(outcome.error_text, None);
        assert_eq!(outcome.receipts.len(), 1);
        assert_eq!(outcome.receipts[0].kind, "workflow_result");
        assert_eq!(outcome.receipts[0].content_type, "application/json");
        assert_eq!(outcome.receipts[0].body, "null");
    }

    #[tokio::test]
    async fn echo_returns_its_input() {
        let input = serde_json::json!({"a": [1, 2, {"b": "c"}]});
        let outcome = run(&workflow("builtin.echo", input.clone())).await;
        assert_eq!(outcome.status, OutcomeStatus::Succeeded);
        assert_eq!(outcome.result_json, Some(input.clone()));
        let body: Value = serde_json::from_str(&outcome.receipts[0].body).unwrap();
        assert_eq!(body, input);
    }

    #[tokio::test]
    async fn sleep_sleeps_fractional_seconds() {
        let started = Instant::now();
        let outcome = run(&workflow(
            "builtin.sleep",
            serde_json::json!({"seconds": 0.2}),
        ))
        .await;
        assert_eq!(outcome.status, OutcomeStatus::Succeeded, "{outcome:?}");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn sleep_rejects_bad_input() {
        for input in [
            Value::Null,
            serde_json::json!({"seconds": "3"}),
            serde_json::json!({"seconds": -1}),
            serde_json::json!({"seconds": 1e300}),
        ] {
            let outcome = run(&workflow("builtin.sleep", input.clone())).await;
            assert_eq!(outcome.status, OutcomeStatus::Failed, "{input}");
            let err = outcome.error_text.unwrap();
            assert!(err.starts_with("builtin.sleep needs input"), "{err}");
        }
    }

    #[tokio::test]
    async fn sleep_is_cancelled_promptly() {
        let started = Instant::now();
        let outcome = run_with(
            WorkflowRegistry::with_builtins(),
            &workflow("builtin.sleep", serde_json::json!({"seconds": 30})),
            Duration::from_secs(60),
            cancel_after(100),
        )
        .await;
        assert_eq!(outcome.status, OutcomeStatus::Cancelled, "{outcome:?}");
        assert_eq!(outcome.error_text.as_deref(), Some("cancelled"));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn sleep_times_out() {
        let started = Instant::now();
        let outcome = run_with(
            WorkflowRegistry::with_builtins(),
            &workflow("builtin.sleep", serde_json::json!({"seconds": 30})),
            Duration::from_millis(300),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(outcome.status, OutcomeStatus::TimedOut);
        assert_eq!(
            outcome.error_text.as_deref(),
            Some("timed out after 0.3 seconds")
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn fail_uses_message_or_default() {
        let outcome = run(&workflow(
            "builtin.fail",
            serde_json::json!({"message": "nope"}),
        ))
        .await;
        assert_eq!(outcome.status, OutcomeStatus::Failed);
        assert_eq!(outcome.error_text.as_deref(), Some("nope"));
        assert!(outcome.receipts.is_empty());
        let outcome = run(&workflow("builtin.fail", Value::Null)).await;
        assert_eq!(
            outcome.error_text.as_deref(),
            Some("builtin.fail was asked to fail")
        );
    }

    #[tokio::test]
    async fn unknown_workflow_is_reported() {
        let outcome = run(&workflow("acme.missing", Value::Null)).await;
        assert_eq!(outcome.status, OutcomeStatus::Failed);
        assert_eq!(
            outcome.error_text.as_deref(),
            Some("workflow \"acme.missing\" is not registered")
        );
    }

    #[tokio::test]
    async fn handler_sees_identity_and_input() {
        let mut registry = WorkflowRegistry::new();
        registry.register("ident", |ctx: WorkflowContext| async move {
            Ok(serde_json::json!({
                "run_id": ctx.identity.run_id,
                "attempt": ctx.identity.attempt,
                "input": ctx.input,
            }))
        });
        let outcome = run_with(
            registry,
            &workflow("ident", serde_json::json!(7)),
            Duration::from_secs(5),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(
            outcome.result_json,
            Some(serde_json::json!({"run_id": "run_01", "attempt": 2, "input": 7}))
        );
    }

    #[tokio::test]
    async fn handler_ignoring_cancellation_runs_to_its_end() {
        let finished = Arc::new(AtomicBool::new(false));
        let saw_cancel = Arc::new(AtomicBool::new(false));
        let mut registry = WorkflowRegistry::new();
        let (f, s) = (finished.clone(), saw_cancel.clone());
        registry.register("stubborn", move |ctx: WorkflowContext| {
            let (f, s) = (f.clone(), s.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(600)).await;
                s.store(ctx.cancel.is_cancelled(), Ordering::SeqCst);
                f.store(true, Ordering::SeqCst);
                Ok(Value::from("finished anyway"))
            }
        });
        let started = Instant::now();
        let outcome = run_with(
            registry,
            &workflow("stubborn", Value::Null),
            Duration::from_secs(10),
            cancel_after(50),
        )
        .await;
        assert!(started.elapsed() >= Duration::from_millis(600));
        assert!(
            finished.load(Ordering::SeqCst),
            "returned before the handler ended"
        );
        assert!(
            saw_cancel.load(Ordering::SeqCst),
            "handler token was not cancelled"
        );
        assert_eq!(outcome.status, OutcomeStatus::Cancelled, "{outcome:?}");
        assert_eq!(outcome.error_text.as_deref(), Some("cancelled"));
        assert_eq!(outcome.result_json, Some(Value::from("finished anyway")));
    }

    #[tokio::test]
    async fn handler_ignoring_cancellation_is_cut_off_by_the_timeout() {
        let (tx, rx) = tokio::sync::oneshot::channel::<CancellationToken>();
        let tx = std::sync::Mutex::new(Some(tx));
        let mut registry = WorkflowRegistry::new();
        registry.register("forever", move |ctx: WorkflowContext| {
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(ctx.cancel.clone());
            }
            async move {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Value::Null)
            }
        });
        let started = Instant::now();
        let outcome = run_with(
            registry,
            &workflow("forever", Value::Null),
            Duration::from_millis(400),
            cancel_after(50),
        )
        .await;
        let elapsed = started.elapsed();
        assert_eq!(outcome.status, OutcomeStatus::TimedOut, "{outcome:?}");
        assert!(elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3));
        let token = rx.await.unwrap();
        assert!(token.is_cancelled());
    }

    #[tokio::test]
    async fn timeout_cancels_the_handler_token_but_not_the_callers() {
        let (tx, rx) = tokio::sync::oneshot::channel::<CancellationToken>();
        let tx = std::sync::Mutex::new(Some(tx));
        let mut registry = WorkflowRegistry::new();
        registry.register("slow", move |ctx: WorkflowContext| {
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(ctx.cancel.clone());
            }
            async move {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Value::Null)
            }
        });
        let caller = CancellationToken::new();
        let outcome = run_with(
            registry,
            &workflow("slow", Value::Null),
            Duration::from_millis(100),
            caller.clone(),
        )
        .await;
        assert_eq!(outcome.status, OutcomeStatus::TimedOut);
        assert!(rx.await.unwrap().is_cancelled());
        assert!(!caller.is_cancelled());
    }

    #[tokio::test]
    async fn panics_are_caught() {
        let mut registry = WorkflowRegistry::new();
        registry.register("boom", |_ctx| async {
            tokio::task::yield_now().await;
            panic!("kaboom {}", 42);
        });
        registry.register(
            "boom-sync",
            |_ctx| -> futures_util::future::Ready<WorkflowResult> { panic!("before any future") },
        );
        let outcome = run_with(
            registry.clone(),
            &workflow("boom", Value::Null),
            Duration::from_secs(5),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(outcome.status, OutcomeStatus::Failed);
        assert_eq!(
            outcome.error_text.as_deref(),
            Some("workflow handler panicked: kaboom 42")
        );
        let outcome = run_with(
            registry,
            &workflow("boom-sync", Value::Null),
            Duration::from_secs(5),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(
            outcome.error_text.as_deref(),
            Some("workflow handler panicked: before any future")
        );
    }
}
