//! Defines the overlap rule: given a schedule's active and waiting runs, which waiting runs
//! start now, which are skipped and which active runs are cancelled.
//!
//! Applied before execution, never inside executors. Pure: ids in, decisions out.

use super::schedule::OverlapPolicy;

/// What to do right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchPlan {
    /// Waiting runs to hand to executors now, oldest first.
    pub start: Vec<String>,
    /// Waiting runs to record as `skipped`.
    pub skip: Vec<String>,
    /// Active runs to cancel (`replace`).
    pub cancel: Vec<String>,
}

/// Plans dispatch for one schedule.
///
/// `active` are runs claimed or running (including ones already being cancelled, which
/// still hold their slot until they end); `cancelling` are those already asked to stop;
/// `waiting` are due runs, oldest first.
pub fn plan(
    policy: OverlapPolicy,
    max_concurrency: usize,
    active: &[String],
    cancelling: &[String],
    waiting: &[String],
) -> DispatchPlan {
    let capacity = max_concurrency.max(1).saturating_sub(active.len());
    let mut out = DispatchPlan::default();
    match policy {
        OverlapPolicy::Forbid | OverlapPolicy::Allow => {
            out.start = waiting.iter().take(capacity).cloned().collect();
        }
        OverlapPolicy::QueueLatest => {
            let keep = capacity.max(1).min(waiting.len());
            let split = waiting.len() - keep;
            out.skip = waiting[..split].to_vec();
            out.start = waiting[split..].iter().take(capacity).cloned().collect();
        }
        OverlapPolicy::Replace => {
            if let Some(newest) = waiting.last() {
                out.skip = waiting[..waiting.len() - 1].to_vec();
                out.cancel = active
                    .iter()
                    .filter(|a| !cancelling.contains(a))
                    .cloned()
                    .collect();
                if capacity > 0 {
                    out.start = vec![newest.clone()];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn forbid_waits_for_capacity_in_order() {
        let p = plan(
            OverlapPolicy::Forbid,
            1,
            &ids(&["a"]),
            &[],
            &ids(&["b", "c"]),
        );
        assert_eq!(p, DispatchPlan::default());
        let p = plan(OverlapPolicy::Forbid, 1, &[], &[], &ids(&["b", "c"]));
        assert_eq!(p.start, ids(&["b"]));
        assert!(p.skip.is_empty());
    }

    #[test]
    fn allow_fills_every_free_slot() {
        let p = plan(
            OverlapPolicy::Allow,
            3,
            &ids(&["a"]),
            &[],
            &ids(&["b", "c", "d"]),
        );
        assert_eq!(p.start, ids(&["b", "c"]));
    }

    #[test]
    fn queue_latest_keeps_only_the_newest_waiting() {
        let p = plan(
            OverlapPolicy::QueueLatest,
            1,
            &ids(&["a"]),
            &[],
            &ids(&["b", "c", "d"]),
        );
        assert_eq!(p.skip, ids(&["b", "c"]));
        assert!(p.start.is_empty());
        let p = plan(OverlapPolicy::QueueLatest, 1, &[], &[], &ids(&["d"]));
        assert_eq!(p.start, ids(&["d"]));
        let p = plan(
            OverlapPolicy::QueueLatest,
            2,
            &[],
            &[],
            &ids(&["b", "c", "d"]),
        );
        assert_eq!(p.skip, ids(&["b"]));
        assert_eq!(p.start, ids(&["c", "d"]));
    }

    #[test]
    fn replace_cancels_active_and_starts_newest_once_free() {
        let p = plan(
            OverlapPolicy::Replace,
            1,
            &ids(&["a"]),
            &[],
            &ids(&["b", "c"]),
        );
        assert_eq!(p.cancel, ids(&["a"]));
        assert_eq!(p.skip, ids(&["b"]));
        assert!(p.start.is_empty());
        // Already asked: not asked again.
        let p = plan(
            OverlapPolicy::Replace,
            1,
            &ids(&["a"]),
            &ids(&["a"]),
            &ids(&["c"]),
        );
        assert!(p.cancel.is_empty());
        let p = plan(OverlapPolicy::Replace, 1, &[], &[], &ids(&["c"]));
        assert_eq!(p.start, ids(&["c"]));
        // Nothing waiting: nothing cancelled.
        let p = plan(OverlapPolicy::Replace, 1, &ids(&["a"]), &[], &[]);
        assert_eq!(p, DispatchPlan::default());
    }
}
