//! Provides `Runs`: a schedule actor's runs in flight (waiting, active, cancelling,
//! backfilled, retry timers), allocated only while there are some, so that an idle actor
//! carries one null pointer. Bookkeeping only: what to do with the runs stays in the actor.

use std::collections::{HashMap, HashSet};

use actix::SpawnHandle;
use chrono::{DateTime, Utc};

use super::triggers::PendingTrigger;

/// An actor's runs in flight.
#[derive(Default)]
pub(super) struct InFlight {
    /// Due runs not yet handed to the pool: (due time, run id), oldest first.
    pub(super) waiting: Vec<(DateTime<Utc>, String)>,
    /// Runs handed to the pool and not yet ended.
    pub(super) active: Vec<String>,
    /// Active runs already asked to stop (`replace`).
    pub(super) cancelling: Vec<String>,
    /// Backfilled runs (waiting, retrying or active): the overlap policy never skips or
    /// cancels them.
    pub(super) backfilled: HashSet<String>,
    pub(super) retry_timers: HashMap<String, SpawnHandle>,
    /// Manual triggers waiting for their batch (see `triggers`).
    pub(super) triggers: Vec<PendingTrigger>,
    /// A batch of triggers is being written.
    pub(super) writing_triggers: bool,
}

impl InFlight {
    /// Queues one due run, keeping `waiting` in (due time, id) order.
    pub(super) fn queue_waiting(&mut self, due: DateTime<Utc>, id: String) {
        let entry = (due, id);
        let at = self.waiting.partition_point(|e| *e <= entry);
        self.waiting.insert(at, entry);
    }

    fn is_empty(&self) -> bool {
        self.waiting.is_empty()
            && self.active.is_empty()
            && self.cancelling.is_empty()
            && self.backfilled.is_empty()
            && self.retry_timers.is_empty()
            && self.triggers.is_empty()
            && !self.writing_triggers
    }
}

/// [`InFlight`], boxed only while there is something in it: an idle actor keeps one null
/// pointer instead of six empty collections and a flag. Reading it when empty reads a
/// shared empty value; writing allocates; [`Runs::tidy`] frees it once empty again.
#[derive(Default)]
pub(super) struct Runs(Option<Box<InFlight>>);

static NO_RUNS: std::sync::LazyLock<InFlight> = std::sync::LazyLock::new(InFlight::default);

impl Runs {
    pub(super) fn tidy(&mut self) {
        if self.0.as_deref().is_some_and(InFlight::is_empty) {
            self.0 = None;
        }
    }
}

impl std::ops::Deref for Runs {
    type Target = InFlight;
    fn deref(&self) -> &InFlight {
        self.0.as_deref().unwrap_or(&NO_RUNS)
    }
}

impl std::ops::DerefMut for Runs {
    fn deref_mut(&mut self) -> &mut InFlight {
        self.0.get_or_insert_with(Box::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_runs_keep_the_order_a_sort_would_give() {
        let t = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap_or_default();
        let mut runs = InFlight::default();
        for (due, id) in [(5, "b"), (1, "z"), (5, "a"), (9, "c"), (1, "y")] {
            runs.queue_waiting(t(due), id.to_string());
        }
        let mut sorted = runs.waiting.clone();
        sorted.sort();
        assert_eq!(runs.waiting, sorted);
        assert_eq!(runs.waiting[0], (t(1), "y".to_string()));
    }

    #[test]
    fn runs_in_flight_are_boxed_only_while_there_are_some() {
        let mut runs = Runs::default();
        assert!(
            runs.waiting.is_empty() && runs.0.is_none(),
            "reading allocates nothing"
        );
        runs.active.push("run_a".into());
        runs.tidy();
        assert_eq!(runs.active, ["run_a"], "kept while not empty");
        runs.active.clear();
        runs.tidy();
        assert!(runs.0.is_none(), "freed once empty");
    }
}
