//! Tests the cadence module through its public surface: the DST table, cron rules against a
//! brute-force reference, and the interval/once grid. Shared helpers live here; no I/O.

mod cron;
mod dst_table;
mod grid;

use super::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
        .with_timezone(&Utc)
}

fn cron(expr: &str) -> Cadence {
    Cadence::Cron(CronExpr::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}")))
}

fn fmt(v: &[DateTime<Utc>]) -> Vec<String> {
    v.iter()
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .collect()
}

fn interval(every_seconds: i64, anchor: &str) -> Cadence {
    Cadence::Interval {
        every_seconds,
        anchor_at: t(anchor),
    }
}
