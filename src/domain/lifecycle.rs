//! Defines a stored schedule's lifecycle: `ScheduleRecord` (the definition plus the
//! server-owned fields) and its transitions — create, replace (PUT/PATCH), pause, resume.
//!
//! Pure: each transition takes `now` and returns the record to store; the store persists
//! it and the schedule actor applies it. No I/O here.

use chrono::{DateTime, Utc};

use super::schedule::ScheduleSpec;

/// A stored schedule: its validated definition plus the server-owned fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    pub id: String,
    pub spec: ScheduleSpec,
    pub paused_at: Option<DateTime<Utc>>,
    /// Why it was paused (`POST …/pause` with a note); cleared on resume.
    pub pause_note: Option<String>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    /// Scheduled occurrences left under `max_occurrences`; `None` when unlimited.
    pub occurrences_remaining: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Lifecycle transitions of a record. Pure: each returns the record to store.
impl ScheduleRecord {
    /// Enabled and not paused: its timer runs.
    pub fn is_live(&self) -> bool {
        self.spec.enabled && self.paused_at.is_none()
    }

    /// The occurrence due by `now`, if the schedule is live and one is.
    pub fn due_by(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_run_at
            .filter(|next| self.is_live() && *next <= now)
    }

    /// A new schedule created at `now`; disabled ones start paused.
    pub fn create(id: String, spec: ScheduleSpec, now: DateTime<Utc>) -> ScheduleRecord {
        let next_run_at = if spec.enabled {
            spec.next_after(now)
        } else {
            None
        };
        ScheduleRecord {
            id,
            paused_at: (!spec.enabled).then_some(now),
            pause_note: None,
            occurrences_remaining: spec.max_occurrences,
            spec,
            next_run_at,
            last_run_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether `max_occurrences` is used up (the schedule is then finished).
    pub fn spent(&self) -> bool {
        self.occurrences_remaining.is_some_and(|n| n <= 0)
    }

    /// `next_run_at` with the limit applied: a spent schedule has no next occurrence.
    pub fn limited(mut self) -> ScheduleRecord {
        self.limit();
        self
    }

    /// [`Self::limited`] in place.
    pub fn limit(&mut self) {
        if self.spent() {
            self.next_run_at = None;
        }
    }

    /// This schedule with a new definition (PUT, or a merged PATCH). The cadence position is
    /// kept unless cadence, time zone or bounds changed, or the schedule was resumed.
    /// `recount`: the request set `max_occurrences`, so the count starts again.
    pub fn replaced(
        &self,
        spec: ScheduleSpec,
        now: DateTime<Utc>,
        recount: bool,
    ) -> ScheduleRecord {
        let timing_changed = spec.cadence != self.spec.cadence
            || spec.timezone != self.spec.timezone
            || spec.start_at != self.spec.start_at
            || spec.end_at != self.spec.end_at;
        let paused_at = match (spec.enabled, self.paused_at) {
            (true, _) => None,
            (false, Some(p)) => Some(p),
            (false, None) => Some(now),
        };
        let next_run_at = if !spec.enabled {
            None
        } else if timing_changed {
            spec.next_after(self.cursor_floor(now))
        } else if let Some(paused_at) = self.paused_at {
            // Re-enabled: missed occurrences follow the misfire rule, as on resume.
            spec.next_after(self.cursor_floor(paused_at))
        } else if self.next_run_at.is_none() {
            spec.next_after(self.cursor_floor(now))
        } else {
            self.next_run_at
        };
        let occurrences_remaining = match (spec.max_occurrences, recount) {
            (None, _) => None,
            (Some(n), true) => Some(n),
            (Some(n), false) => Some(self.occurrences_remaining.unwrap_or(n)),
        };
        ScheduleRecord {
            id: self.id.clone(),
            pause_note: if paused_at.is_some() {
                self.pause_note.clone()
            } else {
                None
            },
            spec,
            paused_at,
            next_run_at,
            last_run_at: self.last_run_at,
            occurrences_remaining,
            created_at: self.created_at,
            updated_at: now,
        }
        .limited()
    }

    /// Paused at `now` (idempotent: a paused schedule keeps its first `paused_at`). A note
    /// replaces the current one; pausing again without one keeps it.
    pub fn paused(&self, now: DateTime<Utc>, note: Option<String>) -> ScheduleRecord {
        let mut r = self.clone();
        if r.paused_at.is_none() {
            r.paused_at = Some(now);
            r.updated_at = now;
        }
        if note.is_some() && note != r.pause_note {
            r.pause_note = note;
            r.updated_at = now;
        }
        r.spec.enabled = false;
        r.next_run_at = None;
        r
    }

    /// Resumed at `now`. `next_run_at` becomes the first occurrence after the pause (or
    /// after the newest materialised one), so it may lie in the past: occurrences missed
    /// while paused are then the misfire rule's business, applied by the schedule actor.
    pub fn resumed(&self, now: DateTime<Utc>) -> ScheduleRecord {
        let mut r = self.clone();
        if r.paused_at.is_none() && r.spec.enabled {
            return r;
        }
        let from = r.paused_at.unwrap_or(now);
        r.updated_at = now;
        r.paused_at = None;
        r.pause_note = None;
        r.spec.enabled = true;
        r.next_run_at = r.spec.next_after(r.cursor_floor(from));
        r.limited()
    }

    /// Occurrences are never earlier than creation nor than the newest materialised one.
    fn cursor_floor(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.max(self.created_at)
            .max(self.last_run_at.unwrap_or(self.created_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::schedule::{Policy, RetryPolicy, Target};
    use crate::domain::Cadence;
    use chrono::{Duration, TimeZone};

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 3, 4, h, m, 0).single().unwrap()
    }

    /// Every 10 minutes from 09:00.
    fn spec(enabled: bool) -> ScheduleSpec {
        ScheduleSpec {
            name: "s".into(),
            enabled,
            timezone: chrono_tz::UTC,
            cadence: Cadence::Interval {
                every_seconds: 600,
                anchor_at: t(9, 0),
            },
            target: Target::Workflow {
                workflow_id: "builtin.noop".into(),
                input: serde_json::Value::Null,
            },
            policy: Policy::default(),
            retry: RetryPolicy::default(),
            start_at: None,
            end_at: None,
            labels: Default::default(),
            description: None,
            max_occurrences: None,
        }
    }

    #[test]
    fn created_enabled_is_armed_and_disabled_starts_paused() {
        let r = ScheduleRecord::create("sch_a".into(), spec(true), t(9, 5));
        assert_eq!(r.next_run_at, Some(t(9, 10)));
        assert!(r.is_live() && r.paused_at.is_none());
        let d = ScheduleRecord::create("sch_b".into(), spec(false), t(9, 5));
        assert_eq!((d.paused_at, d.next_run_at), (Some(t(9, 5)), None));
        assert!(!d.is_live());
    }

    #[test]
    fn pause_is_idempotent_and_keeps_the_first_instant() {
        let r = ScheduleRecord::create("sch_a".into(), spec(true), t(9, 5));
        let p = r.paused(t(9, 7), None);
        assert_eq!((p.paused_at, p.next_run_at), (Some(t(9, 7)), None));
        assert!(!p.spec.enabled && p.updated_at == t(9, 7));
        let again = p.paused(t(9, 30), None);
        assert_eq!(again, p, "a second pause changes nothing");
    }

    #[test]
    fn resume_restarts_after_the_pause_so_missed_occurrences_are_due() {
        let r = ScheduleRecord::create("sch_a".into(), spec(true), t(9, 5));
        let resumed = r.paused(t(9, 7), None).resumed(t(9, 45));
        // The first occurrence after the pause: 09:10, in the past, for the misfire rule.
        assert_eq!(resumed.next_run_at, Some(t(9, 10)));
        assert_eq!(resumed.due_by(t(9, 45)), Some(t(9, 10)));
        assert!(resumed.is_live() && resumed.updated_at == t(9, 45));
        // Resuming a live schedule is a no-op.
        assert_eq!(r.resumed(t(9, 45)), r);
    }

    #[test]
    fn replace_keeps_the_cadence_position_unless_timing_changes() {
        let mut r = ScheduleRecord::create("sch_a".into(), spec(true), t(9, 5));
        r.last_run_at = Some(t(9, 10));
        r.next_run_at = Some(t(9, 20));
        let mut renamed = spec(true);
        renamed.name = "renamed".into();
        let same = r.replaced(renamed, t(9, 12), false);
        assert_eq!(same.next_run_at, Some(t(9, 20)));
        let mut faster = spec(true);
        faster.cadence = Cadence::Interval {
            every_seconds: 60,
            anchor_at: t(9, 0),
        };
        assert_eq!(
            r.replaced(faster, t(9, 12), false).next_run_at,
            Some(t(9, 13))
        );
        let off = r.replaced(spec(false), t(9, 12), false);
        assert_eq!((off.paused_at, off.next_run_at), (Some(t(9, 12)), None));
        // Re-enabled by a replace: like a resume, from the pause.
        let on = off.replaced(spec(true), t(9, 50), false);
        assert_eq!(on.next_run_at, Some(t(9, 20)));
        assert_eq!(on.paused_at, None);
    }

    #[test]
    fn due_only_when_live_and_reached() {
        let r = ScheduleRecord::create("sch_a".into(), spec(true), t(9, 5));
        assert_eq!(r.due_by(t(9, 9)), None);
        assert_eq!(r.due_by(t(9, 10)), Some(t(9, 10)));
        let paused = r.paused(t(9, 6), None);
        assert_eq!(paused.due_by(t(9, 10) + Duration::hours(1)), None);
    }
}
