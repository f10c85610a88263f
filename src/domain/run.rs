//! Defines run statuses and which of them are terminal, active or waiting.
//!
//! The text forms are the API's and the database's; there is exactly one mapping.

use super::schedule::text_enum;

text_enum!(
    /// Where a run is in its lifecycle.
    RunStatus {
        Pending => "pending",
        Claimed => "claimed",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        RetryScheduled => "retry_scheduled",
        DeadLettered => "dead_lettered",
        Cancelled => "cancelled",
        Skipped => "skipped",
    }
);

impl RunStatus {
    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded
                | RunStatus::Failed
                | RunStatus::DeadLettered
                | RunStatus::Cancelled
                | RunStatus::Skipped
        )
    }

    /// Active runs hold a slot of the schedule's `max_concurrency`.
    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::Claimed | RunStatus::Running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_rejects_unknown() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>(), Ok(*s));
        }
        assert!("done".parse::<RunStatus>().is_err());
        assert_eq!(RunStatus::ALL.len(), 9);
    }

    #[test]
    fn terminal_and_active_are_disjoint() {
        for s in RunStatus::ALL {
            assert!(!(s.is_terminal() && s.is_active()), "{s}");
        }
        assert!(RunStatus::Skipped.is_terminal());
        assert!(!RunStatus::RetryScheduled.is_terminal());
    }
}
