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
    /// Waiting runs may be claimed once due (or skipped by the overlap policy).
    pub const WAITING: [RunStatus; 2] = [RunStatus::Pending, RunStatus::RetryScheduled];
    /// Active runs hold a slot of the schedule's `max_concurrency` and a lease.
    pub const ACTIVE: [RunStatus; 2] = [RunStatus::Claimed, RunStatus::Running];
    /// Waiting or active: the runs still to happen or under way.
    pub const UNFINISHED: [RunStatus; 4] = [
        RunStatus::Pending,
        RunStatus::RetryScheduled,
        RunStatus::Claimed,
        RunStatus::Running,
    ];
    /// Terminal statuses never change again.
    pub const TERMINAL: [RunStatus; 5] = [
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::DeadLettered,
        RunStatus::Cancelled,
        RunStatus::Skipped,
    ];

    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }

    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }

    pub fn is_waiting(self) -> bool {
        Self::WAITING.contains(&self)
    }
}

/// A status equals its text form (what the API and the database show), so code reading
/// rows can compare with `"succeeded"`; an unknown text is never equal.
impl PartialEq<&str> for RunStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
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
        assert!(RunStatus::Running == "running" && RunStatus::Running != "claimed");
        assert_eq!(RunStatus::ALL.len(), 9);
    }

    #[test]
    fn waiting_active_and_terminal_partition_every_status() {
        for s in RunStatus::ALL {
            let sets = [s.is_waiting(), s.is_active(), s.is_terminal()];
            assert_eq!(sets.iter().filter(|b| **b).count(), 1, "{s}");
            assert_eq!(
                RunStatus::UNFINISHED.contains(s),
                s.is_waiting() || s.is_active(),
                "{s}"
            );
        }
        assert!(RunStatus::Skipped.is_terminal());
        assert!(!RunStatus::RetryScheduled.is_terminal());
    }
}
