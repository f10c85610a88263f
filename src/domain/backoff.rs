//! Defines the retry backoff formula: when the next attempt of a failed run becomes due.
//!
//! `delay = min(initial_delay_seconds * 2^(attempt-1), max_delay_seconds)`. Pure.

use super::schedule::{RetryPolicy, RetryStrategy};

/// What happens after attempt `attempt` of an occurrence failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Schedule attempt `attempt + 1` after this many seconds.
    Retry {
        next_attempt: i32,
        delay_seconds: i64,
    },
    /// No attempts left: dead-letter the run.
    DeadLetter,
}

/// Decides between a retry and a dead letter for a failed `attempt` (1-based).
pub fn after_failure(retry: &RetryPolicy, attempt: i32) -> AfterFailure {
    if retry.strategy == RetryStrategy::None || attempt >= retry.max_attempts {
        return AfterFailure::DeadLetter;
    }
    AfterFailure::Retry {
        next_attempt: attempt + 1,
        delay_seconds: delay_seconds(retry, attempt),
    }
}

/// The delay before the attempt that follows failed attempt `attempt`.
pub fn delay_seconds(retry: &RetryPolicy, attempt: i32) -> i64 {
    let initial = i64::from(retry.initial_delay_seconds.max(0));
    let max = i64::from(retry.max_delay_seconds.max(0));
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(62);
    let factor = 1i64.checked_shl(exponent).unwrap_or(i64::MAX);
    initial.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: i32, initial: i32, max: i32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            strategy: RetryStrategy::Exponential,
            initial_delay_seconds: initial,
            max_delay_seconds: max,
        }
    }

    #[test]
    fn delays_double_then_cap() {
        let p = policy(10, 30, 900);
        let delays: Vec<i64> = (1..=7).map(|a| delay_seconds(&p, a)).collect();
        assert_eq!(delays, vec![30, 60, 120, 240, 480, 900, 900]);
    }

    #[test]
    fn huge_attempts_do_not_overflow() {
        let p = policy(i32::MAX, 30, 900);
        assert_eq!(delay_seconds(&p, 1000), 900);
        assert_eq!(delay_seconds(&p, i32::MAX), 900);
    }

    #[test]
    fn last_attempt_is_dead_lettered() {
        let p = policy(3, 1, 10);
        assert_eq!(
            after_failure(&p, 1),
            AfterFailure::Retry {
                next_attempt: 2,
                delay_seconds: 1
            }
        );
        assert_eq!(
            after_failure(&p, 2),
            AfterFailure::Retry {
                next_attempt: 3,
                delay_seconds: 2
            }
        );
        assert_eq!(after_failure(&p, 3), AfterFailure::DeadLetter);
    }

    #[test]
    fn zero_attempts_or_none_strategy_never_retry() {
        assert_eq!(after_failure(&policy(0, 1, 1), 1), AfterFailure::DeadLetter);
        let mut p = policy(5, 1, 1);
        p.strategy = RetryStrategy::None;
        assert_eq!(after_failure(&p, 1), AfterFailure::DeadLetter);
    }
}
