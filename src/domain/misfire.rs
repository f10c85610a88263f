//! Defines the misfire rule: which overdue occurrences run and which are recorded `skipped`
//! when a schedule wakes up late (start-up, resume, a slow timer).
//!
//! Pure: the caller passes the cadence window and `now`.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::cadence::{Bounds, Cadence};
use super::schedule::MisfirePolicy;

/// When a timer wakes late for the occurrence it was armed for, occurrences this recent
/// count as on time, whatever the misfire policy: a busy node is late, not down. It never
/// applies on start-up or resume: what was missed while down or paused follows the rule.
pub const ON_TIME_GRACE: Duration = Duration::seconds(5);
/// The grace for a wake-up at `due` by an actor that was awaiting `armed_for`:
/// [`ON_TIME_GRACE`] only if it was armed for exactly that occurrence, zero otherwise
/// (start-up, restart, resume, or a definition changed elsewhere).
pub fn grace(armed_for: Option<DateTime<Utc>>, due: DateTime<Utc>) -> Duration {
    if armed_for == Some(due) {
        ON_TIME_GRACE
    } else {
        Duration::zero()
    }
}

/// `catch_up` runs at most this many overdue occurrences per wake-up.
pub const CATCH_UP_CAP: usize = 100;
/// At most this many skipped occurrences are recorded as rows per wake-up; older ones are
/// only counted (and named in the oldest recorded row's `error_text`).
pub const MAX_RECORDED_SKIPS: usize = 1000;
/// How many late occurrences are listed before falling back to the newest one only.
const MAX_LISTED: usize = 100_000;

/// What to do with the occurrences in `(after, now]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MisfirePlan {
    /// Occurrences to materialise as runnable runs, oldest first.
    pub run: Vec<DateTime<Utc>>,
    /// Occurrences to record as `skipped`, oldest first.
    pub skip: Vec<DateTime<Utc>>,
    /// Skipped occurrences older than the recorded ones, only counted.
    pub unrecorded_skips: usize,
}

impl MisfirePlan {
    /// The newest occurrence the plan touches (becomes the schedule's `last_run_at`).
    pub fn newest(&self) -> Option<DateTime<Utc>> {
        self.run
            .last()
            .copied()
            .into_iter()
            .chain(self.skip.last().copied())
            .max()
    }
}

/// Plans the occurrences of `cadence` in `(after, now]`; those within `grace` of `now`
/// are on time ([`ON_TIME_GRACE`] for a timer's own late wake-up, zero otherwise).
pub fn plan(
    policy: MisfirePolicy,
    cadence: &Cadence,
    tz: Tz,
    bounds: &Bounds,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: Duration,
) -> MisfirePlan {
    if now <= after {
        return MisfirePlan::default();
    }
    let late_end = (now - grace).max(after);
    let (on_time, _) = cadence.occurrences_between(tz, bounds, late_end, now, MAX_LISTED);
    let (mut late, total_late) =
        cadence.occurrences_between(tz, bounds, after, late_end, MAX_LISTED);
    let mut unlisted = 0;
    if total_late > late.len() {
        // Too many to list: keep only the newest, count the rest as skipped.
        late = cadence
            .newest_between(tz, bounds, after, late_end)
            .into_iter()
            .collect();
        unlisted = total_late - late.len();
    }
    let mut plan = split(policy, late, on_time);
    plan.unrecorded_skips += unlisted;
    plan
}

/// Applies the policy to the late occurrences and the on-time ones (both oldest first).
pub fn split(
    policy: MisfirePolicy,
    late: Vec<DateTime<Utc>>,
    on_time: Vec<DateTime<Utc>>,
) -> MisfirePlan {
    let (mut run, mut skip) = match policy {
        MisfirePolicy::Skip => (Vec::new(), late),
        MisfirePolicy::RunOnceIfLate => {
            let mut late = late;
            if on_time.is_empty() {
                match late.pop() {
                    Some(newest) => (vec![newest], late),
                    None => (Vec::new(), late),
                }
            } else {
                (Vec::new(), late)
            }
        }
        MisfirePolicy::CatchUp => {
            let mut late = late;
            let keep_from = late.len().saturating_sub(CATCH_UP_CAP);
            let run = late.split_off(keep_from);
            (run, late)
        }
    };
    run.extend(on_time);
    let mut unrecorded_skips = 0;
    if skip.len() > MAX_RECORDED_SKIPS {
        unrecorded_skips = skip.len() - MAX_RECORDED_SKIPS;
        skip.drain(..unrecorded_skips);
    }
    MisfirePlan {
        run,
        skip,
        unrecorded_skips,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 1, 0, min, 0)
            .single()
            .unwrap()
    }

    #[test]
    fn skip_records_every_late_one_and_runs_on_time() {
        let p = split(MisfirePolicy::Skip, vec![t(1), t(2)], vec![t(3)]);
        assert_eq!(p.run, vec![t(3)]);
        assert_eq!(p.skip, vec![t(1), t(2)]);
    }

    #[test]
    fn run_once_if_late_runs_newest_late_only() {
        let p = split(MisfirePolicy::RunOnceIfLate, vec![t(1), t(2), t(3)], vec![]);
        assert_eq!(p.run, vec![t(3)]);
        assert_eq!(p.skip, vec![t(1), t(2)]);
        assert_eq!(p.newest(), Some(t(3)));
    }

    #[test]
    fn run_once_if_late_prefers_an_on_time_occurrence() {
        let p = split(MisfirePolicy::RunOnceIfLate, vec![t(1), t(2)], vec![t(3)]);
        assert_eq!(p.run, vec![t(3)]);
        assert_eq!(p.skip, vec![t(1), t(2)]);
    }

    #[test]
    fn catch_up_runs_newest_hundred_oldest_first() {
        let late: Vec<_> = (0..150).map(|i| t(0) + Duration::minutes(i)).collect();
        let p = split(MisfirePolicy::CatchUp, late.clone(), vec![]);
        assert_eq!(p.run.len(), 100);
        assert_eq!(p.run[0], late[50]);
        assert_eq!(p.run[99], late[149]);
        assert_eq!(p.skip, late[..50].to_vec());
    }

    #[test]
    fn recorded_skips_are_capped() {
        let late: Vec<_> = (0..1500).map(|i| t(0) + Duration::minutes(i)).collect();
        let p = split(MisfirePolicy::Skip, late.clone(), vec![]);
        assert_eq!(p.skip.len(), MAX_RECORDED_SKIPS);
        assert_eq!(p.unrecorded_skips, 500);
        assert_eq!(p.skip[0], late[500]);
    }

    #[test]
    fn plan_over_an_interval_window() {
        let cadence = Cadence::Interval {
            every_seconds: 60,
            anchor_at: t(0),
        };
        let now = t(10) + Duration::seconds(2);
        let p = plan(
            MisfirePolicy::RunOnceIfLate,
            &cadence,
            chrono_tz::UTC,
            &Bounds::default(),
            t(0),
            now,
            ON_TIME_GRACE,
        );
        // t(10) is 2 s old: on time. t(1)..t(9) are late and skipped.
        assert_eq!(p.run, vec![t(10)]);
        assert_eq!(p.skip.len(), 9);
    }

    #[test]
    fn without_grace_every_overdue_occurrence_follows_the_policy() {
        // Resume or start-up: nothing counts as on time, however recent.
        let cadence = Cadence::Interval {
            every_seconds: 1,
            anchor_at: t(0),
        };
        let now = t(0) + Duration::milliseconds(10_500);
        let window = |policy| {
            plan(
                policy,
                &cadence,
                chrono_tz::UTC,
                &Bounds::default(),
                t(0),
                now,
                Duration::zero(),
            )
        };
        let skip = window(MisfirePolicy::Skip);
        assert_eq!((skip.run.len(), skip.skip.len()), (0, 10));
        let once = window(MisfirePolicy::RunOnceIfLate);
        assert_eq!(once.run, vec![t(0) + Duration::seconds(10)]);
        assert_eq!(once.skip.len(), 9);
        let catch_up = window(MisfirePolicy::CatchUp);
        assert_eq!((catch_up.run.len(), catch_up.skip.len()), (10, 0));
        // With the timer's grace, the last 5 s are on time and run under every policy.
        let graced = plan(
            MisfirePolicy::Skip,
            &cadence,
            chrono_tz::UTC,
            &Bounds::default(),
            t(0),
            now,
            ON_TIME_GRACE,
        );
        assert_eq!((graced.run.len(), graced.skip.len()), (5, 5));
    }

    #[test]
    fn grace_only_for_the_occurrence_the_actor_was_armed_for() {
        assert_eq!(grace(Some(t(5)), t(5)), ON_TIME_GRACE);
        assert_eq!(grace(Some(t(4)), t(5)), Duration::zero());
        assert_eq!(grace(None, t(5)), Duration::zero());
    }

    #[test]
    fn catch_up_never_runs_more_than_the_cap_without_grace() {
        let cadence = Cadence::Interval {
            every_seconds: 1,
            anchor_at: t(0),
        };
        let now = t(0) + Duration::seconds(115);
        let p = plan(
            MisfirePolicy::CatchUp,
            &cadence,
            chrono_tz::UTC,
            &Bounds::default(),
            t(0),
            now,
            Duration::zero(),
        );
        assert_eq!(p.run.len(), CATCH_UP_CAP);
        assert_eq!(p.skip.len(), 15);
    }

    #[test]
    fn plan_with_huge_window_keeps_newest() {
        let cadence = Cadence::Interval {
            every_seconds: 1,
            anchor_at: t(0),
        };
        let now = t(0) + Duration::days(5);
        let p = plan(
            MisfirePolicy::RunOnceIfLate,
            &cadence,
            chrono_tz::UTC,
            &Bounds::default(),
            t(0),
            now,
            ON_TIME_GRACE,
        );
        assert_eq!(p.run.len(), 5); // the on-time ones (grace 5 s)
        assert_eq!(p.skip.len() + p.unrecorded_skips, 5 * 86_400 - 5);
    }
}
