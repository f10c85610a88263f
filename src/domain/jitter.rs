//! Defines the jitter of a scheduled occurrence: a deterministic offset in `[0, J]` seconds
//! at millisecond resolution, derived from the occurrence key with FNV-1a (64-bit).
//!
//! Stable across nodes, restarts and Rust releases (never std's `DefaultHasher`). Pure.

use chrono::{DateTime, Duration, Utc};

/// Largest accepted `policy.jitter_seconds` (one hour).
pub const MAX_JITTER_SECONDS: i64 = 3600;

/// FNV-1a, 64-bit: the published offset basis and prime.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The offset of the occurrence keyed `occurrence_key` under `jitter_seconds` = J: in
/// `[0, J * 1000]` milliseconds; zero when J ≤ 0.
pub fn offset(occurrence_key: &str, jitter_seconds: i32) -> Duration {
    let span_ms = i64::from(jitter_seconds.clamp(0, MAX_JITTER_SECONDS as i32)) * 1000;
    if span_ms == 0 {
        return Duration::zero();
    }
    let span = u64::try_from(span_ms).unwrap_or(0) + 1;
    let ms = fnv1a64(occurrence_key.as_bytes()) % span;
    Duration::milliseconds(i64::try_from(ms).unwrap_or(0))
}

/// When the occurrence at `nominal` keyed `occurrence_key` becomes due.
pub fn due_time(
    nominal: DateTime<Utc>,
    occurrence_key: &str,
    jitter_seconds: i32,
) -> DateTime<Utc> {
    nominal + offset(occurrence_key, jitter_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        // From the FNV reference test suite (draft-eastlake-fnv).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn zero_jitter_is_no_offset() {
        assert_eq!(offset("sch_x:2027-01-01T00:00:00Z", 0), Duration::zero());
        assert_eq!(offset("sch_x:2027-01-01T00:00:00Z", -5), Duration::zero());
    }

    #[test]
    fn offsets_are_bounded_deterministic_and_spread() {
        let mut seen = std::collections::BTreeSet::new();
        for minute in 0..500 {
            let key = format!(
                "sch_01ABC:2027-01-01T00:{:02}:{:02}Z",
                minute / 60,
                minute % 60
            );
            let a = offset(&key, 30);
            assert_eq!(a, offset(&key, 30), "same key, same offset");
            assert!(a >= Duration::zero() && a <= Duration::seconds(30), "{a}");
            seen.insert(a.num_milliseconds());
        }
        // 500 keys over 30,001 possible values: nearly all distinct, not a constant.
        assert!(seen.len() > 450, "only {} distinct offsets", seen.len());
        let max = seen.iter().max().copied().unwrap_or(0);
        let min = seen.iter().min().copied().unwrap_or(0);
        assert!(
            max > 25_000 && min < 5_000,
            "offsets cover the range: {min}..{max}"
        );
    }

    #[test]
    fn the_offset_is_pinned() {
        // A change of hash would move every jittered run across an upgrade: pin one value.
        let key = "sch_01JABCDEF:2027-04-01T09:00:00Z";
        assert_eq!(offset(key, 60).num_milliseconds(), 4626);
    }
}
