//! Provides the interval grid `anchor + k * step` in exact nanosecond arithmetic, so interval
//! cadences find the next, newest and counted points without iterating. Pure: no I/O, no clock;
//! bounds and the time zone (which intervals ignore) are the parent module's concern.

use chrono::{DateTime, Utc};

const NANOS_PER_SECOND: i128 = 1_000_000_000;

fn to_nanos(t: DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * NANOS_PER_SECOND + i128::from(t.timestamp_subsec_nanos())
}

fn from_nanos(nanos: i128) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(nanos.div_euclid(NANOS_PER_SECOND)).ok()?;
    let subsec = u32::try_from(nanos.rem_euclid(NANOS_PER_SECOND)).ok()?;
    DateTime::from_timestamp(secs, subsec)
}

/// The interval grid `anchor + k * step` (k >= 0), in nanoseconds.
pub(super) struct Grid {
    anchor: i128,
    step: i128,
}

impl Grid {
    pub(super) fn new(every_seconds: i64, anchor_at: DateTime<Utc>) -> Option<Grid> {
        if every_seconds <= 0 {
            return None;
        }
        Some(Grid {
            anchor: to_nanos(anchor_at),
            step: i128::from(every_seconds) * NANOS_PER_SECOND,
        })
    }

    /// Index of the first point strictly after `t`.
    pub(super) fn first_after(&self, t: DateTime<Utc>) -> i128 {
        let t = to_nanos(t);
        if t < self.anchor {
            0
        } else {
            (t - self.anchor).div_euclid(self.step) + 1
        }
    }

    /// Index of the last point at or before `t`, if any.
    pub(super) fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<i128> {
        let t = to_nanos(t);
        (t >= self.anchor).then(|| (t - self.anchor).div_euclid(self.step))
    }

    pub(super) fn point(&self, k: i128) -> Option<DateTime<Utc>> {
        from_nanos(self.anchor.checked_add(k.checked_mul(self.step)?)?)
    }
}
