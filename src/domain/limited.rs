//! Defines how `max_occurrences` caps one wake-up's misfire plan: the oldest occurrences
//! (run or skipped alike: both are occurrences) are kept until the budget is spent.
//!
//! Pure; the store applies it inside the materialising transaction, under the row lock.

use super::misfire::MisfirePlan;

/// `plan` cut to the `remaining` budget (`None` = unlimited), with how many occurrences it
/// now holds (unrecorded skips included). Oldest first: unrecorded skips are the oldest.
pub fn cap(plan: MisfirePlan, remaining: Option<i32>) -> (MisfirePlan, usize) {
    let total = plan.unrecorded_skips + plan.skip.len() + plan.run.len();
    let Some(remaining) = remaining else {
        return (plan, total);
    };
    let mut budget = usize::try_from(remaining).unwrap_or(0);
    if budget >= total {
        return (plan, total);
    }
    let unrecorded_skips = plan.unrecorded_skips.min(budget);
    budget -= unrecorded_skips;
    let mut all: Vec<(chrono::DateTime<chrono::Utc>, bool)> = plan
        .skip
        .iter()
        .map(|t| (*t, false))
        .chain(plan.run.iter().map(|t| (*t, true)))
        .collect();
    all.sort();
    all.truncate(budget);
    let capped = MisfirePlan {
        run: all
            .iter()
            .filter(|(_, run)| *run)
            .map(|(t, _)| *t)
            .collect(),
        skip: all
            .iter()
            .filter(|(_, run)| !*run)
            .map(|(t, _)| *t)
            .collect(),
        unrecorded_skips,
    };
    let held = unrecorded_skips + all.len();
    (capped, held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0)
            .single()
            .unwrap_or_else(|| panic!("bad minute {minute}"))
    }

    fn plan(skip: &[u32], run: &[u32], unrecorded: usize) -> MisfirePlan {
        MisfirePlan {
            run: run.iter().map(|m| at(*m)).collect(),
            skip: skip.iter().map(|m| at(*m)).collect(),
            unrecorded_skips: unrecorded,
        }
    }

    #[test]
    fn unlimited_and_sufficient_budgets_change_nothing() {
        let p = plan(&[1, 2], &[3], 0);
        assert_eq!(cap(p.clone(), None), (p.clone(), 3));
        assert_eq!(cap(p.clone(), Some(3)), (p.clone(), 3));
        assert_eq!(cap(p.clone(), Some(10)), (p, 3));
    }

    #[test]
    fn the_oldest_occurrences_use_the_budget() {
        // run_once_if_late with two overdue skipped and one run, one occurrence left: the
        // oldest (skipped) one is the last occurrence.
        assert_eq!(
            cap(plan(&[1, 2], &[3], 0), Some(1)),
            (plan(&[1], &[], 0), 1)
        );
        assert_eq!(
            cap(plan(&[], &[1, 2, 3], 0), Some(2)),
            (plan(&[], &[1, 2], 0), 2)
        );
        assert_eq!(
            cap(plan(&[1], &[2, 3], 4), Some(5)),
            (plan(&[1], &[], 4), 5)
        );
        assert_eq!(cap(plan(&[1], &[2], 4), Some(2)), (plan(&[], &[], 2), 2));
        assert_eq!(cap(plan(&[1], &[2], 0), Some(0)), (plan(&[], &[], 0), 0));
    }
}
