//! Provides the cron front end: parses the standard five-field dialect (and macros), translates
//! it onto the `cron` crate, and walks wall-clock occurrences through DST gaps and folds.
//! Pure: no I/O, no clock; bounds and the other cadence kinds belong to the parent module.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A standard five-field cron expression (or macro), already translated onto the `cron` crate.
///
/// Dialect: minute hour day-of-month month day-of-week; values, `*`, lists, ranges, `*/n`,
/// `a-b/n`, `a/n` (= `a-max/n`), `?` in day fields (= `*`), names JAN-DEC and SUN-SAT
/// (case-insensitive), day-of-week 0-7 with 0 and 7 both Sunday, and the macros
/// `@yearly @annually @monthly @weekly @daily @midnight @hourly`. When both day fields are
/// restricted a day matches if either matches. A day field counts as unrestricted when one of
/// its list items is `*` or `?` without a step (or with step 1), as in robfig/cron.
///
/// Occurrences are computed on local calendar years 1970..=2100 (the `cron` crate's horizon);
/// beyond that there are none.
#[derive(Debug, Clone)]
pub struct CronExpr {
    source: String,
    /// One schedule, or two for the day-of-month OR day-of-week case. Each is written in the
    /// crate's own dialect with explicit numeric lists (seconds field `0`, day-of-week 1=Sunday).
    schedules: Vec<cron::Schedule>,
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
/// Month names as people write them (January first); also the console's wording.
pub const MONTH_FULL_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Field {
    fn label(self) -> &'static str {
        match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    /// Smallest accepted value.
    fn min(self) -> u32 {
        match self {
            Field::Minute | Field::Hour | Field::DayOfWeek => 0,
            Field::DayOfMonth | Field::Month => 1,
        }
    }

    /// Largest accepted value (day-of-week accepts 7 as Sunday).
    fn max(self) -> u32 {
        match self {
            Field::Minute => 59,
            Field::Hour => 23,
            Field::DayOfMonth => 31,
            Field::Month => 12,
            Field::DayOfWeek => 7,
        }
    }

    /// The end of `*` and of `a/n` (day-of-week stops at 6, Sunday being 0).
    fn star_max(self) -> u32 {
        match self {
            Field::DayOfWeek => 6,
            other => other.max(),
        }
    }

    fn is_day(self) -> bool {
        matches!(self, Field::DayOfMonth | Field::DayOfWeek)
    }

    fn name_value(self, upper: &str) -> Option<u32> {
        let table: &[&str] = match self {
            Field::Month => &MONTH_NAMES,
            Field::DayOfWeek => &DAY_NAMES,
            _ => return None,
        };
        let index = table.iter().position(|n| *n == upper)?;
        let index = u32::try_from(index).ok()?;
        Some(if self == Field::Month {
            index + 1
        } else {
            index
        })
    }

    fn hint(self) -> &'static str {
        match self {
            Field::Month => "use 1-12 or JAN-DEC",
            Field::DayOfWeek => "use 0-7 or SUN-SAT",
            _ => "expected a number",
        }
    }
}

/// One parsed cron field: its explicit values (day-of-week already folded to 0-6) and whether
/// it is unrestricted (`*` / `?`) for the purpose of the day-of-month/day-of-week OR rule.
struct ParsedField {
    values: BTreeSet<u32>,
    unrestricted: bool,
}

fn parse_value(field: Field, token: &str, item: &str) -> Result<u32, String> {
    let label = field.label();
    if token.is_empty() {
        return Err(format!("{label} field has an empty value in '{item}'"));
    }
    if token.bytes().all(|b| b.is_ascii_digit()) {
        let out_of_range = || {
            format!(
                "{label} value {token} is out of range {}-{}",
                field.min(),
                field.max()
            )
        };
        let value: u32 = token.parse().map_err(|_| out_of_range())?;
        if value < field.min() || value > field.max() {
            return Err(out_of_range());
        }
        return Ok(value);
    }
    let upper = token.to_ascii_uppercase();
    if let Some(value) = field.name_value(&upper) {
        return Ok(value);
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if upper.contains('#') {
        return Err(format!(
            "'#' (nth weekday of the month) is not supported in the {label} field ('{item}')"
        ));
    }
    if let Some(prefix) = upper.strip_suffix('W') {
        if all_digits(prefix) || prefix == "L" {
            return Err(format!(
                "'W' (nearest weekday) is not supported in the {label} field ('{item}')"
            ));
        }
    }
    if let Some(prefix) = upper.strip_suffix('L') {
        if all_digits(prefix) {
            return Err(format!(
                "'L' (last) is not supported in the {label} field ('{item}')"
            ));
        }
    }
    Err(format!(
        "unknown {label} value '{token}' ({})",
        field.hint()
    ))
}

fn parse_step(field: Field, step: &str, item: &str) -> Result<u32, String> {
    let label = field.label();
    if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid step '{step}' in the {label} field ('{item}'): expected a number"
        ));
    }
    let value: u32 = step
        .parse()
        .map_err(|_| format!("step {step} is too large in the {label} field ('{item}')"))?;
    if value == 0 {
        return Err(format!(
            "step must be at least 1 (the {label} field has '{item}')"
        ));
    }
    Ok(value)
}

fn parse_field(field: Field, text: &str) -> Result<ParsedField, String> {
    let label = field.label();
    let mut values = BTreeSet::new();
    let mut unrestricted = false;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{label} field '{text}' has an empty list item"));
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(parse_step(field, step, item)?)),
            None => (item, None),
        };
        let (low, high) = if base == "*" || base == "?" {
            if base == "?" && !field.is_day() {
                return Err(format!(
                    "'?' is only allowed in the day-of-month and day-of-week fields, not in the {label} field"
                ));
            }
            if step.unwrap_or(1) == 1 {
                unrestricted = true;
            }
            (field.min(), field.star_max())
        } else if let Some((a, b)) = base.split_once('-') {
            let low = parse_value(field, a, item)?;
            let mut high = parse_value(field, b, item)?;
            // `MON-SUN` / `1-0`: a day-of-week range ending on Sunday ends on 7.
            if field == Field::DayOfWeek && high == 0 && low > 0 {
                high = 7;
            }
            if low > high {
                return Err(format!(
                    "{label} range {a}-{b} is reversed (start must not be greater than end)"
                ));
            }
            (low, high)
        } else {
            let value = parse_value(field, base, item)?;
            match step {
                // `a/n` means `a-max/n`.
                Some(_) => (value, field.star_max().max(value)),
                None => (value, value),
            }
        };
        let step = usize::try_from(step.unwrap_or(1)).unwrap_or(usize::MAX);
        for value in (low..=high).step_by(step) {
            values.insert(if field == Field::DayOfWeek && value == 7 {
                0
            } else {
                value
            });
        }
    }
    Ok(ParsedField {
        values,
        unrestricted,
    })
}

fn expand_macro(source: &str) -> Result<&'static str, String> {
    let mut words = source.split_whitespace();
    let name = words.next().unwrap_or_default().to_ascii_lowercase();
    let standard = match name.as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        "@reboot" => return Err("@reboot is not supported".to_string()),
        "@every" => {
            return Err("@every is not supported (use an interval schedule instead)".to_string())
        }
        _ => {
            return Err(format!(
                "unknown macro '{name}' (supported: @yearly @annually @monthly @weekly @daily @midnight @hourly)"
            ))
        }
    };
    if words.next().is_some() {
        return Err(format!("macro '{name}' must stand alone"));
    }
    Ok(standard)
}

fn days_in_month_max(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn join_list(values: &BTreeSet<u32>, offset: u32) -> String {
    values
        .iter()
        .map(|v| (v + offset).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn join_words(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// First and last local calendar instants the `cron` crate can iterate (its year range).
fn horizon() -> Option<(NaiveDateTime, NaiveDateTime)> {
    let start = NaiveDate::from_ymd_opt(1970, 1, 1)?.and_hms_opt(0, 0, 0)?;
    let end = NaiveDate::from_ymd_opt(2100, 12, 31)?.and_hms_opt(23, 59, 59)?;
    Some((start, end))
}

/// The wall-clock time of `t` in `tz`, with `t` first clamped to a safe range around the
/// horizon so the conversion can never overflow.
fn local_naive(tz: Tz, t: DateTime<Utc>) -> Option<NaiveDateTime> {
    let lo = NaiveDate::from_ymd_opt(1969, 1, 1)?.and_hms_opt(0, 0, 0)?;
    let hi = NaiveDate::from_ymd_opt(2102, 1, 1)?.and_hms_opt(0, 0, 0)?;
    let t = t.clamp(Utc.from_utc_datetime(&lo), Utc.from_utc_datetime(&hi));
    Some(t.with_timezone(&tz).naive_local())
}

/// Maps a wall-clock time to its instant: nonexistent (gap) → None; repeated (fold) → the
/// first of the two instants. This mapping is strictly increasing over existing times.
fn to_instant(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// How far past the wall-clock time of `until` a backwards search starts, to cover a fold
/// (tzdb offsets since 1970 never step back by more than 2 hours).
const FOLD_LOOKAHEAD_HOURS: i64 = 3;

impl CronExpr {
    /// Parses the standard dialect; Err is a human-readable message for the `schedule.expr` field.
    pub fn parse(expr: &str) -> Result<CronExpr, String> {
        let source = expr.trim();
        if source.is_empty() {
            return Err("cron expression is empty".to_string());
        }
        let standard = if source.starts_with('@') {
            expand_macro(source)?
        } else {
            source
        };
        let parts: Vec<&str> = standard.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                parts.len()
            ));
        }
        let minutes = parse_field(Field::Minute, parts[0])?;
        let hours = parse_field(Field::Hour, parts[1])?;
        let doms = parse_field(Field::DayOfMonth, parts[2])?;
        let months = parse_field(Field::Month, parts[3])?;
        let dows = parse_field(Field::DayOfWeek, parts[4])?;

        // Only day-of-month can make an expression never fire: with a restricted day-of-week
        // the OR rule fires on that weekday, which every month has.
        if !doms.unrestricted && dows.unrestricted {
            let first_day = doms.values.iter().next().copied().unwrap_or(1);
            if months
                .values
                .iter()
                .all(|&m| first_day > days_in_month_max(m))
            {
                let days = doms
                    .values
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let month_names: Vec<&str> = months
                    .values
                    .iter()
                    .filter_map(|&m| MONTH_FULL_NAMES.get(usize::try_from(m).ok()? - 1))
                    .copied()
                    .collect();
                let (noun, verb) = if doms.values.len() == 1 {
                    ("day", "does")
                } else {
                    ("days", "do")
                };
                return Err(format!(
                    "can never fire ({noun} {days} {verb} not exist in {})",
                    join_words(&month_names)
                ));
            }
        }

        // The crate's dialect: leading seconds field, day-of-week 1=Sunday..7=Saturday, and
        // both day fields must match (AND), so the OR case becomes two schedules.
        let prefix = format!(
            "0 {} {} ",
            join_list(&minutes.values, 0),
            join_list(&hours.values, 0)
        );
        let month_list = join_list(&months.values, 0);
        let dom_list = join_list(&doms.values, 0);
        let dow_list = join_list(&dows.values, 1);
        let crate_exprs = match (doms.unrestricted, dows.unrestricted) {
            (true, true) => vec![format!("{prefix}* {month_list} *")],
            (false, true) => vec![format!("{prefix}{dom_list} {month_list} *")],
            (true, false) => vec![format!("{prefix}* {month_list} {dow_list}")],
            (false, false) => vec![
                format!("{prefix}{dom_list} {month_list} *"),
                format!("{prefix}* {month_list} {dow_list}"),
            ],
        };
        let schedules = crate_exprs
            .iter()
            .map(|e| {
                cron::Schedule::from_str(e).map_err(|err| {
                    format!("internal error translating cron expression '{source}': {err}")
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(CronExpr {
            source: source.to_string(),
            schedules,
        })
    }

    /// The expression exactly as the user wrote it (trimmed).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The first matching wall-clock time strictly after `cursor`, within the horizon.
    fn naive_next(&self, cursor: NaiveDateTime) -> Option<NaiveDateTime> {
        let (start, end) = horizon()?;
        if cursor >= end {
            return None;
        }
        let cursor = if cursor < start {
            start.checked_sub_signed(Duration::seconds(1))?
        } else {
            cursor
        };
        let from = Utc.from_utc_datetime(&cursor);
        self.schedules
            .iter()
            .filter_map(|s| s.after(&from).next())
            .map(|t| t.naive_utc())
            .min()
    }

    /// The last matching wall-clock time strictly before `cursor`, within the horizon.
    fn naive_prev(&self, cursor: NaiveDateTime) -> Option<NaiveDateTime> {
        let (start, end) = horizon()?;
        if cursor <= start {
            return None;
        }
        let cursor = if cursor > end {
            end.checked_add_signed(Duration::seconds(1))?
        } else {
            cursor
        };
        let from = Utc.from_utc_datetime(&cursor);
        self.schedules
            .iter()
            .filter_map(|s| s.after(&from).next_back())
            .map(|t| t.naive_utc())
            .max()
    }

    /// Successive occurrence instants strictly after `after`, oldest first.
    pub(super) fn iter_after(&self, tz: Tz, after: DateTime<Utc>) -> CronOccurrences<'_> {
        CronOccurrences {
            expr: self,
            tz,
            cursor: local_naive(tz, after),
            after,
        }
    }

    /// The newest occurrence instant in (after, until].
    pub(super) fn newest_between(
        &self,
        tz: Tz,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut cursor =
            local_naive(tz, until)?.checked_add_signed(Duration::hours(FOLD_LOOKAHEAD_HOURS))?;
        loop {
            let candidate = self.naive_prev(cursor)?;
            cursor = candidate;
            if let Some(instant) = to_instant(tz, candidate) {
                if instant <= until {
                    // Instants increase with wall-clock time, so this is the newest one.
                    return (instant > after).then_some(instant);
                }
            }
        }
    }
}

/// Iterator over cron occurrence instants strictly after a point, in increasing order.
pub(super) struct CronOccurrences<'a> {
    expr: &'a CronExpr,
    tz: Tz,
    cursor: Option<NaiveDateTime>,
    after: DateTime<Utc>,
}

impl Iterator for CronOccurrences<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        loop {
            let candidate = self.expr.naive_next(self.cursor?);
            self.cursor = candidate;
            let candidate = candidate?;
            // Gap → no occurrence; fold → first instant only. Candidates from the second pass
            // of a fold map to first-pass instants <= `after`, so they are skipped here.
            if let Some(instant) = to_instant(self.tz, candidate) {
                if instant > self.after {
                    self.after = instant;
                    return Some(instant);
                }
            }
        }
    }
}
