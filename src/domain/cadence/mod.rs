//! Defines schedule cadences (standard five-field cron, fixed interval, once), their inclusive
//! bounds, and the pure computation of occurrence instants, including time-zone and DST rules.
//! The cron front end lives in `cron`, the interval arithmetic in `grid`, the tests (the DST
//! table among them) in `tests`; none of it does I/O or reads a clock.

mod cron;
mod grid;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

pub use cron::{CronExpr, MONTH_FULL_NAMES};
use grid::Grid;

/// Inclusive bounds; no occurrence before start_at or after end_at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
}

impl Bounds {
    /// The exclusive lower limit of a search that starts strictly after `after`: occurrences must
    /// also be at or after `start_at`, i.e. strictly after `start_at - 1ns`.
    fn lower_exclusive(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        match self
            .start_at
            .and_then(|s| s.checked_sub_signed(Duration::nanoseconds(1)))
        {
            Some(before_start) if before_start > after => before_start,
            _ => after,
        }
    }

    /// The inclusive upper limit: the earlier of `until` (if any) and `end_at` (if any).
    fn upper_inclusive(&self, until: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        match (until, self.end_at) {
            (Some(u), Some(e)) => Some(u.min(e)),
            (Some(u), None) => Some(u),
            (None, e) => e,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cadence {
    Cron(CronExpr),
    Interval {
        every_seconds: i64,
        anchor_at: DateTime<Utc>,
    },
    Once {
        at: DateTime<Utc>,
    },
}

impl Cadence {
    /// "cron" | "interval" | "once"
    pub fn kind(&self) -> &'static str {
        match self {
            Cadence::Cron(_) => "cron",
            Cadence::Interval { .. } => "interval",
            Cadence::Once { .. } => "once",
        }
    }

    /// The first occurrence strictly after `after`, inside `bounds`; None if there is none.
    /// Cron is evaluated in `tz` (wall clock); interval/once ignore tz.
    pub fn next_after(
        &self,
        tz: Tz,
        bounds: &Bounds,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let lower = bounds.lower_exclusive(after);
        let next = match self {
            Cadence::Cron(expr) => expr.iter_after(tz, lower).next()?,
            Cadence::Interval {
                every_seconds,
                anchor_at,
            } => {
                let grid = Grid::new(*every_seconds, *anchor_at)?;
                grid.point(grid.first_after(lower))?
            }
            Cadence::Once { at } => (*at > lower).then_some(*at)?,
        };
        match bounds.end_at {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// Up to `count` successive occurrences strictly after `after` (uses next_after repeatedly).
    pub fn upcoming(
        &self,
        tz: Tz,
        bounds: &Bounds,
        after: DateTime<Utc>,
        count: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut cursor = after;
        while out.len() < count {
            match self.next_after(tz, bounds, cursor) {
                Some(next) => {
                    out.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        out
    }

    /// Occurrences in the half-open window (after, until] (also inside `bounds`): returns the
    /// first `limit` of them, oldest first, and the total number in the window.
    /// Intervals are computed arithmetically; cron iterates the window.
    pub fn occurrences_between(
        &self,
        tz: Tz,
        bounds: &Bounds,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> (Vec<DateTime<Utc>>, usize) {
        let lower = bounds.lower_exclusive(after);
        let upper = match bounds.upper_inclusive(Some(until)) {
            Some(upper) if upper > lower => upper,
            _ => return (Vec::new(), 0),
        };
        match self {
            Cadence::Cron(expr) => {
                let mut items = Vec::new();
                let mut total = 0usize;
                for t in expr.iter_after(tz, lower) {
                    if t > upper {
                        break;
                    }
                    if items.len() < limit {
                        items.push(t);
                    }
                    total = total.saturating_add(1);
                }
                (items, total)
            }
            Cadence::Interval {
                every_seconds,
                anchor_at,
            } => {
                let Some(grid) = Grid::new(*every_seconds, *anchor_at) else {
                    return (Vec::new(), 0);
                };
                let first = grid.first_after(lower);
                let Some(last) = grid.last_at_or_before(upper) else {
                    return (Vec::new(), 0);
                };
                if last < first {
                    return (Vec::new(), 0);
                }
                let total = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
                let items = (0..total.min(limit))
                    .map_while(|i| {
                        let i = i128::try_from(i).ok()?;
                        grid.point(first.checked_add(i)?)
                    })
                    .collect();
                (items, total)
            }
            Cadence::Once { at } => {
                if *at > lower && *at <= upper {
                    let items = if limit > 0 { vec![*at] } else { Vec::new() };
                    (items, 1)
                } else {
                    (Vec::new(), 0)
                }
            }
        }
    }

    /// The newest occurrence in (after, until] (also inside `bounds`), if any.
    /// Efficient for intervals and cron alike (no iteration over the window).
    pub fn newest_between(
        &self,
        tz: Tz,
        bounds: &Bounds,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let lower = bounds.lower_exclusive(after);
        let upper = bounds.upper_inclusive(Some(until))?;
        if upper <= lower {
            return None;
        }
        match self {
            Cadence::Cron(expr) => expr.newest_between(tz, lower, upper),
            Cadence::Interval {
                every_seconds,
                anchor_at,
            } => {
                let grid = Grid::new(*every_seconds, *anchor_at)?;
                let newest = grid.point(grid.last_at_or_before(upper)?)?;
                (newest > lower).then_some(newest)
            }
            Cadence::Once { at } => (*at > lower && *at <= upper).then_some(*at),
        }
    }
}
